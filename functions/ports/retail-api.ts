import type { Entity } from '../core/entities.js';
import type { PageResult } from '../core/page.js';

export interface PageRequest {
  readonly entity: Entity;
  readonly page: number;
  readonly pageSize: number;
  /** Sales only: smallest id to return. */
  readonly startSalesId?: bigint | undefined;
  /** Abandons the request when the run is asked to stop. */
  readonly signal?: AbortSignal | undefined;
}

/**
 * One request for one page. Implementations throw TransientError (retry may help, with the
 * server's Retry-After when given) or TerminalError; they do not retry themselves.
 */
export interface RetailApi {
  fetchPage(request: PageRequest): Promise<PageResult>;
}
