-- The view dmt.sales_items_list_price (DuckDB twin of sql/bigquery/view_sales_items_list_price.sql):
-- every mart row with its product's list price and description at the sale's time, from
-- ods.products_history. The session time zone is UTC, so the sale time is read as UTC.
SELECT
  m.*,
  h.unit_amount AS list_unit_amount,
  h.description AS list_description,
  h.valid_from AS list_valid_from
FROM dmt.sales_items AS m
LEFT JOIN ods.products_history AS h
  ON h.product_sku = m.product_sku
  AND CAST(m.sales_datetime AS TIMESTAMPTZ) >= h.valid_from
  AND (h.valid_to IS NULL OR CAST(m.sales_datetime AS TIMESTAMPTZ) < h.valid_to)
