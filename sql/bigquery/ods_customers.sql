-- raw.customers -> ods.customers and ods.customers_history (GoogleSQL; the DuckDB twin is sql/duckdb/ods_customers.sql).
-- New loads only, rejects, latest loaded wins, MERGE (upsert, never delete). History (SCD2) as in
-- ods_products.sql: a new version only where emails or phone numbers differ from the version
-- before it. New customers go to ops.mart_queue (orphans waiting for them). Parameters: @now.
--
-- Bytes scanned: raw.customers is read from `since` (the oldest unmerged load) on, so only the
-- partitions of new loads; ods.customers and ods.customers_history (clustered by customer_id)
-- are read for the batch's customers.

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
  SELECT *, TO_JSON(STRUCT(customer_id, emails, phone_numbers, extras)) AS record
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

-- One observation per customer and load (within one file, ties fall to the content).
CREATE TEMP TABLE customers_seen AS
SELECT customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME
FROM customers_checked
WHERE reason IS NULL
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY customer_id, SYS_DATE_CREATE, SYS_FILE_NAME
  ORDER BY TO_JSON_STRING(emails) DESC, TO_JSON_STRING(phone_numbers) DESC
) = 1;

CREATE TEMP TABLE customers_latest AS
SELECT * FROM customers_seen
QUALIFY ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY SYS_DATE_CREATE DESC, SYS_FILE_NAME DESC) = 1;

-- The touched customers' history, rebuilt from the versions kept and the batch's observations.
CREATE TEMP TABLE customers_history_rebuilt AS
WITH observed AS (
  SELECT customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM ods.customers_history
  WHERE customer_id IN (SELECT customer_id FROM customers_seen)
  UNION ALL
  SELECT customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME
  FROM customers_seen
), ordered AS (
  SELECT
    observed.*,
    TO_JSON_STRING(STRUCT(emails, phone_numbers)) AS value,
    LAG(TO_JSON_STRING(STRUCT(emails, phone_numbers))) OVER (
      PARTITION BY customer_id ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME
    ) AS previous_value
  FROM observed
)
SELECT
  customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME,
  SYS_DATE_CREATE AS valid_from,
  LEAD(SYS_DATE_CREATE) OVER (PARTITION BY customer_id ORDER BY SYS_DATE_CREATE, SYS_FILE_NAME) AS valid_to
FROM ordered
WHERE previous_value IS NULL OR previous_value <> value;

DELETE FROM ods.customers_history AS h
WHERE h.customer_id IN (SELECT customer_id FROM customers_seen);

INSERT INTO ods.customers_history
  (customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME, valid_from, valid_to)
SELECT customer_id, emails, phone_numbers, SYS_DATE_CREATE, SYS_FILE_NAME, valid_from, valid_to
FROM customers_history_rebuilt;

-- New customers: sale lines waiting for them may enter the mart (no mart column follows a customer).
INSERT INTO ops.mart_queue (entity, change_key, sales_datetime, queued_at)
SELECT 'customers', s.customer_id, CAST(NULL AS DATETIME), @now
FROM customers_latest AS s
WHERE NOT EXISTS (SELECT 1 FROM ods.customers AS t WHERE t.customer_id = s.customer_id);

MERGE INTO ods.customers AS t
USING (
  SELECT * FROM customers_latest
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
  (SELECT COUNT(*) FROM ods.customers) AS ods_rows,
  (SELECT COUNT(*) FROM ods.customers_history) AS history_rows;
