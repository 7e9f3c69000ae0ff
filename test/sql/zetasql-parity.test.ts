import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bigQueryScript } from '../../functions/adapters/gcp/sql-files.js';
import { VIEWS } from '../../functions/core/schema.js';
import { analyzeScript, evaluateScript, schemaTables, type Tables } from '../helpers/bigquery-script.js';
import { type GoldenFixture, givenTables, loadFixtures, openSqlWarehouse } from '../helpers/golden.js';
import { canonicalRow, sortRows, tableNamed } from '../helpers/rows.js';
import { evaluate, startServer, stopServer } from '../helpers/zetasql.mjs';

/**
 * SQL parity (DESIGN.md, decision 2): the GoogleSQL production SQL is type-checked by the ZetaSQL
 * analyzer against the schemas defined once, and its logic is run by the ZetaSQL reference
 * evaluator on the same golden fixtures the DuckDB twins must satisfy (test/sql/duckdb-golden).
 *
 * What the evaluator cannot run, and how it is covered: it runs queries, not scripts, so
 * DECLARE, BEGIN/COMMIT TRANSACTION and the DML are driven by test/helpers/bigquery-script.ts —
 * the evaluator computes every query, MERGE source, condition and assigned value, the harness
 * only applies the resulting rows; every statement as written (MERGE, UPDATE, DELETE, DECLARE,
 * CREATE TEMP TABLE, transactions) is checked by the analyzer.
 */

const BIGQUERY = fileURLToPath(new URL('../../sql/bigquery/', import.meta.url));
const DUCKDB = fileURLToPath(new URL('../../sql/duckdb/', import.meta.url));
const PARAMS = {
  now: { type: 'TIMESTAMP' },
  started_at: { type: 'TIMESTAMP' },
  run_id: { type: 'STRING' },
  entity: { type: 'STRING' },
  step: { type: 'STRING' },
  counts: { type: 'STRING' },
};

const sqlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();

before(async () => {
  await startServer();
});
after(async () => {
  await stopServer();
});

describe('GoogleSQL analyzed by ZetaSQL', () => {
  test('every DuckDB script has its GoogleSQL twin of the same name, and the other way round', () => {
    assert.deepEqual(sqlFiles(BIGQUERY), sqlFiles(DUCKDB));
  });

  for (const file of sqlFiles(BIGQUERY)) {
    test(`${file}: every statement resolves, and what it writes has the target columns' types`, async () => {
      const analysis = await analyzeScript(bigQueryScript(BIGQUERY, file), PARAMS);
      assert.ok(analysis.length > 0);
      for (const a of analysis) {
        assert.equal(a.error, undefined, `${file} line ${a.statement.line} (${a.kind}): ${a.error}`);
        assert.deepEqual(a.mismatches, [], `${file} line ${a.statement.line}`);
      }
    });
  }

  test('a broken statement is reported with its line and column', async () => {
    const broken = readFileSync(
      fileURLToPath(new URL('../fixtures/sql-broken/typo.sql', import.meta.url)),
      'utf8',
    );
    const [declare, select] = await analyzeScript(broken, PARAMS);
    assert.equal(declare?.error, undefined);
    assert.match(select?.error ?? '', /^line 5, column 8: Unrecognized name: totl_amount/);
  });

  test('a script shape BigQuery refuses is refused: a late DECLARE, a name made twice', async () => {
    const late = await analyzeScript('SELECT 1;\nDECLARE x INT64 DEFAULT (1)', PARAMS);
    assert.match(late[1]?.error ?? '', /^line 2: DECLARE after another statement/);
    const twice = await analyzeScript('DECLARE x INT64 DEFAULT (1);\nDECLARE X INT64 DEFAULT (2)', PARAMS);
    assert.match(twice[1]?.error ?? '', /^line 2: variable x exists already/);
    const table = await analyzeScript(
      'CREATE TEMP TABLE t AS SELECT 1 AS a;\nCREATE TEMP TABLE t AS SELECT 2 AS a',
      PARAMS,
    );
    assert.equal(table[0]?.error, undefined);
    assert.match(table[1]?.error ?? '', /^line 2: table t exists already/);
    await assert.rejects(
      evaluateScript('SELECT 1;\nDECLARE x INT64 DEFAULT (1)', schemaTables(), PARAMS),
      /line 2: DECLARE after another statement/,
    );
  });

  test('a type the analyzer would coerce silently is still reported as a mismatch', async () => {
    // BigQuery accepts an INT64 into a NUMERIC column; the parity check does not, so a drifted
    // type in either twin cannot hide behind a coercion.
    const [insert] = await analyzeScript(
      "INSERT INTO dmt.sales_items (id, item_quantity, discount_perc)\nSELECT 'x', 1, 5",
      PARAMS,
    );
    assert.equal(insert?.error, undefined);
    assert.deepEqual(insert?.mismatches, ['dmt.sales_items.discount_perc is NUMERIC, the query gives INT64']);
  });
});

/** A table's rows, or a view's, as its query evaluates on the tables. */
async function rowsOf(tables: Tables, name: string): Promise<Record<string, unknown>[]> {
  const view = VIEWS.find((v) => `${v.dataset}.${v.name}` === name);
  if (!view) return tables.get(name)?.rows ?? [];
  return [
    ...(await evaluate(
      readFileSync(`${BIGQUERY}${view.sqlFile}.sql`, 'utf8'),
      Object.fromEntries(tables),
      {},
    )),
  ];
}

async function assertTables(tables: Tables, expect: GoldenFixture['expect'], when: string) {
  for (const [name, rows] of Object.entries(expect)) {
    const table = tableNamed(name);
    assert.deepEqual(
      sortRows((await rowsOf(tables, name)).map((r) => canonicalRow(table, r))),
      sortRows(rows.map((r) => canonicalRow(table, r))),
      `${name} ${when}`,
    );
  }
}

describe('the script harness refuses what BigQuery refuses', () => {
  const product = { product_sku: 'P1', description: 'Mug', unit_amount: '10', supplier: 'S' };
  const withProduct = () => {
    const tables = schemaTables();
    tables
      .get('ods.products')
      ?.rows.push({ ...product, SYS_DATE_CREATE: '2025-07-19T10:00:00Z', SYS_FILE_NAME: 'p' });
    return tables;
  };
  const now = { now: { type: 'TIMESTAMP', value: '2025-07-19T11:00:00Z' } };

  test('a MERGE that updates one target row from two source rows fails', async () => {
    const merge = `MERGE INTO ods.products AS t
USING (SELECT 'P1' AS product_sku, 'A' AS d UNION ALL SELECT 'P1', 'B') AS s
ON t.product_sku = s.product_sku
WHEN MATCHED AND (TRUE) THEN
  UPDATE SET description = s.d
WHEN NOT MATCHED THEN
  INSERT (product_sku) VALUES (s.product_sku);`;
    await assert.rejects(evaluateScript(merge, withProduct(), now), /must match at most one source row/);
  });

  test('an UPDATE ... FROM that joins one target row to two source rows fails', async () => {
    const update = `UPDATE ods.products AS p
SET description = s.d
FROM (SELECT 'P1' AS sku, 'A' AS d UNION ALL SELECT 'P1', 'B') AS s
WHERE p.product_sku = s.sku;`;
    await assert.rejects(evaluateScript(update, withProduct(), now), /must match at most one source row/);
  });
});

describe('GoogleSQL evaluated by the ZetaSQL reference evaluator against the golden fixtures', () => {
  for (const fixture of loadFixtures()) {
    test(`${fixture.name}: the BigQuery logic yields the golden rows`, async () => {
      const tables = schemaTables();
      const run = async (step: string, now: string) =>
        evaluateScript(bigQueryScript(BIGQUERY, `${step}.sql`), tables, {
          now: { type: 'TIMESTAMP', value: now },
        });
      for (const [i, r] of fixture.runs.entries()) {
        for (const [name, rows] of Object.entries(givenTables(r)))
          tables.get(name)?.rows.push(...rows.map((x) => ({ ...x })));
        for (const step of r.steps) await run(step, r.now);
        if ('expect' in r)
          await assertTables(tables, (r as { expect: GoldenFixture['expect'] }).expect, `after run ${i + 1}`);
      }
      await assertTables(tables, fixture.expect, 'after all runs');

      const snapshot = JSON.stringify([...tables].filter(([n]) => /^(ods|dmt)\./.test(n)));
      for (const step of new Set(fixture.runs.flatMap((r) => r.steps)))
        await run(step, '2030-01-01T00:00:00Z');
      assert.equal(
        JSON.stringify([...tables].filter(([n]) => /^(ods|dmt)\./.test(n))),
        snapshot,
        're-running changed a table',
      );
    });
  }
});

test('a datetime is read the same by both typing rules, form by form (ZetaSQL and DuckDB)', async () => {
  // The GoogleSQL expression as ods_sales.sql writes it, applied to each form.
  const script = readFileSync(join(BIGQUERY, 'ods_sales.sql'), 'utf8');
  const from = script.indexOf('IF(REGEXP_CONTAINS(TRIM(datetime');
  const expression = script.slice(from, script.indexOf(' AS t_datetime', from));
  assert.ok(from > 0 && expression.includes('SAFE_CAST'), 'found the datetime rule in ods_sales.sql');
  const forms = [
    '2025-07-19T10:15:00Z',
    ' 2025-07-19 10:15:00 ',
    '2025-07-19T10:15:00.123456+02:00',
    '2025-07-19T10:15:00+14:00',
    '2025-07-19T10:15:00-14:00',
    '2025-07-19T10:15:00+14:01',
    '2025-07-19T10:15:00+14:59',
    '2025-07-19T10:15:00-14:01',
    '2025-07-19T10:15:00+15:00',
    '2025-07-19T10:15:00+05:60',
    '2025-07-19T10:15:60Z',
    '2025-07-19T23:59:60Z',
    '2025-07-19T23:59:60.5Z',
    '2025-07-19T10:60:00Z',
    '2025-07-19T24:00:00Z',
    '2025-02-29T10:00:00Z',
    '2024-02-29T10:00:00Z',
    '0000-07-19T10:00:00Z',
    '0001-01-01T00:30:00+01:00',
    '9999-12-31T23:30:00-01:00',
    '2025-7-19T10:15:00Z',
  ];
  const google = await evaluate(
    `SELECT x, CAST(${expression.replaceAll('datetime', 'x')} AS STRING) AS t FROM UNNEST(@forms) AS x WITH OFFSET AS i ORDER BY i`,
    {},
    { forms: { type: 'ARRAY<STRING>', value: forms } },
  );
  const duck = await openSqlWarehouse();
  try {
    const list = forms.map((f) => `'${f}'`).join(', ');
    const rows = await duck.query(
      `SELECT x, strftime(rp_datetime(x), '%Y-%m-%d %H:%M:%S.%f') AS t FROM unnest([${list}]) WITH ORDINALITY AS f(x, i) ORDER BY i`,
    );
    // One spelling for both: a space before the time, no trailing zeros in the fraction.
    const same = (t: unknown) =>
      t === null || t === undefined
        ? null
        : String(t)
            .replace('T', ' ')
            .replace(/(\.\d*?)0+$/, '$1')
            .replace(/\.$/, '');
    assert.deepEqual(
      rows.map((r) => [r.x, same(r.t)]),
      google.map((r) => [r.x, same(r.t)]),
    );
  } finally {
    duck.close();
  }
});
