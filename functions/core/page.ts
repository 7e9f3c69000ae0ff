import { TransientError } from './errors.js';
import { arrayElements, compactJson, objectMembers } from './json-text.js';

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
  let records: string[] = [];
  for (const member of objectMembers(body)) {
    if (member.key === 'data') records = arrayElements(body, member.from).map(compactJson);
  }
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
