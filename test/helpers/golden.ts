import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DuckDbWarehouse } from '../../functions/adapters/local/duckdb-warehouse.js';

/**
 * A golden fixture: tables as given, the SQL steps run (in order, each with its `now`), and the
 * rows every listed table must hold afterwards. One set of fixtures, checked on DuckDB (and, for
 * the BigQuery SQL, by the ZetaSQL reference evaluator).
 */
export interface GoldenRun {
  /** Rows to add before this run, by table (`raw.sales`, `ods.products` ...). Values in canonical form. */
  readonly given?: Readonly<Record<string, readonly Record<string, unknown>[]>>;
  readonly steps: readonly string[];
  readonly now: string;
}

export interface GoldenFixture {
  readonly name: string;
  readonly description: string;
  readonly runs: readonly GoldenRun[];
  /** Expected rows of each listed table after all runs (order does not matter). */
  readonly expect: Readonly<Record<string, readonly Record<string, unknown>[]>>;
}

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/sql/', import.meta.url));

export function loadFixtures(): GoldenFixture[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ ...(JSON.parse(readFileSync(`${FIXTURE_DIR}${f}`, 'utf8')) as GoldenFixture), name: f }));
}

/**
 * The rows a run adds, by table: its `given` rows, plus the ops.loads ledger rows its raw rows
 * imply (raw rows arrive through loads; the merges read the ledger to find them).
 */
export function givenTables(run: GoldenRun): Record<string, Record<string, unknown>[]> {
  const out: Record<string, Record<string, unknown>[]> = {};
  for (const [table, rows] of Object.entries(run.given ?? {})) {
    out[table] = [...(out[table] ?? []), ...rows];
    if (!table.startsWith('raw.')) continue;
    const loads = new Map<string, Record<string, unknown>>();
    for (const row of rows) {
      const id = `${row.SYS_FILE_NAME}#${row.SYS_DATE_CREATE}`;
      const load = loads.get(id) ?? {
        load_id: id,
        entity: table.slice(4),
        object_name: row.SYS_FILE_NAME,
        generation: '1',
        loaded_at: row.SYS_DATE_CREATE,
        row_count: 0,
        max_sale_id: null,
        merged_at: null,
        mart_at: null,
      };
      load.row_count = String(Number(load.row_count) + 1);
      loads.set(id, load);
    }
    out['ops.loads'] = [...(out['ops.loads'] ?? []), ...loads.values()];
  }
  return out;
}

/** The local warehouse with the repository's DuckDB SQL, for SQL tests that load no file (`:memory:` unless a path). */
export function openSqlWarehouse(path = ':memory:'): Promise<DuckDbWarehouse> {
  return DuckDbWarehouse.open({
    path,
    sqlDir: fileURLToPath(new URL('../../sql/duckdb/', import.meta.url)),
    rowsFile: async () => {
      throw new Error('a SQL test loads no file');
    },
  });
}
