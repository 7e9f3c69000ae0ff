-- Typing rules shared by the ODS merges (DATA_CONTRACT.md, "Typing rules"), as DuckDB macros.
-- Each returns NULL when the text breaks the rule; the merges turn that NULL into a reject.

-- Blanks around a value are allowed: spaces, tabs and line breaks.
CREATE OR REPLACE MACRO rp_trim(x) AS trim(x, e' \t\n\r');

-- An integer: digits with an optional sign, that fits INT64. "3.0" is not an integer.
CREATE OR REPLACE MACRO rp_int64(x) AS
  CASE WHEN regexp_full_match(rp_trim(x), '[+-]?[0-9]{1,18}') THEN CAST(rp_trim(x) AS BIGINT) END;

-- A decimal number that NUMERIC holds without losing a digit: at most 29 digits before the point
-- and 9 significant ones after it (trailing zeros beyond the 9th are fine).
CREATE OR REPLACE MACRO rp_numeric(x) AS
  CASE WHEN regexp_full_match(rp_trim(x), '[+-]?[0-9]{1,29}(\.[0-9]{1,9}0*)?') THEN
    -- the usual amount fits DECIMAL(18, 9), whose cast from text is far cheaper than (38, 9)'s
    CASE WHEN regexp_full_match(rp_trim(x), '[+-]?[0-9]{1,9}(\.[0-9]{1,9})?')
         THEN CAST(CAST(rp_trim(x) AS DECIMAL(18, 9)) AS DECIMAL(38, 9))
         ELSE CAST(rp_trim(x) AS DECIMAL(38, 9)) END
  END;

-- A datetime in one of the API's forms ("2025-07-19T10:15:00Z", "...+02:00", "...00.123Z",
-- naive "2025-07-19 10:15:00" meaning UTC), converted to UTC and stored without zone.
-- The session time zone is UTC, so a naive value is read as UTC.
CREATE OR REPLACE MACRO rp_datetime(x) AS
  CASE WHEN regexp_full_match(rp_trim(x),
              '[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?')
       THEN CAST(TRY_CAST(rp_trim(x) AS TIMESTAMPTZ) AS TIMESTAMP) END;

-- A present key: not NULL and not blank.
CREATE OR REPLACE MACRO rp_blank(x) AS x IS NULL OR rp_trim(x) = '';

-- a / b as BigQuery computes NUMERIC division: exact, rounded half away from zero to 9 decimals.
-- (DuckDB divides DECIMALs in DOUBLE, which would not give the same digits.) Takes both values
-- already scaled to integers (x * 10^9, rp_scaled), so a query computes each scaling once.
-- (its digits without the point: cheaper in DuckDB than multiplying a DECIMAL(38, 9) by 10^9)
CREATE OR REPLACE MACRO rp_scaled(x) AS CAST(replace(CAST(CAST(x AS DECIMAL(38, 9)) AS VARCHAR), '.', '') AS HUGEINT);
CREATE OR REPLACE MACRO rp_div_scaled(a, b) AS
  CASE WHEN b = 0 THEN NULL ELSE
    CAST(sign(a) * sign(b) * ((abs(a) * 2000000000 + abs(b)) // (2 * abs(b))) AS DECIMAL(38, 0))
      * CAST(0.000000001 AS DECIMAL(10, 9))
  END;
