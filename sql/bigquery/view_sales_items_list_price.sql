-- The view dmt.sales_items_list_price (GoogleSQL; the DuckDB twin is
-- sql/duckdb/view_sales_items_list_price.sql): every mart row with its product's list price and
-- description at the sale's time, read from the product history (ods.products_history, SCD2).
-- The mart itself is type 1 (today's values); this is "the list price on the day of the sale".
-- Versions are dated by the load of the file that carried them: a sale earlier than the first
-- version the pipeline saw of its product has NULL list values.
-- Bytes scanned: a view reads what the query on it reads; ods.products_history is small.
SELECT
  m.*,
  h.unit_amount AS list_unit_amount,
  h.description AS list_description,
  h.valid_from AS list_valid_from
FROM dmt.sales_items AS m
LEFT JOIN ods.products_history AS h
  ON h.product_sku = m.product_sku
  AND TIMESTAMP(m.sales_datetime) >= h.valid_from
  AND (h.valid_to IS NULL OR TIMESTAMP(m.sales_datetime) < h.valid_to)
