-- raw.customers -> ods.customers (DuckDB twin of sql/bigquery/ods_customers.sql).
-- New loads only, rejects, latest loaded wins, MERGE (upsert, never delete). Parameters: $now.

CREATE OR REPLACE TEMP TABLE batch_loads AS
SELECT load_id, object_name, loaded_at FROM ops.loads WHERE entity = 'customers' AND merged_at IS NULL;

CREATE OR REPLACE TEMP TABLE customers_checked AS
SELECT
  r.*,
  CASE WHEN rp_blank(r.customer_id) THEN 'customer_id is missing' END AS reason
FROM raw.customers AS r
JOIN batch_loads AS b ON r.SYS_FILE_NAME = b.object_name AND r.SYS_DATE_CREATE = b.loaded_at;

INSERT INTO ods.rejects (entity, record_key, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record)
SELECT 'customers', customer_id, reason, SYS_FILE_NAME, SYS_DATE_CREATE, record
FROM (
  SELECT *, CAST(to_json({'customer_id': customer_id, 'emails': emails,
                          'phone_numbers': phone_numbers}) AS JSON) AS record
  FROM customers_checked
  WHERE reason IS NOT NULL
) AS c
WHERE NOT EXISTS (
  SELECT 1 FROM ods.rejects AS r
  WHERE r.entity = 'customers' AND r.record_key IS NOT DISTINCT FROM c.customer_id AND r.reason = c.reason
    AND CAST(r.record AS VARCHAR) = CAST(c.record AS VARCHAR)
)
QUALIFY row_number() OVER (
  PARTITION BY customer_id, reason, CAST(record AS VARCHAR) ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME
) = 1;

MERGE INTO ods.customers AS t
USING (
  SELECT customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM customers_checked
  WHERE reason IS NULL
  QUALIFY row_number() OVER (
    PARTITION BY customer_id
    ORDER BY SYS_DATE_CREATE DESC, SYS_FILE_NAME DESC, CAST(emails AS VARCHAR) DESC,
             CAST(phone_numbers AS VARCHAR) DESC
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

UPDATE ops.loads SET merged_at = CAST($now AS TIMESTAMPTZ)
WHERE load_id IN (SELECT load_id FROM batch_loads);

SELECT
  (SELECT count(*) FROM batch_loads) AS loads,
  (SELECT count(*) FROM customers_checked) AS raw_rows,
  (SELECT count(*) FROM customers_checked WHERE reason IS NOT NULL) AS rejected,
  (SELECT count(DISTINCT customer_id) FROM customers_checked WHERE reason IS NULL) AS keys,
  (SELECT count(*) FROM ods.customers) AS ods_rows;
