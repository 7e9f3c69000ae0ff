-- ods -> dmt.sales_items and dmt.sales_items_orphans (GoogleSQL; the DuckDB twin is
-- sql/duckdb/dmt_sales_items.sql). Considers the sales of loads merged since the last run
-- (ops.loads.mart_at IS NULL) and the open orphans whose product or customer has arrived. One row
-- per (sale, SKU): lines of the same SKU summed. A line enters the mart only when its product
-- and its customer are known; otherwise it is an orphan (missing_product checked first). The
-- mart is append-only by id. One transaction; re-running it changes nothing. Parameters: @now.
--
-- Bytes scanned: the candidate sale ids come from raw.sales read from `since` (the oldest load
-- not yet considered) on, so from the new partitions only; ods.sales is read for those ids
-- (clustered by id); ods.products and ods.customers are small. The append-only check reads the
-- id column of dmt.sales_items (about 20 bytes a row), the one read that grows with history.

DECLARE since TIMESTAMP DEFAULT (
  SELECT MIN(loaded_at) FROM ops.loads WHERE entity = 'sales' AND merged_at IS NOT NULL AND mart_at IS NULL
);

BEGIN TRANSACTION;

CREATE TEMP TABLE mart_loads AS
SELECT load_id, object_name, loaded_at
FROM ops.loads
WHERE entity = 'sales' AND merged_at IS NOT NULL AND mart_at IS NULL AND loaded_at >= since;

CREATE TEMP TABLE mart_candidates AS
SELECT id
FROM (
  SELECT IF(REGEXP_CONTAINS(TRIM(r.id, ' \t\n\r'), r'^[+-]?[0-9]{1,18}$'), CAST(TRIM(r.id, ' \t\n\r') AS INT64), NULL) AS id
  FROM raw.sales AS r
  JOIN mart_loads AS l ON r.SYS_FILE_NAME = l.object_name AND r.SYS_DATE_CREATE = l.loaded_at
  WHERE r.SYS_DATE_CREATE >= since
)
WHERE id IS NOT NULL
UNION DISTINCT
-- open orphans whose missing product or customer is now known (the others cannot change)
SELECT o.sale_id
FROM dmt.sales_items_orphans AS o
WHERE (o.reason = 'missing_product' AND EXISTS (SELECT 1 FROM ods.products AS p WHERE p.product_sku = o.product_sku))
   OR (o.reason = 'missing_customer' AND EXISTS (SELECT 1 FROM ods.customers AS c WHERE c.customer_id = o.customer_id));

CREATE TEMP TABLE mart_lines AS
WITH lines AS (
  SELECT s.id AS sale_id, s.datetime, s.customer_id, it.product_sku,
         SUM(it.quantity) AS item_quantity, SUM(it.amount) AS item_amount
  FROM ods.sales AS s
  CROSS JOIN UNNEST(s.items) AS it
  WHERE s.id IN (SELECT id FROM mart_candidates)
  GROUP BY sale_id, datetime, customer_id, product_sku
)
SELECT
  CONCAT(CAST(l.sale_id AS STRING), '-', l.product_sku) AS id,
  l.*,
  p.product_sku IS NOT NULL AS has_product,
  c.customer_id IS NOT NULL AS has_customer,
  p.description AS product_description,
  p.unit_amount
FROM lines AS l
LEFT JOIN ods.products AS p ON p.product_sku = l.product_sku
LEFT JOIN ods.customers AS c ON c.customer_id = l.customer_id;

INSERT INTO dmt.sales_items
  (id, sales_datetime, item_amount, product_sku, item_quantity, product_description, discount_perc)
SELECT
  id, datetime, item_amount, product_sku, item_quantity, product_description,
  IF(unit_amount * item_quantity = 0, NULL, ROUND(100 * (1 - item_amount / (unit_amount * item_quantity)), 2))
FROM mart_lines AS l
WHERE has_product AND has_customer
  AND NOT EXISTS (SELECT 1 FROM dmt.sales_items AS m WHERE m.id = l.id);

MERGE INTO dmt.sales_items_orphans AS o
USING (
  SELECT sale_id, product_sku, customer_id,
         IF(NOT has_product, 'missing_product', 'missing_customer') AS reason
  FROM mart_lines AS l
  WHERE NOT (has_product AND has_customer)
    AND NOT EXISTS (SELECT 1 FROM dmt.sales_items AS m WHERE m.id = l.id)
) AS n
ON o.sale_id = n.sale_id AND o.product_sku = n.product_sku
WHEN MATCHED AND (o.reason <> n.reason OR o.customer_id IS DISTINCT FROM n.customer_id) THEN
  UPDATE SET reason = n.reason, customer_id = n.customer_id
WHEN NOT MATCHED THEN
  INSERT (sale_id, product_sku, customer_id, reason, first_seen)
  VALUES (n.sale_id, n.product_sku, n.customer_id, n.reason, @now);

-- An orphan is closed once its line is in the mart (or no longer in its sale).
DELETE FROM dmt.sales_items_orphans AS o
WHERE o.sale_id IN (SELECT id FROM mart_candidates)
  AND NOT EXISTS (
    SELECT 1 FROM mart_lines AS l
    WHERE l.sale_id = o.sale_id AND l.product_sku = o.product_sku AND NOT (l.has_product AND l.has_customer)
      AND NOT EXISTS (SELECT 1 FROM dmt.sales_items AS m WHERE m.id = l.id)
  );

UPDATE ops.loads SET mart_at = @now
WHERE load_id IN (SELECT load_id FROM mart_loads);

COMMIT TRANSACTION;

SELECT
  (SELECT COUNT(*) FROM mart_candidates) AS sales_considered,
  (SELECT COUNT(*) FROM dmt.sales_items) AS mart_rows,
  (SELECT COUNT(*) FROM dmt.sales_items_orphans) AS orphans;
