-- ods -> dmt.sales_items and dmt.sales_items_orphans (DuckDB twin of sql/bigquery/dmt_sales_items.sql).
-- The mart follows ods: it carries the keys the ods merges queued in ops.mart_queue. Every sale
-- that changed, or that holds an orphan line whose product or customer has arrived, is
-- recomputed whole (its mart rows and orphans replaced by the lines ods now gives); a product
-- whose description or price changed updates its rows in place (type 1). The queue rows it
-- carried are removed in the same transaction; re-running it changes nothing. Parameters: $now.

CREATE OR REPLACE TEMP TABLE queued AS
SELECT entity, change_key, sales_datetime, queued_at FROM ops.mart_queue;

CREATE OR REPLACE TEMP TABLE mart_loads AS
SELECT load_id FROM ops.loads WHERE merged_at IS NOT NULL AND mart_at IS NULL;

CREATE OR REPLACE TEMP TABLE changed_skus AS
SELECT DISTINCT change_key AS product_sku FROM queued WHERE entity = 'products';

CREATE OR REPLACE TEMP TABLE new_customers AS
SELECT DISTINCT change_key AS customer_id FROM queued WHERE entity = 'customers';

-- The sales to recompute.
CREATE OR REPLACE TEMP TABLE mart_sales AS
SELECT CAST(change_key AS BIGINT) AS sale_id FROM queued WHERE entity = 'sales'
UNION
SELECT o.sale_id
FROM dmt.sales_items_orphans AS o
WHERE o.product_sku IN (SELECT product_sku FROM changed_skus)
   OR o.customer_id IN (SELECT customer_id FROM new_customers);

CREATE OR REPLACE TEMP TABLE mart_lines AS
WITH lines AS (
  SELECT sale_id, datetime, customer_id, it.product_sku AS product_sku,
         CAST(sum(it.quantity) AS BIGINT) AS item_quantity, sum(it.amount) AS item_amount
  FROM (
    SELECT s.id AS sale_id, s.datetime, s.customer_id, unnest(s.items) AS it
    FROM ods.sales AS s
    WHERE s.id IN (SELECT sale_id FROM mart_sales)
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

DELETE FROM dmt.sales_items AS m
WHERE m.sale_id IN (SELECT sale_id FROM mart_sales);

INSERT INTO dmt.sales_items
  (id, sales_datetime, item_amount, product_sku, item_quantity, product_description, discount_perc,
   sale_id, customer_id)
SELECT
  id, datetime, item_amount, product_sku, item_quantity, product_description,
  rp_discount_perc(item_amount, unit_amount, item_quantity),
  sale_id, customer_id
FROM mart_lines
WHERE has_product AND has_customer;

-- Type 1: the rows of a product whose description or price changed take its current values.
UPDATE dmt.sales_items AS m
SET product_description = p.description,
    discount_perc = rp_discount_perc(m.item_amount, p.unit_amount, m.item_quantity)
FROM ods.products AS p
WHERE m.product_sku IN (SELECT product_sku FROM changed_skus) AND p.product_sku = m.product_sku;

MERGE INTO dmt.sales_items_orphans AS o
USING (
  SELECT sale_id, product_sku, customer_id,
         CASE WHEN NOT has_product THEN 'missing_product' ELSE 'missing_customer' END AS reason,
         datetime AS sales_datetime
  FROM mart_lines
  WHERE NOT (has_product AND has_customer)
) AS n
ON o.sale_id = n.sale_id AND o.product_sku = n.product_sku
WHEN MATCHED AND (o.reason <> n.reason OR o.customer_id IS DISTINCT FROM n.customer_id
                  OR o.sales_datetime IS DISTINCT FROM n.sales_datetime) THEN
  UPDATE SET reason = n.reason, customer_id = n.customer_id, sales_datetime = n.sales_datetime
WHEN NOT MATCHED THEN
  INSERT (sale_id, product_sku, customer_id, reason, first_seen, sales_datetime)
  VALUES (n.sale_id, n.product_sku, n.customer_id, n.reason, CAST($now AS TIMESTAMPTZ), n.sales_datetime);

-- An orphan is closed once its line is in the mart or no longer in its sale.
DELETE FROM dmt.sales_items_orphans AS o
WHERE o.sale_id IN (SELECT sale_id FROM mart_sales)
  AND NOT EXISTS (
    SELECT 1 FROM mart_lines AS l
    WHERE l.sale_id = o.sale_id AND l.product_sku = o.product_sku AND NOT (l.has_product AND l.has_customer)
  );

DELETE FROM ops.mart_queue AS q
WHERE EXISTS (
  SELECT 1 FROM queued AS t
  WHERE t.entity = q.entity AND t.change_key = q.change_key AND t.queued_at = q.queued_at
    AND t.sales_datetime IS NOT DISTINCT FROM q.sales_datetime
);

UPDATE ops.loads SET mart_at = CAST($now AS TIMESTAMPTZ)
WHERE load_id IN (SELECT load_id FROM mart_loads);

SELECT
  (SELECT count(*) FROM mart_sales) AS sales_considered,
  (SELECT count(*) FROM changed_skus) AS products_changed,
  (SELECT count(*) FROM dmt.sales_items) AS mart_rows,
  (SELECT count(*) FROM dmt.sales_items_orphans) AS orphans;
