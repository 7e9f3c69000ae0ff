-- raw.products -> ods.products and ods.products_history (GoogleSQL; the DuckDB twin is
-- sql/duckdb/ods_products.sql). Same shape as ods_sales.sql: new loads only, typing, rejects,
-- latest loaded wins, MERGE (an upsert: a full refresh that no longer lists a SKU does not delete
-- it). History (SCD2): every load of the batch is a dated observation of each SKU; a new version
-- starts only where the values differ from the version before it, so re-runs and unchanged full
-- refreshes add none, and a load that arrives late (older than versions already kept) is placed
-- in time by rebuilding the touched SKUs' intervals. SKUs new or changed in description or price
-- go to ops.mart_queue (the mart rows of a SKU follow it, type 1). Parameters: @now.
--
-- Bytes scanned: raw.products is read from `since` (the oldest unmerged load) on, so only the
-- partitions of new loads; ods.products and ods.products_history (one row per SKU and version,
-- clustered by SKU) are small and read for the batch's SKUs.

DECLARE since TIMESTAMP DEFAULT (
  SELECT MIN(loaded_at) FROM ops.loads WHERE entity = 'products' AND merged_at IS NULL
);

-- @include typing_functions.sql

BEGIN TRANSACTION;

CREATE TEMP TABLE batch_loads AS
SELECT load_id, object_name, loaded_at
FROM ops.loads
WHERE entity = 'products' AND merged_at IS NULL AND loaded_at >= since;

CREATE TEMP TABLE products_checked AS
WITH typed AS (
  SELECT r.*, rp_number(r.unit_amount) AS n_unit_amount
  FROM raw.products AS r
  JOIN batch_loads AS b ON r.SYS_FILE_NAME = b.object_name AND r.SYS_DATE_CREATE = b.loaded_at
  WHERE r.SYS_DATE_CREATE >= since
)
SELECT
  typed.* EXCEPT (n_unit_amount),
  n_unit_amount.num_value AS t_unit_amount,
  CASE
    WHEN product_sku IS NULL OR TRIM(product_sku, ' \t\n\r') = '' THEN 'product_sku is missing'
    WHEN unit_amount IS NULL THEN 'unit_amount is missing'
    WHEN n_unit_amount.num_problem IS NOT NULL THEN CONCAT('unit_amount ', n_unit_amount.num_problem)
  END AS reason
FROM typed;

INSERT INTO ods.rejects (entity, record_key, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record)
SELECT 'products', product_sku, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record
FROM (
  SELECT *, TO_JSON(STRUCT(product_sku, description, unit_amount, supplier, extras)) AS record
  FROM products_checked
  WHERE reason IS NOT NULL
) AS c
WHERE NOT EXISTS (
  SELECT 1 FROM ods.rejects AS r
  WHERE r.entity = 'products' AND r.record_key IS NOT DISTINCT FROM c.product_sku AND r.reason = c.reason
    AND TO_JSON_STRING(r.record) = TO_JSON_STRING(c.record)
)
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY product_sku, reason, TO_JSON_STRING(record) ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME
) = 1;

-- One observation per SKU and load (within one file, ties fall to the content).
CREATE TEMP TABLE products_seen AS
SELECT product_sku, description, t_unit_amount AS unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME
FROM products_checked
WHERE reason IS NULL
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY product_sku, SYS_DATE_CREATE, SYS_FILE_NAME
  ORDER BY t_unit_amount DESC, description DESC, supplier DESC
) = 1;

CREATE TEMP TABLE products_latest AS
SELECT * FROM products_seen
QUALIFY ROW_NUMBER() OVER (PARTITION BY product_sku ORDER BY SYS_DATE_CREATE DESC, SYS_FILE_NAME DESC) = 1;

-- The touched SKUs' history, rebuilt from the versions kept and the batch's observations.
CREATE TEMP TABLE products_history_rebuilt AS
WITH observed AS (
  SELECT product_sku, description, unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM ods.products_history
  WHERE product_sku IN (SELECT product_sku FROM products_seen)
  UNION ALL
  SELECT product_sku, description, unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM products_seen
), ordered AS (
  SELECT
    observed.*,
    TO_JSON_STRING(STRUCT(description, unit_amount, supplier)) AS value,
    LAG(TO_JSON_STRING(STRUCT(description, unit_amount, supplier))) OVER (
      PARTITION BY product_sku ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME
    ) AS previous_value
  FROM observed
)
SELECT
  product_sku, description, unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME,
  SYS_DATE_CREATE AS valid_from,
  LEAD(SYS_DATE_CREATE) OVER (PARTITION BY product_sku ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME) AS valid_to
FROM ordered
WHERE previous_value IS NULL OR previous_value <> value;

DELETE FROM ods.products_history AS h
WHERE h.product_sku IN (SELECT product_sku FROM products_seen);

INSERT INTO ods.products_history
  (product_sku, description, unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME, valid_from, valid_to)
SELECT product_sku, description, unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME, valid_from, valid_to
FROM products_history_rebuilt;

-- New SKUs (they may settle orphans) and SKUs whose description or price changes (their mart rows).
INSERT INTO ops.mart_queue (entity, change_key, sales_datetime, queued_at)
SELECT 'products', s.product_sku, CAST(NULL AS DATETIME), @now
FROM products_latest AS s
LEFT JOIN ods.products AS t ON t.product_sku = s.product_sku
WHERE t.product_sku IS NULL
   OR ((s.SYS_DATE_CREATE > t.SYS_DATE_CREATE
        OR (s.SYS_DATE_CREATE = t.SYS_DATE_CREATE AND s.SYS_FILE_NAME > t.SYS_FILE_NAME))
       AND (s.description IS DISTINCT FROM t.description OR s.unit_amount IS DISTINCT FROM t.unit_amount));

MERGE INTO ods.products AS t
USING (
  SELECT * FROM products_latest
) AS s
ON t.product_sku = s.product_sku
WHEN MATCHED AND (s.SYS_DATE_CREATE > t.SYS_DATE_CREATE
                  OR (s.SYS_DATE_CREATE = t.SYS_DATE_CREATE AND s.SYS_FILE_NAME > t.SYS_FILE_NAME)) THEN
  UPDATE SET description = s.description, unit_amount = s.unit_amount, supplier = s.supplier,
             SYS_DATE_CREATE = s.SYS_DATE_CREATE, SYS_FILE_NAME = s.SYS_FILE_NAME
WHEN NOT MATCHED THEN
  INSERT (product_sku, description, unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME)
  VALUES (s.product_sku, s.description, s.unit_amount, s.supplier, s.SYS_DATE_CREATE, s.SYS_FILE_NAME);

UPDATE ops.loads SET merged_at = @now
WHERE load_id IN (SELECT load_id FROM batch_loads);

COMMIT TRANSACTION;

SELECT
  (SELECT COUNT(*) FROM batch_loads) AS loads,
  (SELECT COUNT(*) FROM products_checked) AS raw_rows,
  (SELECT COUNTIF(reason IS NOT NULL) FROM products_checked) AS rejected,
  (SELECT COUNT(DISTINCT product_sku) FROM products_checked WHERE reason IS NULL) AS keys,
  (SELECT COUNT(*) FROM ods.products) AS ods_rows,
  (SELECT COUNT(*) FROM ods.products_history) AS history_rows;
