-- Typing rules shared by the ODS merges (DATA_CONTRACT.md, "Typing rules"), as DuckDB macros.
-- Each returns NULL when the text breaks the rule; the merges turn that NULL into a reject.

-- Blanks around a value are allowed: spaces, tabs and line breaks.
CREATE OR REPLACE MACRO rp_trim(x) AS trim(x, e' \t\n\r');

-- Exact decimal text (at most 9 decimals) as DECIMAL(38, 9). DuckDB 1.5 reads text such as
-- '246.21' into a DECIMAL wider than 18 digits some fifty times slower than into DECIMAL(18, 9)
-- (measured on the bench machine: 0.8 s against 0.013 s per 100,000 values), so a value of at
-- most 9 integer digits, nearly all of them, goes through the narrow type, which widens exactly;
-- a larger one (the narrow cast gives NULL) is read directly.
CREATE OR REPLACE MACRO rp_decimal(s) AS
  coalesce(CAST(TRY_CAST(s AS DECIMAL(18, 9)) AS DECIMAL(38, 9)), TRY_CAST(s AS DECIMAL(38, 9)));

-- How the typing rules read a number, of trimmed text t (twin of rp_number in the GoogleSQL
-- merges): its text as digits d and a power of ten k (value = ±d × 10^k, d without leading or trailing zeros), so that
-- exponent forms (1.5e2) are judged by their exact value, with no float on the way. An integer
-- field takes plain digits, or an exponent form whose value is a whole number; a decimal field
-- takes any form exact at 9 decimals. The problem is the reason's wording. (Each list_transform
-- over a one-element list binds a name once, as a let would.)
CREATE OR REPLACE MACRO rp_number_exact(t) AS list_transform([{
    'ok': regexp_full_match(t, '[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?'),
    'plain': NOT contains(lower(t), 'e'),
    'has_point': contains(t, '.'),
    'neg': starts_with(t, '-'),
    'fp': regexp_extract(t, '^[+-]?[0-9]+\.([0-9]+)', 1),
    'ip': regexp_extract(t, '^[+-]?([0-9]+)', 1),
    'e': regexp_extract(t, '[eE]([+-]?[0-9]+)$', 1)
  }], s -> list_transform([{
    'ok': s.ok, 'plain': s.plain, 'has_point': s.has_point, 'neg': s.neg,
    'd0': ltrim(s.ip || s.fp, '0'), 'fp_len': length(s.fp),
    -- an exponent of more than 4 digits only matters by its sign (the value is 0 or out of range)
    'ex': CASE WHEN s.e = '' THEN 0
               ELSE (CASE WHEN starts_with(s.e, '-') THEN -1 ELSE 1 END)
                    * (CASE WHEN length(ltrim(s.e, '+-')) > 4 THEN 99999 ELSE CAST(ltrim(s.e, '+-') AS BIGINT) END)
          END
  }], p -> list_transform([{
    'ok': p.ok, 'plain': p.plain, 'has_point': p.has_point, 'neg': p.neg,
    'd': rtrim(p.d0, '0'),
    'k': p.ex - p.fp_len + length(p.d0) - length(rtrim(p.d0, '0'))
  }], n -> {
    'int_value': CASE WHEN n.ok AND NOT (n.plain AND n.has_point) AND (n.d = '' OR (n.k >= 0 AND (
                        length(n.d) + n.k < 19 OR (length(n.d) + n.k = 19
                          AND n.d || repeat('0', least(greatest(n.k, 0), 18)) <= CASE WHEN n.neg THEN '9223372036854775808' ELSE '9223372036854775807' END))))
                 THEN CASE WHEN n.d = '' THEN CAST(0 AS BIGINT)
                      ELSE CAST((CASE WHEN n.neg THEN '-' ELSE '' END) || n.d || repeat('0', least(greatest(n.k, 0), 18)) AS BIGINT) END
                 END,
    'int_problem': CASE
        WHEN NOT n.ok THEN 'is not a number'
        WHEN n.plain AND n.has_point THEN 'is not an integer'
        WHEN n.d = '' THEN NULL
        WHEN n.k < 0 THEN 'is not an integer'
        WHEN length(n.d) + n.k > 19 THEN 'is out of the INT64 range'
        WHEN length(n.d) + n.k = 19
             AND n.d || repeat('0', least(greatest(n.k, 0), 18)) > CASE WHEN n.neg THEN '9223372036854775808' ELSE '9223372036854775807' END
          THEN 'is out of the INT64 range'
      END,
    'num_value': CASE WHEN n.ok AND (n.d = '' OR (n.k >= -9 AND length(n.d) + n.k <= 29))
                 THEN CASE WHEN n.d = '' THEN CAST(0 AS DECIMAL(38, 9))
                      ELSE rp_decimal((CASE WHEN n.neg THEN '-' ELSE '' END) || CASE
                        WHEN n.k >= 0 THEN n.d || repeat('0', least(n.k, 29))
                        WHEN length(n.d) > -n.k THEN substr(n.d, 1, length(n.d) + n.k) || '.' || substr(n.d, length(n.d) + n.k + 1)
                        ELSE '0.' || repeat('0', least(greatest(-n.k - length(n.d), 0), 9)) || n.d
                      END) END
                 END,
    'num_problem': CASE
        WHEN NOT n.ok THEN 'is not a number'
        WHEN n.d = '' THEN NULL
        WHEN n.k < -9 THEN 'has more than 9 decimals'
        WHEN length(n.d) + n.k > 29 THEN 'is out of the NUMERIC range'
      END
  })[1])[1])[1];

-- rp_number of a value: the common forms (at most 18 integer digits, at most 9 decimals, no
-- exponent) read directly, with the same result rp_number_exact gives them (the golden and
-- parity tests hold both to GoogleSQL); any other form by rp_number_exact. DuckDB runs the
-- exact reading mostly for the rows that reach it, but may evaluate a branch for more rows than
-- that, so both branches cast with TRY_CAST and never raise. (Typing 100,000 sales: 6.9 s
-- before, 1.5 s after, in profiled runs on the bench machine.)
CREATE OR REPLACE MACRO rp_number(x) AS list_transform([rp_trim(x)], t -> CASE
  WHEN regexp_full_match(t, '[+-]?[0-9]{1,18}(\.[0-9]{1,9})?') THEN {
    'int_value': CASE WHEN NOT contains(t, '.') THEN TRY_CAST(t AS BIGINT) END,
    'int_problem': CASE WHEN contains(t, '.') THEN 'is not an integer' END,
    'num_value': rp_decimal(t),
    'num_problem': CAST(NULL AS VARCHAR)
  }
  ELSE rp_number_exact(t)
END)[1];

-- A datetime in one of the API's forms ("2025-07-19T10:15:00Z", "...+02:00", "...00.123Z",
-- naive "2025-07-19 10:15:00" meaning UTC), converted to UTC and stored without zone.
-- The session time zone is UTC, so a naive value is read as UTC. Held to what BigQuery's
-- SAFE_CAST to TIMESTAMP takes (the ZetaSQL parity test compares them form by form), where
-- DuckDB alone differs: the hour 24 (DuckDB reads the next day), an offset beyond ±14:00 or with
-- a 60th minute, and a moment outside 0001-01-01 to 9999-12-31 UTC (year 0000, or an offset
-- crossing either end) are refused; a 60th second, which DuckDB refuses, is read as the first
-- second of the next minute, as BigQuery reads it.
-- (TIMESTAMP's range: cloud.google.com/bigquery/docs/reference/standard-sql/data-types#timestamp_type)
CREATE OR REPLACE MACRO rp_datetime(x) AS list_transform([rp_trim(x)], t ->
  CASE WHEN regexp_full_match(t,
              '[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)?')
       THEN list_transform(
              [CAST(TRY_CAST(CASE WHEN substr(t, 18, 2) = '60' THEN substr(t, 1, 17) || '59' || substr(t, 20) ELSE t END
                             AS TIMESTAMPTZ) AS TIMESTAMP)
               + CASE WHEN substr(t, 18, 2) = '60' THEN INTERVAL 1 SECOND ELSE INTERVAL 0 SECOND END],
              v -> CASE WHEN year(v) BETWEEN 1 AND 9999 THEN v END)[1]
  END)[1];

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

-- discount_perc of a mart row, as BigQuery computes it on NUMERIC:
-- ROUND(100 * (1 - amount / (unit_amount * quantity)), 2), NULL when the list total is 0.
CREATE OR REPLACE MACRO rp_discount_perc_exact(amount, unit_amount, quantity) AS
  CAST(round(100 * (1 - rp_div_scaled(rp_scaled(amount), rp_scaled(unit_amount * quantity))), 2) AS DECIMAL(38, 9));

-- The same value, cheaper for nearly every row. The quotient scaled to 9 decimals,
-- r = amount / (unit_amount * quantity) * 10^9, is taken in DOUBLE: below 10^11 its error is
-- under 10^-4, so where r is not within 0.001 of a half its rounding to an integer Q is the exact
-- one. The rest is exact integer arithmetic: 100 * (1 - Q / 10^9) in units of 10^-9 is
-- 10^11 - 100 * Q, rounded half away from zero to units of 10^-2. Any other row (a quotient near
-- a half, a large one, a list total of 0) goes the exact way, which DuckDB runs mostly for the
-- rows that take it (see rp_number): where it runs for more, it gives the same value, and it
-- raises only where the fast way does not apply. (Typing 2.4 million mart rows on the bench
-- machine: 4.6 s exact, 0.6 s this way, the same values.)
CREATE OR REPLACE MACRO rp_discount_perc(amount, unit_amount, quantity) AS
  list_transform([(CAST(amount AS DOUBLE) * 1e9) / CAST(unit_amount * quantity AS DOUBLE)], r ->
    CASE WHEN abs(r) < 1e11 AND abs(abs(r) - floor(abs(r)) - 0.5) > 0.001
           THEN CAST(CAST(list_transform([100000000000 - 100 * CAST(round(r) AS BIGINT)],
                                         v -> sign(v) * ((abs(v) + 5000000) // 10000000))[1] AS DECIMAL(18, 0))
                     * CAST(0.01 AS DECIMAL(3, 2)) AS DECIMAL(38, 9))
         ELSE rp_discount_perc_exact(amount, unit_amount, quantity) END)[1];
