import { TransientError } from './errors.js';
import { compactArrayElements, valueEnd } from './json-text.js';

/** One page of the Retail API, records kept as the API wrote them (one line of JSON each). */
export interface PageResult {
  readonly records: readonly string[];
  readonly page: number;
  readonly pageSize: number;
  readonly totalItems: number;
  readonly totalPages: number;
}

const ENVELOPE_INTEGERS = ['page', 'page_size', 'total_items', 'total_pages'] as const;

/**
 * Reads a page body. A body that is not a whole, well-formed envelope (the connection dropped
 * mid-body, a proxy answered with HTML) is a transient fault: the same request will be retried.
 */
export function parsePageBody(body: string): PageResult {
  let envelope: unknown;
  try {
    envelope = JSON.parse(body);
  } catch (cause) {
    throw new TransientError(`page body is not complete JSON (${body.length} bytes received)`, { cause });
  }
  if (
    typeof envelope !== 'object' ||
    envelope === null ||
    !Array.isArray((envelope as { data?: unknown }).data)
  ) {
    throw new TransientError('page body has no "data" array');
  }
  const env = envelope as Record<string, unknown> & { data: unknown[] };
  for (const field of ENVELOPE_INTEGERS) {
    if (!Number.isInteger(env[field])) throw new TransientError(`page body has no integer "${field}"`);
  }
  const records = dataElements(body);
  if (records.length !== env.data.length)
    throw new TransientError('page body "data" could not be split into records');
  return {
    records,
    page: env.page as number,
    pageSize: env.page_size as number,
    totalItems: env.total_items as number,
    totalPages: env.total_pages as number,
  };
}

/** The raw elements of the top-level "data" array, found without decoding any record. */
function dataElements(body: string): string[] {
  // A top-level key is a string at depth 1; nested values are skipped whole.
  let depth = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c === 0x22) {
      const end = valueEnd(body, i);
      if (depth === 1 && body.slice(i, end) === '"data"') {
        return compactArrayElements(body, body.indexOf(':', end) + 1).elements;
      }
      i = end - 1;
    } else if (c === 0x7b || c === 0x5b) {
      if (depth === 1) i = valueEnd(body, i) - 1;
      else depth++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return [];
}
