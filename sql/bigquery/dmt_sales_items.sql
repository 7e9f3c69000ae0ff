-- ods -> dmt.sales_items and dmt.sales_items_orphans (GoogleSQL; the DuckDB twin is
-- sql/duckdb/dmt_sales_items.sql). The mart follows ods (DATA_CONTRACT.md, dmt): it carries the
-- keys the ods merges queued in ops.mart_queue. Every sale that changed, or that holds an orphan
-- line whose product or customer has arrived, is recomputed whole: its mart rows and orphans are
-- replaced by the lines ods now gives (one row per SKU, lines of a SKU summed; a line enters the
-- mart only when its product and customer are known, otherwise it is an orphan, missing_product
-- checked first; an orphan keeps its first_seen). A product whose description or price changed
-- updates its rows in place (type 1). The queue rows it carried are removed in the same
-- transaction; re-running it changes nothing. Parameters: @now.
--
-- Bytes scanned, per statement (the work follows the changed keys, never the whole mart):
-- - ops.mart_queue, ops.loads: small (keys waiting, one row per file).
-- - dmt.sales_items_orphans: read whole (lines waiting; small), filtered on the arrived keys.
-- - ods.sales: the partitions between from_dt and to_dt (script variables, which BigQuery prunes
--   on): the sale times of the recomputed sales, old and new. An hourly run: today's.
-- - dmt.sales_items, DELETE of the recomputed sales: the same partitions only.
-- - dmt.sales_items, type-1 UPDATE: only when a product changed, the blocks of its SKUs (the
--   mart is clustered by product_sku and changed_skus is a script variable); as DML, BigQuery
--   bills the partitions that hold those SKUs. Products refresh daily; hourly runs skip it.
-- - ods.products, ods.customers: small (one row per SKU / customer).
-- Partitions are pruned only for filters BigQuery can evaluate before the query runs; a subquery
-- is not one, a script variable is
-- (https://cloud.google.com/bigquery/docs/querying-partitioned-tables#use_a_constant_filter_expression).
-- Clustered blocks are pruned for filters on the clustering column
-- (https://cloud.google.com/bigquery/docs/querying-clustered-tables); an UPDATE or DELETE is
-- billed for the partitions it touches
-- (https://cloud.google.com/bigquery/docs/reference/standard-sql/dml-syntax). Not verified
-- against BigQuery: pruning on variables SET inside the transaction, and on IN UNNEST(variable).

DECLARE since TIMESTAMP DEFAULT (
  SELECT MIN(loaded_at) FROM ops.loads WHERE merged_at IS NOT NULL AND mart_at IS NULL
);
DECLARE changed_skus ARRAY<STRING>;
DECLARE new_customers ARRAY<STRING>;
DECLARE from_dt DATETIME;
DECLARE to_dt DATETIME;

BEGIN TRANSACTION;

CREATE TEMP TABLE queued AS
SELECT entity, change_key, sales_datetime, queued_at FROM ops.mart_queue;

CREATE TEMP TABLE mart_loads AS
SELECT load_id
FROM ops.loads
WHERE merged_at IS NOT NULL AND mart_at IS NULL AND loaded_at >= since;

SET changed_skus = ARRAY(SELECT DISTINCT change_key FROM queued WHERE entity = 'products' ORDER BY change_key);

SET new_customers = ARRAY(SELECT DISTINCT change_key FROM queued WHERE entity = 'customers' ORDER BY change_key);

-- The sales to recompute, with the sale times whose mart rows they may hold.
CREATE TEMP TABLE mart_sales AS
SELECT CAST(change_key AS INT64) AS sale_id, sales_datetime
FROM queued
WHERE entity = 'sales'
UNION ALL
SELECT o.sale_id, o.sales_datetime
FROM dmt.sales_items_orphans AS o
WHERE o.product_sku IN UNNEST(changed_skus) OR o.customer_id IN UNNEST(new_customers);

-- A sale time unknown (an orphan written before sale times were kept) widens the range to all.
SET from_dt = (
  SELECT IF(COUNTIF(sales_datetime IS NULL) > 0, DATETIME '0001-01-01 00:00:00', MIN(sales_datetime))
  FROM mart_sales
);

SET to_dt = (
  SELECT IF(COUNTIF(sales_datetime IS NULL) > 0, DATETIME '9999-12-31 23:59:59.999999', MAX(sales_datetime))
  FROM mart_sales
);

CREATE TEMP TABLE mart_lines AS
WITH lines AS (
  SELECT s.id AS sale_id, s.datetime, s.customer_id, it.product_sku,
         SUM(it.quantity) AS item_quantity, SUM(it.amount) AS item_amount
  FROM ods.sales AS s
  CROSS JOIN UNNEST(s.items) AS it
  WHERE s.datetime BETWEEN from_dt AND to_dt
    AND s.id IN (SELECT sale_id FROM mart_sales)
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

DELETE FROM dmt.sales_items AS m
WHERE m.sales_datetime BETWEEN from_dt AND to_dt
  AND m.sale_id IN (SELECT sale_id FROM mart_sales);

INSERT INTO dmt.sales_items
  (id, sales_datetime, item_amount, product_sku, item_quantity, product_description, discount_perc,
   sale_id, customer_id)
SELECT
  id, datetime, item_amount, product_sku, item_quantity, product_description,
  IF(unit_amount * item_quantity = 0, NULL, ROUND(100 * (1 - item_amount / (unit_amount * item_quantity)), 2)),
  sale_id, customer_id
FROM mart_lines
WHERE has_product AND has_customer;

-- Type 1: the rows of a product whose description or price changed take its current values.
UPDATE dmt.sales_items AS m
SET product_description = p.description,
    discount_perc = IF(p.unit_amount * m.item_quantity = 0, NULL,
                       ROUND(100 * (1 - m.item_amount / (p.unit_amount * m.item_quantity)), 2))
FROM ods.products AS p
WHERE m.product_sku IN UNNEST(changed_skus) AND p.product_sku = m.product_sku;

MERGE INTO dmt.sales_items_orphans AS o
USING (
  SELECT sale_id, product_sku, customer_id,
         IF(NOT has_product, 'missing_product', 'missing_customer') AS reason,
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
  VALUES (n.sale_id, n.product_sku, n.customer_id, n.reason, @now, n.sales_datetime);

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

UPDATE ops.loads SET mart_at = @now
WHERE load_id IN (SELECT load_id FROM mart_loads);

COMMIT TRANSACTION;

SELECT
  (SELECT COUNT(DISTINCT sale_id) FROM mart_sales) AS sales_considered,
  ARRAY_LENGTH(changed_skus) AS products_changed,
  (SELECT COUNT(*) FROM dmt.sales_items) AS mart_rows,
  (SELECT COUNT(*) FROM dmt.sales_items_orphans) AS orphans;
