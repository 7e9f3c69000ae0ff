-- Typing rules shared by the ODS merges (DATA_CONTRACT.md, "Typing rules"), as GoogleSQL temporary
-- functions; the DuckDB twin is sql/duckdb/typing_functions.sql. Not a step of its own: a script
-- that needs them names this file on a line `-- @include typing_functions.sql`, and whatever sends
-- the script to BigQuery puts this text there (functions/adapters/gcp/sql-files.ts). A temporary
-- function lives for its multi-statement query and may be created before or inside its transaction
-- (https://cloud.google.com/bigquery/docs/user-defined-functions,
-- https://cloud.google.com/bigquery/docs/transactions).

-- How the typing rules read a number (DATA_CONTRACT.md, "Typing rules"): its text, blanks around
-- allowed, as digits d and a power of ten k (value = ±d × 10^k, d without leading or trailing
-- zeros), so that exponent forms (1.5e2) are judged by their exact value, with no float on the
-- way. An integer field takes plain digits, or an exponent form whose value is a whole number;
-- a decimal field takes any form exact at 9 decimals. The problem is the reason's wording.
CREATE TEMP FUNCTION rp_number(x STRING) AS ((
  SELECT AS STRUCT
    IF(int_problem IS NULL AND ok, IF(d = '', 0, CAST(CONCAT(IF(neg, '-', ''), d, REPEAT('0', LEAST(GREATEST(k, 0), 18))) AS INT64)), NULL) AS int_value,
    int_problem,
    IF(num_problem IS NULL AND ok, IF(d = '', CAST(0 AS NUMERIC), CAST(CONCAT(IF(neg, '-', ''),
      IF(k >= 0, CONCAT(d, REPEAT('0', LEAST(k, 29))),
         IF(LENGTH(d) > -k, CONCAT(SUBSTR(d, 1, LENGTH(d) + k), '.', SUBSTR(d, LENGTH(d) + k + 1)),
            CONCAT('0.', REPEAT('0', LEAST(GREATEST(-k - LENGTH(d), 0), 9)), d)))) AS NUMERIC)), NULL) AS num_value,
    num_problem
  FROM (
    SELECT
      ok, neg, d, k,
      CASE
        WHEN NOT ok THEN 'is not a number'
        WHEN plain AND has_point THEN 'is not an integer'
        WHEN d = '' THEN NULL
        WHEN k < 0 THEN 'is not an integer'
        WHEN LENGTH(d) + k > 19 THEN 'is out of the INT64 range'
        WHEN LENGTH(d) + k = 19
             AND CONCAT(d, REPEAT('0', LEAST(GREATEST(k, 0), 18))) > IF(neg, '9223372036854775808', '9223372036854775807')
          THEN 'is out of the INT64 range'
      END AS int_problem,
      CASE
        WHEN NOT ok THEN 'is not a number'
        WHEN d = '' THEN NULL
        WHEN k < -9 THEN 'has more than 9 decimals'
        WHEN LENGTH(d) + k > 29 THEN 'is out of the NUMERIC range'
      END AS num_problem
    FROM (
      SELECT ok, plain, has_point, neg, RTRIM(d0, '0') AS d,
             ex - LENGTH(fp) + LENGTH(d0) - LENGTH(RTRIM(d0, '0')) AS k
      FROM (
        SELECT
          ok, plain, has_point, neg, fp,
          LTRIM(CONCAT(IFNULL(REGEXP_EXTRACT(t, r'^[+-]?([0-9]+)'), ''), fp), '0') AS d0,
          -- an exponent of more than 4 digits only matters by its sign (the value is 0 or out of range)
          IF(e IS NULL, 0,
             IF(STARTS_WITH(e, '-'), -1, 1) * IF(LENGTH(LTRIM(e, '+-')) > 4, 99999, CAST(LTRIM(e, '+-') AS INT64))) AS ex
        FROM (
          SELECT
            t,
            REGEXP_CONTAINS(t, r'^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$') AS ok,
            NOT REGEXP_CONTAINS(t, r'[eE]') AS plain,
            REGEXP_CONTAINS(t, r'\.') AS has_point,
            STARTS_WITH(t, '-') AS neg,
            IFNULL(REGEXP_EXTRACT(t, r'^[+-]?[0-9]+\.([0-9]+)'), '') AS fp,
            REGEXP_EXTRACT(t, r'[eE]([+-]?[0-9]+)$') AS e
          FROM (SELECT TRIM(x, ' \t\n\r') AS t)
        )
      )
    )
  )
));
