-- raw.products -> ods.products (GoogleSQL; the DuckDB twin is sql/duckdb/ods_products.sql).
-- Same shape as ods_sales.sql: new loads only, typing, rejects, latest loaded wins, MERGE (an
-- upsert: a full refresh that no longer lists a SKU does not delete it). Parameters: @now.
--
-- Bytes scanned: raw.products is read from `since` (the oldest unmerged load) on, so only the
-- partitions of new loads; ods.products (one row per SKU) is read once by the MERGE.

DECLARE since TIMESTAMP DEFAULT (
  SELECT MIN(loaded_at) FROM ops.loads WHERE entity = 'products' AND merged_at IS NULL
);

BEGIN TRANSACTION;

CREATE TEMP TABLE batch_loads AS
SELECT load_id, object_name, loaded_at
FROM ops.loads
WHERE entity = 'products' AND merged_at IS NULL AND loaded_at >= since;

CREATE TEMP TABLE products_checked AS
WITH typed AS (
  SELECT
    r.*,
    IF(REGEXP_CONTAINS(TRIM(r.unit_amount, ' \t\n\r'), r'^[+-]?[0-9]{1,29}(\.[0-9]{1,9}0*)?$'),
       CAST(TRIM(r.unit_amount, ' \t\n\r') AS NUMERIC), NULL) AS t_unit_amount
  FROM raw.products AS r
  JOIN batch_loads AS b ON r.SYS_FILE_NAME = b.object_name AND r.SYS_DATE_CREATE = b.loaded_at
  WHERE r.SYS_DATE_CREATE >= since
)
SELECT
  typed.*,
  CASE
    WHEN product_sku IS NULL OR TRIM(product_sku, ' \t\n\r') = '' THEN 'product_sku is missing'
    WHEN unit_amount IS NULL THEN 'unit_amount is missing'
    WHEN t_unit_amount IS NULL THEN 'unit_amount is not a decimal number'
  END AS reason
FROM typed;

INSERT INTO ods.rejects (entity, record_key, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record)
SELECT 'products', product_sku, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record
FROM (
  SELECT *, TO_JSON(STRUCT(product_sku, description, unit_amount, supplier)) AS record
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

MERGE INTO ods.products AS t
USING (
  SELECT product_sku, description, t_unit_amount AS unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM products_checked
  WHERE reason IS NULL
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY product_sku
    ORDER BY SYS_DATE_CREATE DESC, SYS_FILE_NAME DESC, t_unit_amount DESC, description DESC, supplier DESC
  ) = 1
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
  (SELECT COUNT(*) FROM ods.products) AS ods_rows;
