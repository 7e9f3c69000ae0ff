-- raw.sales -> ods.sales (DuckDB twin of sql/bigquery/ods_sales.sql).
-- Reads only the raw rows of loads not merged yet (ops.loads.merged_at IS NULL), so its cost is
-- proportional to new data. Types every row (typing_functions.sql), sends rows that break a rule
-- to ods.rejects with the reason, keeps the most recently loaded row per id, and MERGEs it; the ids
-- whose row changed go to ops.mart_queue for the mart merge.
-- Runs in one transaction; re-running it changes nothing. Parameters: $now.

CREATE OR REPLACE TEMP TABLE batch_loads AS
SELECT load_id, object_name, loaded_at FROM ops.loads WHERE entity = 'sales' AND merged_at IS NULL;

CREATE OR REPLACE TEMP TABLE sales_checked AS
WITH src AS (
  SELECT r.*
  FROM raw.sales AS r
  JOIN batch_loads AS b ON r.SYS_FILE_NAME = b.object_name AND r.SYS_DATE_CREATE = b.loaded_at
), typed AS (
  -- each rule is evaluated once per value; the reasons below only look at the results
  SELECT
    src.*,
    rp_number(id) AS n_id,
    rp_datetime(datetime) AS t_datetime,
    rp_number(total_amount) AS n_total_amount,
    list_transform(items, it -> {
      'product_sku': it.product_sku, 'sku_blank': rp_blank(it.product_sku),
      'quantity_raw': it.quantity, 'quantity': rp_number(it.quantity),
      'amount_raw': it.amount, 'amount': rp_number(it.amount)
    }) AS t_lines
  FROM src
), lined AS (
  SELECT
    typed.*,
    n_id.int_value AS t_id,
    n_total_amount.num_value AS t_total_amount,
    list_transform(t_lines, l -> {'product_sku': l.product_sku, 'quantity': l.quantity.int_value, 'amount': l.amount.num_value}) AS t_items,
    CASE WHEN list_bool_and(list_transform(t_lines, l -> NOT l.sku_blank AND l.quantity.int_value IS NOT NULL AND l.amount.num_value IS NOT NULL))
         IS NOT FALSE THEN NULL
    ELSE list_filter(list_transform(t_lines, (l, i) -> CASE
      WHEN l.sku_blank THEN 'items[' || (i - 1) || '].product_sku is missing'
      WHEN l.quantity_raw IS NULL THEN 'items[' || (i - 1) || '].quantity is missing'
      WHEN l.quantity.int_problem IS NOT NULL THEN 'items[' || (i - 1) || '].quantity ' || l.quantity.int_problem
      WHEN l.amount_raw IS NULL THEN 'items[' || (i - 1) || '].amount is missing'
      WHEN l.amount.num_problem IS NOT NULL THEN 'items[' || (i - 1) || '].amount ' || l.amount.num_problem
    END), r -> r IS NOT NULL)[1] END AS item_reason
  FROM typed
)
SELECT
  lined.* EXCLUDE (t_lines, n_id, n_total_amount),
  CASE
    WHEN rp_blank(id) THEN 'id is missing'
    WHEN n_id.int_problem IS NOT NULL THEN 'id ' || n_id.int_problem
    WHEN datetime IS NULL THEN 'datetime is missing'
    WHEN t_datetime IS NULL THEN 'datetime is not a valid datetime'
    WHEN total_amount IS NULL THEN 'total_amount is missing'
    WHEN n_total_amount.num_problem IS NOT NULL THEN 'total_amount ' || n_total_amount.num_problem
    WHEN rp_blank(customer_id) THEN 'customer_id is missing'
    ELSE item_reason
  END AS reason
FROM lined;

-- A record seen again unchanged (a replay, the API serving it twice) is one reject, not two.
INSERT INTO ods.rejects (entity, record_key, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record)
SELECT 'sales', id, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record
FROM (
  SELECT *, CAST(to_json({'id': id, 'datetime': datetime, 'total_amount': total_amount,
                          'customer_id': customer_id, 'items': items, 'extras': extras}) AS JSON) AS record
  FROM sales_checked
  WHERE reason IS NOT NULL
) AS c
WHERE NOT EXISTS (
  SELECT 1 FROM ods.rejects AS r
  WHERE r.entity = 'sales' AND r.record_key IS NOT DISTINCT FROM c.id AND r.reason = c.reason
    AND CAST(r.record AS VARCHAR) = CAST(c.record AS VARCHAR)
)
QUALIFY row_number() OVER (
  PARTITION BY id, reason, CAST(record AS VARCHAR) ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME
) = 1;

-- latest loaded wins; within one file, ties fall to the content so the result is deterministic.
-- Only ids that came more than once are ranked: ordering every row by its items' text cost more
-- than the rest of this step (0.5 s per 100,000 sales, 3 s per 500,000, in profiled runs).
CREATE OR REPLACE TEMP TABLE sales_latest AS
WITH valid AS (
  SELECT t_id AS id, t_datetime AS datetime, t_total_amount AS total_amount, customer_id,
         t_items AS items, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM sales_checked
  WHERE reason IS NULL
), repeated AS (
  SELECT id FROM valid GROUP BY id HAVING count(*) > 1
)
SELECT * FROM valid WHERE id NOT IN (SELECT id FROM repeated)
UNION ALL
SELECT * FROM (
  SELECT * FROM valid WHERE id IN (SELECT id FROM repeated)
  QUALIFY row_number() OVER (
    PARTITION BY id
    ORDER BY SYS_DATE_CREATE DESC, SYS_FILE_NAME DESC, datetime DESC, total_amount DESC,
             customer_id DESC, CAST(items AS VARCHAR) DESC
  ) = 1
);

-- The sales whose ods row this merge changes, with the sale times whose mart rows they touch
-- (the old time too when a correction moved the sale).
INSERT INTO ops.mart_queue (entity, change_key, sales_datetime, queued_at)
SELECT 'sales', CAST(s.id AS VARCHAR), unnest(CASE WHEN t.id IS NULL OR t.datetime = s.datetime
                                                   THEN [s.datetime] ELSE [s.datetime, t.datetime] END),
       CAST($now AS TIMESTAMPTZ)
FROM sales_latest AS s
LEFT JOIN ods.sales AS t ON t.id = s.id
WHERE t.id IS NULL
   OR ((s.SYS_DATE_CREATE > t.SYS_DATE_CREATE
        OR (s.SYS_DATE_CREATE = t.SYS_DATE_CREATE AND s.SYS_FILE_NAME > t.SYS_FILE_NAME))
       AND CAST({'d': s.datetime, 'a': s.total_amount, 'c': s.customer_id, 'i': s.items} AS VARCHAR)
           <> CAST({'d': t.datetime, 'a': t.total_amount, 'c': t.customer_id, 'i': t.items} AS VARCHAR));

MERGE INTO ods.sales AS t
USING (
  SELECT * FROM sales_latest
) AS s
ON t.id = s.id
WHEN MATCHED AND (s.SYS_DATE_CREATE > t.SYS_DATE_CREATE
                  OR (s.SYS_DATE_CREATE = t.SYS_DATE_CREATE AND s.SYS_FILE_NAME > t.SYS_FILE_NAME)) THEN
  UPDATE SET datetime = s.datetime, total_amount = s.total_amount, customer_id = s.customer_id,
             items = s.items, SYS_DATE_CREATE = s.SYS_DATE_CREATE, SYS_FILE_NAME = s.SYS_FILE_NAME
WHEN NOT MATCHED THEN
  INSERT (id, datetime, total_amount, customer_id, items, SYS_DATE_CREATE, SYS_FILE_NAME)
  VALUES (s.id, s.datetime, s.total_amount, s.customer_id, s.items, s.SYS_DATE_CREATE, s.SYS_FILE_NAME);

UPDATE ops.loads SET merged_at = CAST($now AS TIMESTAMPTZ)
WHERE load_id IN (SELECT load_id FROM batch_loads);

SELECT
  (SELECT count(*) FROM batch_loads) AS loads,
  (SELECT count(*) FROM sales_checked) AS raw_rows,
  (SELECT count(*) FROM sales_checked WHERE reason IS NOT NULL) AS rejected,
  (SELECT count(DISTINCT t_id) FROM sales_checked WHERE reason IS NULL) AS keys,
  (SELECT count(*) FROM ods.sales) AS ods_rows;
