import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DuckDbWarehouse } from '../../functions/adapters/local/duckdb-warehouse.js';
import { duckDbType } from '../../functions/core/schema.js';
import { tempDir } from '../helpers/fakes.js';
import {
  type GoldenFixture,
  type GoldenRun,
  givenTables,
  loadFixtures,
  openSqlWarehouse,
} from '../helpers/golden.js';
import { canonicalRow, sortRows, tableNamed, tableRows } from '../helpers/rows.js';

const SQL_DIR = fileURLToPath(new URL('../../sql/duckdb/', import.meta.url));

/** Loads `rows` (canonical form) into `table` through read_json, typed by the schema. */
async function seed(
  warehouse: DuckDbWarehouse,
  dir: string,
  tableName: string,
  rows: readonly Record<string, unknown>[],
) {
  const table = tableNamed(tableName);
  const path = join(dir, `${tableName}-${Math.random().toString(36).slice(2)}.ndjson`);
  await writeFile(path, rows.map((r) => JSON.stringify(r)).join('\n'));
  const columns = table.fields.map((f) => `"${f.name}": '${duckDbType(f)}'`).join(', ');
  await warehouse.execute(
    `INSERT INTO ${tableName} BY NAME SELECT * FROM read_json('${path}', format = 'newline_delimited', columns = {${columns}})`,
  );
}

async function seedRun(warehouse: DuckDbWarehouse, dir: string, run: GoldenRun) {
  for (const [tableName, rows] of Object.entries(givenTables(run)))
    await seed(warehouse, dir, tableName, rows);
}

async function assertTables(warehouse: DuckDbWarehouse, expect: GoldenFixture['expect'], when: string) {
  for (const [tableName, rows] of Object.entries(expect)) {
    const table = tableNamed(tableName);
    assert.deepEqual(
      await tableRows(warehouse, tableName),
      sortRows(rows.map((r) => canonicalRow(table, r))),
      `${tableName} ${when}`,
    );
  }
}

describe('DuckDB SQL against the golden fixtures', () => {
  for (const fixture of loadFixtures()) {
    test(`${fixture.name}: ${fixture.description}`, async () => {
      await using dir = await tempDir();
      const warehouse = await DuckDbWarehouse.open({
        path: ':memory:',
        sqlDir: SQL_DIR,
        rowsFile: async (k) => ({ path: join(dir.path, k), release: async () => undefined }),
      });
      try {
        for (const [i, run] of fixture.runs.entries()) {
          await seedRun(warehouse, dir.path, run);
          for (const step of run.steps) {
            await warehouse.runStep(step, { now: run.now });
          }
          if ('expect' in run)
            await assertTables(
              warehouse,
              (run as { expect: GoldenFixture['expect'] }).expect,
              `after run ${i + 1}`,
            );
        }
        await assertTables(warehouse, fixture.expect, 'after all runs');

        // Re-running every step changes nothing.
        const tables = [
          'ods.sales',
          'ods.products',
          'ods.customers',
          'ods.rejects',
          'dmt.sales_items',
          'dmt.sales_items_orphans',
        ];
        const before = await Promise.all(tables.map((t) => tableRows(warehouse, t)));
        const steps = [...new Set(fixture.runs.flatMap((r) => r.steps))];
        for (const step of steps) {
          await warehouse.runStep(step, { now: '2030-01-01T00:00:00Z' });
        }
        assert.deepEqual(
          await Promise.all(tables.map((t) => tableRows(warehouse, t))),
          before,
          're-running changed a table',
        );
      } finally {
        warehouse.close();
      }
    });
  }
});

test('the mart discount takes the same value by its fast path as by the exact NUMERIC computation', async () => {
  const warehouse = await openSqlWarehouse();
  try {
    const cents = (x: string) => `CAST(${x} AS DECIMAL(38, 9)) * CAST(0.01 AS DECIMAL(3, 2))`;
    const nanos = (x: string) => `CAST(${x} AS DECIMAL(38, 9)) * CAST(0.000000001 AS DECIMAL(10, 9))`;
    const [row] = await warehouse.query(`
      WITH cases AS (
        -- prices in cents, as sales carry them (a few negative amounts, some lists of 0)
        SELECT ${cents('CAST(hash(i) % 2000000 AS BIGINT) - 100000')} AS a,
               ${cents('hash(i + 10000000) % 100000')} AS u, CAST(1 + hash(i + 20000000) % 20 AS BIGINT) AS q
        FROM range(200000) AS t(i)
        UNION ALL
        -- quotients exactly half-way at 9 decimals (a / 2 = k + 0.5 units of 10^-9), either sign
        SELECT ${nanos('(2 * i + 1) * (CASE WHEN i % 2 = 0 THEN 1 ELSE -1 END)')}, CAST(2 AS DECIMAL(38, 9)), 1
        FROM range(0, 2000000000, 99991) AS t(i)
        UNION ALL
        -- quotients near a half (n / 1999 units: 999 / 1999 and 1000 / 1999 are within 0.001)
        SELECT ${nanos('i')}, CAST(1999 AS DECIMAL(38, 9)), 1 FROM range(1990000, 2010000) AS t(i)
        UNION ALL
        -- large quotients, beyond the DOUBLE margin
        SELECT ${cents('i * 1000003')}, ${nanos('7')}, 3 FROM range(1, 500) AS t(i)
      ), judged AS (
        SELECT *, (CAST(a AS DOUBLE) * 1e9) / CAST(u * q AS DOUBLE) AS r FROM cases
      )
      SELECT count(*) AS n,
             count(*) FILTER (WHERE rp_discount_perc(a, u, q) IS DISTINCT FROM rp_discount_perc_exact(a, u, q)) AS differ,
             count(*) FILTER (WHERE NOT (abs(r) < 1e11 AND abs(abs(r) - floor(abs(r)) - 0.5) > 0.001)) AS exact_way,
             count(*) FILTER (WHERE rp_discount_perc_exact(a, u, q) IS NULL) AS nulls
      FROM judged`);
    assert.equal(Number(row?.differ), 0, `rows whose discount differs: ${JSON.stringify(row)}`);
    // Both ways were taken, and the list totals of 0 gave NULL.
    assert.ok(
      Number(row?.exact_way) > 1000 && Number(row?.exact_way) < Number(row?.n) / 2,
      JSON.stringify(row),
    );
    assert.ok(Number(row?.nulls) > 0, JSON.stringify(row));
  } finally {
    warehouse.close();
  }
});

test('a warehouse from an earlier version gains the columns added since, and its mart is rebuilt when it lacked sale_id', async () => {
  await using dir = await tempDir();
  const path = join(dir.path, 'warehouse.duckdb');
  const open = () => openSqlWarehouse(path);
  const old = await open();
  try {
    // As an earlier version left it: no dmt.sales_items.sale_id, one mart row, one ods sale.
    await old.execute(`
      INSERT INTO ods.sales (id, datetime, total_amount, customer_id, items, SYS_DATE_CREATE, SYS_FILE_NAME)
        VALUES (7, TIMESTAMP '2025-07-19 10:00:00', 1, 'C1', [], TIMESTAMPTZ '2025-07-19 11:00:00+00', 'sales/in/a.json');
      INSERT INTO dmt.sales_items (id, sales_datetime, item_amount, product_sku, item_quantity, sale_id)
        VALUES ('7-P1', TIMESTAMP '2025-07-19 10:00:00', 1, 'P1', 1, 7);
      ALTER TABLE dmt.sales_items DROP COLUMN sale_id;
      ALTER TABLE ops.loads DROP COLUMN mart_at`);
  } finally {
    old.close();
  }
  const upgraded = await open();
  try {
    const columns = await upgraded.query(
      "SELECT table_name || '.' || column_name AS c FROM duckdb_columns() WHERE column_name IN ('sale_id', 'mart_at') AND schema_name IN ('dmt', 'ops') ORDER BY 1",
    );
    assert.deepEqual(
      columns.map((r) => r.c),
      [
        'loads.mart_at',
        'sales_items.sale_id',
        'sales_items_list_price.sale_id',
        'sales_items_orphans.sale_id',
      ],
    );
    assert.deepEqual(await upgraded.query('SELECT count(*) AS n FROM dmt.sales_items'), [{ n: '0' }]);
    assert.deepEqual(await upgraded.query('SELECT entity, change_key FROM ops.mart_queue'), [
      { entity: 'sales', change_key: '7' },
    ]);
  } finally {
    upgraded.close();
  }
});
