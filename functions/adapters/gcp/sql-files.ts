import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expandIncludes } from '../../core/sql-script.js';

/**
 * A script of sql/bigquery/ as BigQuery runs it: its `-- @include` lines replaced by the files
 * they name (sql/bigquery/typing_functions.sql). The one reader for everything that sends one:
 * the BigQuery warehouse, the deployed workflow's embedded scripts, the parity checks.
 */
export function bigQueryScript(dir: string, file: string): string {
  return expandIncludes(readFileSync(join(dir, file), 'utf8'), (included) =>
    readFileSync(join(dir, included), 'utf8'),
  );
}
