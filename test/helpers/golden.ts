import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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
