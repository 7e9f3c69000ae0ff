-- raw.sales -> ods.sales (GoogleSQL; the DuckDB twin is sql/duckdb/ods_sales.sql).
-- Reads only the raw rows of loads not merged yet (ops.loads.merged_at IS NULL), types every row,
-- sends rows that break a rule to ods.rejects with the reason, keeps the most recently loaded row
-- per id and MERGEs it. One transaction; re-running it changes nothing. Parameters: @now.
--
-- Bytes scanned: raw.sales is partitioned by DATE(SYS_DATE_CREATE) and every read of it is
-- bounded below by `since`, the oldest unmerged load, a script variable BigQuery prunes on; an
-- hourly run scans the partitions of the new loads only (normally today's). ops.loads (one row
-- per file) and ods.rejects (NOT EXISTS on reject identity) are small; ods.sales is read once by
-- the MERGE, clustered by id.

DECLARE since TIMESTAMP DEFAULT (
  SELECT MIN(loaded_at) FROM ops.loads WHERE entity = 'sales' AND merged_at IS NULL
);

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
), trimmed AS (
  SELECT
    src.*,
    TRIM(id, ' \t\n\r') AS id_t,
    TRIM(datetime, ' \t\n\r') AS datetime_t,
    TRIM(total_amount, ' \t\n\r') AS total_amount_t
  FROM src
), typed AS (
  -- each rule is evaluated once per value; the reasons below only look at the results
  SELECT
    trimmed.*,
    IF(REGEXP_CONTAINS(id_t, r'^[+-]?[0-9]{1,18}$'), CAST(id_t AS INT64), NULL) AS t_id,
    IF(REGEXP_CONTAINS(datetime_t,
         r'^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?$'),
       DATETIME(SAFE_CAST(datetime_t AS TIMESTAMP), 'UTC'), NULL) AS t_datetime,
    IF(REGEXP_CONTAINS(total_amount_t, r'^[+-]?[0-9]{1,29}(\.[0-9]{1,9}0*)?$'),
       CAST(total_amount_t AS NUMERIC), NULL) AS t_total_amount,
    ARRAY(
      SELECT AS STRUCT
        it.product_sku,
        it.product_sku IS NULL OR TRIM(it.product_sku, ' \t\n\r') = '' AS sku_blank,
        it.quantity AS quantity_raw,
        IF(REGEXP_CONTAINS(TRIM(it.quantity, ' \t\n\r'), r'^[+-]?[0-9]{1,18}$'),
           CAST(TRIM(it.quantity, ' \t\n\r') AS INT64), NULL) AS quantity,
        it.amount AS amount_raw,
        IF(REGEXP_CONTAINS(TRIM(it.amount, ' \t\n\r'), r'^[+-]?[0-9]{1,29}(\.[0-9]{1,9}0*)?$'),
           CAST(TRIM(it.amount, ' \t\n\r') AS NUMERIC), NULL) AS amount,
        o AS line
      FROM UNNEST(items) AS it WITH OFFSET AS o
      ORDER BY o
    ) AS t_lines
  FROM trimmed
)
SELECT
  * EXCEPT (id_t, datetime_t, total_amount_t, t_lines),
  ARRAY(SELECT AS STRUCT l.product_sku, l.quantity, l.amount FROM UNNEST(t_lines) AS l ORDER BY l.line) AS t_items,
  CASE
    WHEN id IS NULL OR id_t = '' THEN 'id is missing'
    WHEN t_id IS NULL THEN 'id is not an integer'
    WHEN datetime IS NULL THEN 'datetime is missing'
    WHEN t_datetime IS NULL THEN 'datetime is not a valid datetime'
    WHEN total_amount IS NULL THEN 'total_amount is missing'
    WHEN t_total_amount IS NULL THEN 'total_amount is not a decimal number'
    WHEN customer_id IS NULL OR TRIM(customer_id, ' \t\n\r') = '' THEN 'customer_id is missing'
    ELSE (
      SELECT CONCAT('items[', CAST(l.line AS STRING), '].', CASE
        WHEN l.sku_blank THEN 'product_sku is missing'
        WHEN l.quantity_raw IS NULL THEN 'quantity is missing'
        WHEN l.quantity IS NULL THEN 'quantity is not an integer'
        WHEN l.amount_raw IS NULL THEN 'amount is missing'
        ELSE 'amount is not a decimal number'
      END)
      FROM UNNEST(t_lines) AS l
      WHERE l.sku_blank OR l.quantity IS NULL OR l.amount IS NULL
      ORDER BY l.line
      LIMIT 1
    )
  END AS reason
FROM typed;

-- A record seen again unchanged (a replay, the API serving it twice) is one reject, not two.
INSERT INTO ods.rejects (entity, record_key, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record)
SELECT 'sales', id, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record
FROM (
  SELECT *, TO_JSON(STRUCT(id, datetime, total_amount, customer_id, items)) AS record
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

MERGE INTO ods.sales AS t
USING (
  SELECT t_id AS id, t_datetime AS datetime, t_total_amount AS total_amount, customer_id,
         t_items AS items, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM sales_checked
  WHERE reason IS NULL
  -- latest loaded wins; within one file, ties fall to the content so the result is deterministic
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY t_id
    ORDER BY SYS_DATE_CREATE DESC, SYS_FILE_NAME DESC, t_datetime DESC, t_total_amount DESC,
             customer_id DESC, TO_JSON_STRING(t_items) DESC
  ) = 1
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
