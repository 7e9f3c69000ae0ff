import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DuckDbWarehouse } from '../../functions/adapters/local/duckdb-warehouse.js';
import { duckDbType } from '../../functions/core/schema.js';
import { tempDir } from '../helpers/fakes.js';
import { type GoldenFixture, type GoldenRun, givenTables, loadFixtures } from '../helpers/golden.js';
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
