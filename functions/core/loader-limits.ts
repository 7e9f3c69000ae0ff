import { createHash } from 'node:crypto';
/**
 * The loader's time budget, shared by the function's deployment (infra) and the loader's own
 * reasoning about claims, so the two cannot drift apart.
 *
 * An event-driven Cloud Run function runs for at most 540 s
 * (https://cloud.google.com/functions/docs/configuring/timeout); the loader is deployed with
 * exactly that. A claim in processing/ older than the timeout plus a margin cannot belong to a
 * delivery that is still running: it was left by one that crashed or was stopped, and whoever
 * finds it (a redelivery of the same event, the reconciler) finishes it.
 */
export const LOADER_TIMEOUT_SECONDS = 540;

export const CLAIM_STALE_AFTER_MS = (LOADER_TIMEOUT_SECONDS + 60) * 1000;

/**
 * The loader's memory. It streams a file (read, check, write the rows file), so what it holds is
 * a chunk, a batch of rows and one record, never the file: a file of the default limit (1 GiB,
 * LOADER_MAX_FILE_BYTES) loads in the same memory as a small one. The longest record it takes,
 * LOADER_MAX_LINE_CHARS, bounds the rest: 4 Mi UTF-16 units (at most 12 MiB of UTF-8, under
 * BigQuery's 100 MB row limit for JSON loads, https://cloud.google.com/bigquery/quotas#load_jobs)
 * held as text, parsed and re-serialised stays far under 1 GiB.
 */
export const LOADER_MEMORY = '1Gi';
export const LOADER_MAX_LINE_CHARS = 4 * 2 ** 20;
/**
 * Rows are written in batches of about this many characters. Small on purpose: a batch survives
 * the young-generation collections while it fills, and larger survivors make V8 (Node 24 more
 * than 20) grow its young generation; 64 KiB keeps the loader's heap at its baseline.
 */
export const ROWS_BATCH_CHARS = 2 ** 16;

/** At most this many new field names are reported (schema.drift) for one file. */
export const MAX_DRIFT_FIELDS = 200;
/**
 * A new field's path is reported in at most this many bytes as JSON text (UTF-8, escapes
 * included; a JSON key may be as long as a record): 200 of them, listed twice in one schema.drift
 * log entry (its message and `fields`), stay far under Cloud Logging's 256 KB per entry
 * (https://cloud.google.com/logging/quotas), and the event under Pub/Sub's 10 MB per message
 * (https://cloud.google.com/pubsub/quotas).
 */
export const MAX_DRIFT_FIELD_BYTES = 256;

/** The size of `text` written as a JSON string, in UTF-8 bytes. */
const jsonBytes = (text: string) => Buffer.byteLength(JSON.stringify(text));

/**
 * A field path as the drift report and ops.schema_fields carry it: itself when small enough,
 * otherwise its start (whole characters), `…` and a digest of the whole, so two long names that
 * share a start stay apart.
 */
export function driftFieldPath(path: string): string {
  // The common case, checked with no serialising (the loader asks for every extra field of every
  // row): a UTF-16 unit takes at most 6 bytes of JSON (an escape), plus the two quotes.
  if (6 * path.length + 2 <= MAX_DRIFT_FIELD_BYTES || jsonBytes(path) <= MAX_DRIFT_FIELD_BYTES) return path;
  const digest = createHash('sha256').update(path).digest('hex').slice(0, 12);
  const room = MAX_DRIFT_FIELD_BYTES - jsonBytes(`…${digest}`);
  let start = '';
  for (const character of path) {
    if (jsonBytes(start + character) > room) break;
    start += character;
  }
  return `${start}…${digest}`;
}
