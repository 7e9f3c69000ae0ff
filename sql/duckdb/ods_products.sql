-- raw.products -> ods.products (DuckDB twin of sql/bigquery/ods_products.sql).
-- Same shape as ods_sales.sql: new loads only, typing, rejects, latest loaded wins, MERGE (an
-- upsert: a full refresh that no longer lists a SKU does not delete it). Parameters: $now.

CREATE OR REPLACE TEMP TABLE batch_loads AS
SELECT load_id, object_name, loaded_at FROM ops.loads WHERE entity = 'products' AND merged_at IS NULL;

CREATE OR REPLACE TEMP TABLE products_checked AS
SELECT
  r.*,
  rp_numeric(r.unit_amount) AS t_unit_amount,
  CASE
    WHEN rp_blank(r.product_sku) THEN 'product_sku is missing'
    WHEN r.unit_amount IS NULL THEN 'unit_amount is missing'
    WHEN rp_numeric(r.unit_amount) IS NULL THEN 'unit_amount is not a decimal number'
  END AS reason
FROM raw.products AS r
JOIN batch_loads AS b ON r.SYS_FILE_NAME = b.object_name AND r.SYS_DATE_CREATE = b.loaded_at;

INSERT INTO ods.rejects (entity, record_key, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record)
SELECT 'products', product_sku, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record
FROM (
  SELECT *, CAST(to_json({'product_sku': product_sku, 'description': description,
                          'unit_amount': unit_amount, 'supplier': supplier}) AS JSON) AS record
  FROM products_checked
  WHERE reason IS NOT NULL
) AS c
WHERE NOT EXISTS (
  SELECT 1 FROM ods.rejects AS r
  WHERE r.entity = 'products' AND r.record_key IS NOT DISTINCT FROM c.product_sku AND r.reason = c.reason
    AND CAST(r.record AS VARCHAR) = CAST(c.record AS VARCHAR)
)
QUALIFY row_number() OVER (
  PARTITION BY product_sku, reason, CAST(record AS VARCHAR) ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME
) = 1;

MERGE INTO ods.products AS t
USING (
  SELECT product_sku, description, t_unit_amount AS unit_amount, supplier, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM products_checked
  WHERE reason IS NULL
  QUALIFY row_number() OVER (
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

UPDATE ops.loads SET merged_at = CAST($now AS TIMESTAMPTZ)
WHERE load_id IN (SELECT load_id FROM batch_loads);

SELECT
  (SELECT count(*) FROM batch_loads) AS loads,
  (SELECT count(*) FROM products_checked) AS raw_rows,
  (SELECT count(*) FROM products_checked WHERE reason IS NOT NULL) AS rejected,
  (SELECT count(DISTINCT product_sku) FROM products_checked WHERE reason IS NULL) AS keys,
  (SELECT count(*) FROM ods.products) AS ods_rows;
