import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bigQueryScript } from '../functions/adapters/gcp/sql-files.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/**
 * workflows/merge.yaml as deployed: every `"@sql X.sql"` replaced by the text of
 * sql/bigquery/X.sql with its includes in place (as a JSON string, which YAML reads as a
 * double-quoted scalar). One source for the SQL; nothing pasted into the YAML by hand.
 */
export function mergeWorkflowSource(root = ROOT): string {
  const yaml = readFileSync(`${root}workflows/merge.yaml`, 'utf8');
  return yaml.replace(/"@sql ([a-z0-9_]+)\.sql"/g, (_, name: string) =>
    JSON.stringify(bigQueryScript(`${root}sql/bigquery`, `${name}.sql`)),
  );
}
