import type { StagedPage } from './object-keys.js';

/** The API's hard limit on items per page. */
export const MAX_PAGE_SIZE = 250;

/**
 * Decides which page to fetch next, so several pages can be in flight without fetching any page
 * twice or past the end by more than one probe.
 *
 * The API pages by position in a list ordered by key. New sales only ever get larger ids, so they
 * append at the end and earlier pages never shift: page N of a run (fixed start id) is stable,
 * also across a crash and resume. The end is the first page holding fewer than `pageSize` items;
 * `total_pages` from any response tells how far it is safe to fetch ahead.
 */
export class PagePlanner {
  private readonly pageSize: number;
  private readonly firstPage: number;
  private readonly received = new Set<number>();
  private readonly inFlight = new Set<number>();
  /** Highest page known to exist (or worth one probe). */
  private limit: number;
  /** First page found short; the run ends there. */
  private lastPage = Number.POSITIVE_INFINITY;
  private cursor: number;

  constructor(options: { firstPage: number; pageSize: number; staged?: readonly StagedPage[] }) {
    this.pageSize = options.pageSize;
    this.firstPage = options.firstPage;
    this.limit = options.firstPage;
    this.cursor = options.firstPage;
    for (const p of options.staged ?? []) {
      if (p.page >= options.firstPage) this.markReceived(p.page, p.count, p.totalPages);
    }
  }

  /** The next page to request now, or `undefined` when nothing may be started yet. */
  next(): number | undefined {
    const end = Math.min(this.limit, this.lastPage);
    while (this.cursor <= end && (this.received.has(this.cursor) || this.inFlight.has(this.cursor))) {
      this.cursor++;
    }
    if (this.cursor > end) return undefined;
    const page = this.cursor++;
    this.inFlight.add(page);
    return page;
  }

  /** Records a page fetched whole. */
  done(page: number, count: number, totalPages: number): void {
    this.inFlight.delete(page);
    this.markReceived(page, count, totalPages);
  }

  /** The last page of the run, once it is known. */
  get last(): number | undefined {
    return Number.isFinite(this.lastPage) ? this.lastPage : undefined;
  }

  /** Every page from the first to the last one has been received. */
  get complete(): boolean {
    if (!Number.isFinite(this.lastPage)) return false;
    for (let p = this.firstPage; p <= this.lastPage; p++) if (!this.received.has(p)) return false;
    return true;
  }

  private markReceived(page: number, count: number, totalPages: number): void {
    this.received.add(page);
    this.limit = Math.max(this.limit, totalPages, count >= this.pageSize ? page + 1 : page);
    if (count < this.pageSize) this.lastPage = Math.min(this.lastPage, page);
  }
}

export interface PageSize {
  readonly page: number;
  readonly bytes: number;
}

export interface PartRange {
  readonly first: number;
  readonly last: number;
  readonly bytes: number;
}

/**
 * Groups the received pages that follow `frontier` without a gap into files of at least
 * `targetBytes` (the last one may be smaller once `lastPage` is known and reached). Files are
 * sized by bytes, not pages, so the number of BigQuery load jobs per table per day stays low.
 */
export function planParts(options: {
  frontier: number;
  pages: readonly PageSize[];
  targetBytes: number;
  lastPage: number | undefined;
}): PartRange[] {
  const byPage = new Map(options.pages.map((p) => [p.page, p.bytes]));
  const parts: PartRange[] = [];
  let first = options.frontier;
  let bytes = 0;
  for (let page = options.frontier; byPage.has(page); page++) {
    bytes += byPage.get(page) ?? 0;
    const isLast = options.lastPage !== undefined && page >= options.lastPage;
    if (bytes >= options.targetBytes || isLast) {
      parts.push({ first, last: page, bytes });
      first = page + 1;
      bytes = 0;
      if (isLast) break;
    }
  }
  return parts;
}
