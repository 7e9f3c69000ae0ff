-- ods -> dmt.sales_items and dmt.sales_items_orphans (DuckDB twin of sql/bigquery/dmt_sales_items.sql).
-- Considers the sales merged since the last run (ops.loads.mart_at IS NULL) and the open
-- orphans whose product or customer has arrived, so its cost follows what changed. One row per (sale, SKU): lines of the same
-- SKU summed. A line enters the mart only when its product and its customer are known; otherwise
-- it is an orphan (missing_product checked first). The mart is append-only by id.
-- Runs in one transaction; re-running it changes nothing. Parameters: $now.

CREATE OR REPLACE TEMP TABLE mart_loads AS
SELECT load_id, object_name, loaded_at
FROM ops.loads
WHERE entity = 'sales' AND merged_at IS NOT NULL AND mart_at IS NULL;

CREATE OR REPLACE TEMP TABLE mart_candidates AS
SELECT id
FROM (
  SELECT rp_int64(r.id) AS id
  FROM raw.sales AS r
  JOIN mart_loads AS l ON r.SYS_FILE_NAME = l.object_name AND r.SYS_DATE_CREATE = l.loaded_at
)
WHERE id IS NOT NULL
UNION
-- open orphans whose missing product or customer is now known (the others cannot change)
SELECT o.sale_id
FROM dmt.sales_items_orphans AS o
WHERE (o.reason = 'missing_product' AND EXISTS (SELECT 1 FROM ods.products AS p WHERE p.product_sku = o.product_sku))
   OR (o.reason = 'missing_customer' AND EXISTS (SELECT 1 FROM ods.customers AS c WHERE c.customer_id = o.customer_id));

CREATE OR REPLACE TEMP TABLE mart_lines AS
WITH lines AS (
  SELECT sale_id, datetime, customer_id, it.product_sku AS product_sku,
         CAST(sum(it.quantity) AS BIGINT) AS item_quantity, sum(it.amount) AS item_amount
  FROM (
    SELECT s.id AS sale_id, s.datetime, s.customer_id, unnest(s.items) AS it
    FROM ods.sales AS s
    WHERE s.id IN (SELECT id FROM mart_candidates)
  )
  GROUP BY sale_id, datetime, customer_id, it.product_sku
)
SELECT
  CAST(l.sale_id AS VARCHAR) || '-' || l.product_sku AS id,
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
  CAST(round(100 * (1 - rp_div_scaled(amount_scaled, list_scaled)), 2) AS DECIMAL(38, 9))
FROM (
  SELECT l.*, rp_scaled(item_amount) AS amount_scaled, rp_scaled(unit_amount * item_quantity) AS list_scaled
  FROM mart_lines AS l
  WHERE has_product AND has_customer
    AND NOT EXISTS (SELECT 1 FROM dmt.sales_items AS m WHERE m.id = l.id)
);

MERGE INTO dmt.sales_items_orphans AS o
USING (
  SELECT sale_id, product_sku, customer_id,
         CASE WHEN NOT has_product THEN 'missing_product' ELSE 'missing_customer' END AS reason
  FROM mart_lines AS l
  WHERE NOT (has_product AND has_customer)
    AND NOT EXISTS (SELECT 1 FROM dmt.sales_items AS m WHERE m.id = l.id)
) AS n
ON o.sale_id = n.sale_id AND o.product_sku = n.product_sku
WHEN MATCHED AND (o.reason <> n.reason OR o.customer_id IS DISTINCT FROM n.customer_id) THEN
  UPDATE SET reason = n.reason, customer_id = n.customer_id
WHEN NOT MATCHED THEN
  INSERT (sale_id, product_sku, customer_id, reason, first_seen)
  VALUES (n.sale_id, n.product_sku, n.customer_id, n.reason, CAST($now AS TIMESTAMPTZ));

-- An orphan is closed once its line is in the mart (or no longer in its sale).
DELETE FROM dmt.sales_items_orphans AS o
WHERE o.sale_id IN (SELECT id FROM mart_candidates)
  AND NOT EXISTS (
    SELECT 1 FROM mart_lines AS l
    WHERE l.sale_id = o.sale_id AND l.product_sku = o.product_sku AND NOT (l.has_product AND l.has_customer)
      AND NOT EXISTS (SELECT 1 FROM dmt.sales_items AS m WHERE m.id = l.id)
  );

UPDATE ops.loads SET mart_at = CAST($now AS TIMESTAMPTZ)
WHERE load_id IN (SELECT load_id FROM mart_loads);

SELECT
  (SELECT count(*) FROM mart_candidates) AS sales_considered,
  (SELECT count(*) FROM dmt.sales_items) AS mart_rows,
  (SELECT count(*) FROM dmt.sales_items_orphans) AS orphans;
