-- raw.customers -> ods.customers (GoogleSQL; the DuckDB twin is sql/duckdb/ods_customers.sql).
-- New loads only, rejects, latest loaded wins, MERGE (upsert, never delete). Parameters: @now.
--
-- Bytes scanned: raw.customers is read from `since` (the oldest unmerged load) on, so only the
-- partitions of new loads; ods.customers is read once by the MERGE.

DECLARE since TIMESTAMP DEFAULT (
  SELECT MIN(loaded_at) FROM ops.loads WHERE entity = 'customers' AND merged_at IS NULL
);

BEGIN TRANSACTION;

CREATE TEMP TABLE batch_loads AS
SELECT load_id, object_name, loaded_at
FROM ops.loads
WHERE entity = 'customers' AND merged_at IS NULL AND loaded_at >= since;

CREATE TEMP TABLE customers_checked AS
SELECT
  r.*,
  CASE WHEN r.customer_id IS NULL OR TRIM(r.customer_id, ' \t\n\r') = '' THEN 'customer_id is missing' END AS reason
FROM raw.customers AS r
JOIN batch_loads AS b ON r.SYS_FILE_NAME = b.object_name AND r.SYS_DATE_CREATE = b.loaded_at
WHERE r.SYS_DATE_CREATE >= since;

INSERT INTO ods.rejects (entity, record_key, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record)
SELECT 'customers', customer_id, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record
FROM (
  SELECT *, TO_JSON(STRUCT(customer_id, emails, phone_numbers)) AS record
  FROM customers_checked
  WHERE reason IS NOT NULL
) AS c
WHERE NOT EXISTS (
  SELECT 1 FROM ods.rejects AS r
  WHERE r.entity = 'customers' AND r.record_key IS NOT DISTINCT FROM c.customer_id AND r.reason = c.reason
    AND TO_JSON_STRING(r.record) = TO_JSON_STRING(c.record)
)
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY customer_id, reason, TO_JSON_STRING(record) ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME
) = 1;

MERGE INTO ods.customers AS t
USING (
  SELECT customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM customers_checked
  WHERE reason IS NULL
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY customer_id
    ORDER BY SYS_DATE_CREATE DESC, SYS_FILE_NAME DESC, TO_JSON_STRING(emails) DESC,
             TO_JSON_STRING(phone_numbers) DESC
  ) = 1
) AS s
ON t.customer_id = s.customer_id
WHEN MATCHED AND (s.SYS_DATE_CREATE > t.SYS_DATE_CREATE
                  OR (s.SYS_DATE_CREATE = t.SYS_DATE_CREATE AND s.SYS_FILE_NAME > t.SYS_FILE_NAME)) THEN
  UPDATE SET emails = s.emails, phone_numbers = s.phone_numbers,
             SYS_DATE_CREATE = s.SYS_DATE_CREATE, SYS_FILE_NAME = s.SYS_FILE_NAME
WHEN NOT MATCHED THEN
  INSERT (customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME)
  VALUES (s.customer_id, s.emails, s.phone_numbers, s.SYS_DATE_CREATE, s.SYS_FILE_NAME);

UPDATE ops.loads SET merged_at = @now
WHERE load_id IN (SELECT load_id FROM batch_loads);

COMMIT TRANSACTION;

SELECT
  (SELECT COUNT(*) FROM batch_loads) AS loads,
  (SELECT COUNT(*) FROM customers_checked) AS raw_rows,
  (SELECT COUNTIF(reason IS NOT NULL) FROM customers_checked) AS rejected,
  (SELECT COUNT(DISTINCT customer_id) FROM customers_checked WHERE reason IS NULL) AS keys,
  (SELECT COUNT(*) FROM ods.customers) AS ods_rows;
