-- raw.sales -> ods.sales (GoogleSQL; the DuckDB twin is sql/duckdb/ods_sales.sql).
-- Reads only the raw rows of loads not merged yet (ops.loads.merged_at IS NULL), types every row,
-- sends rows that break a rule to ods.rejects with the reason, keeps the most recently loaded row
-- per id and MERGEs it; the ids whose row changed go to ops.mart_queue for the mart merge. One
-- transaction; re-running it changes nothing. Parameters: @now.
--
-- Bytes scanned: raw.sales is partitioned by DATE(SYS_DATE_CREATE) and every read of it is
-- bounded below by `since`, the oldest unmerged load, a script variable BigQuery prunes on; an
-- hourly run scans the partitions of the new loads only (normally today's). ops.loads (one row
-- per file) and ods.rejects (NOT EXISTS on reject identity) are small; ods.sales is read twice
-- for the batch's ids (the change check and the MERGE), clustered by id.

DECLARE since TIMESTAMP DEFAULT (
  SELECT MIN(loaded_at) FROM ops.loads WHERE entity = 'sales' AND merged_at IS NULL
);

-- @include typing_functions.sql

BEGIN TRANSACTION;

CREATE TEMP TABLE batch_loads AS
SELECT load_id, object_name, loaded_at
FROM ops.loads
WHERE entity = 'sales' AND merged_at IS NULL AND loaded_at >= since;

CREATE TEMP TABLE sales_checked AS
WITH src AS (
  SELECT r.*
  FROM raw.sales AS r
  JOIN batch_loads AS b ON r.SYS_FILE_NAME = b.object_name AND r.SYS_DATE_CREATE = b.loaded_at
  WHERE r.SYS_DATE_CREATE >= since
), typed AS (
  -- each rule is evaluated once per value; the reasons below only look at the results
  SELECT
    src.*,
    rp_number(id) AS n_id,
    IF(REGEXP_CONTAINS(TRIM(datetime, ' \t\n\r'),
         r'^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?$'),
       DATETIME(SAFE_CAST(TRIM(datetime, ' \t\n\r') AS TIMESTAMP), 'UTC'), NULL) AS t_datetime,
    rp_number(total_amount) AS n_total_amount,
    ARRAY(
      SELECT AS STRUCT
        it.product_sku,
        it.product_sku IS NULL OR TRIM(it.product_sku, ' \t\n\r') = '' AS sku_blank,
        it.quantity AS quantity_raw,
        rp_number(it.quantity) AS quantity,
        it.amount AS amount_raw,
        rp_number(it.amount) AS amount,
        o AS line
      FROM UNNEST(items) AS it WITH OFFSET AS o
      ORDER BY o
    ) AS t_lines
  FROM src
)
SELECT
  * EXCEPT (n_id, n_total_amount, t_lines),
  n_id.int_value AS t_id,
  n_total_amount.num_value AS t_total_amount,
  ARRAY(
    SELECT AS STRUCT l.product_sku, l.quantity.int_value AS quantity, l.amount.num_value AS amount
    FROM UNNEST(t_lines) AS l ORDER BY l.line
  ) AS t_items,
  CASE
    WHEN id IS NULL OR TRIM(id, ' \t\n\r') = '' THEN 'id is missing'
    WHEN n_id.int_problem IS NOT NULL THEN CONCAT('id ', n_id.int_problem)
    WHEN datetime IS NULL THEN 'datetime is missing'
    WHEN t_datetime IS NULL THEN 'datetime is not a valid datetime'
    WHEN total_amount IS NULL THEN 'total_amount is missing'
    WHEN n_total_amount.num_problem IS NOT NULL THEN CONCAT('total_amount ', n_total_amount.num_problem)
    WHEN customer_id IS NULL OR TRIM(customer_id, ' \t\n\r') = '' THEN 'customer_id is missing'
    ELSE (
      SELECT CONCAT('items[', CAST(l.line AS STRING), '].', CASE
        WHEN l.sku_blank THEN 'product_sku is missing'
        WHEN l.quantity_raw IS NULL THEN 'quantity is missing'
        WHEN l.quantity.int_problem IS NOT NULL THEN CONCAT('quantity ', l.quantity.int_problem)
        WHEN l.amount_raw IS NULL THEN 'amount is missing'
        ELSE CONCAT('amount ', l.amount.num_problem)
      END)
      FROM UNNEST(t_lines) AS l
      WHERE l.sku_blank OR l.quantity.int_value IS NULL OR l.amount.num_value IS NULL
      ORDER BY l.line
      LIMIT 1
    )
  END AS reason
FROM typed;

-- A record seen again unchanged (a replay, the API serving it twice) is one reject, not two.
INSERT INTO ods.rejects (entity, record_key, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record)
SELECT 'sales', id, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record
FROM (
  SELECT *, TO_JSON(STRUCT(id, datetime, total_amount, customer_id, items, extras)) AS record
  FROM sales_checked
  WHERE reason IS NOT NULL
) AS c
WHERE NOT EXISTS (
  SELECT 1 FROM ods.rejects AS r
  WHERE r.entity = 'sales' AND r.record_key IS NOT DISTINCT FROM c.id AND r.reason = c.reason
    AND TO_JSON_STRING(r.record) = TO_JSON_STRING(c.record)
)
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY id, reason, TO_JSON_STRING(record) ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME
) = 1;

-- latest loaded wins; within one file, ties fall to the content so the result is deterministic
CREATE TEMP TABLE sales_latest AS
SELECT t_id AS id, t_datetime AS datetime, t_total_amount AS total_amount, customer_id,
       t_items AS items, SYS_DATE_CREATE, SYS_FILE_NAME
FROM sales_checked
WHERE reason IS NULL
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY t_id
  ORDER BY SYS_DATE_CREATE DESC, SYS_FILE_NAME DESC, t_datetime DESC, t_total_amount DESC,
           customer_id DESC, TO_JSON_STRING(t_items) DESC
) = 1;

-- The sales whose ods row this merge changes, with the sale times whose mart rows they touch
-- (the old time too when a correction moved the sale).
INSERT INTO ops.mart_queue (entity, change_key, sales_datetime, queued_at)
SELECT 'sales', CAST(s.id AS STRING), dt, @now
FROM sales_latest AS s
LEFT JOIN ods.sales AS t ON t.id = s.id
CROSS JOIN UNNEST(IF(t.id IS NULL OR t.datetime = s.datetime, [s.datetime], [s.datetime, t.datetime])) AS dt
WHERE t.id IS NULL
   OR ((s.SYS_DATE_CREATE > t.SYS_DATE_CREATE
        OR (s.SYS_DATE_CREATE = t.SYS_DATE_CREATE AND s.SYS_FILE_NAME > t.SYS_FILE_NAME))
       AND TO_JSON_STRING(STRUCT(s.datetime, s.total_amount, s.customer_id, s.items))
           <> TO_JSON_STRING(STRUCT(t.datetime, t.total_amount, t.customer_id, t.items)));

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

UPDATE ops.loads SET merged_at = @now
WHERE load_id IN (SELECT load_id FROM batch_loads);

COMMIT TRANSACTION;

SELECT
  (SELECT COUNT(*) FROM batch_loads) AS loads,
  (SELECT COUNT(*) FROM sales_checked) AS raw_rows,
  (SELECT COUNTIF(reason IS NOT NULL) FROM sales_checked) AS rejected,
  (SELECT COUNT(DISTINCT t_id) FROM sales_checked WHERE reason IS NULL) AS keys,
  (SELECT COUNT(*) FROM ods.sales) AS ods_rows;
