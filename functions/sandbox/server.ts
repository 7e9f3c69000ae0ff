import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ENTITIES, type Entity, isEntity } from '../core/entities.js';
import { MAX_PAGE_SIZE } from '../core/pagination.js';
import { prng, SandboxData, type SandboxDataOptions } from './data.js';

export const FAULTS = ['429', '5xx', 'slow', 'truncate', 'reset'] as const;
export type Fault = (typeof FAULTS)[number];

export interface SandboxOptions extends SandboxDataOptions {
  readonly apiKey: string;
  /** Probability that a request meets a fault. */
  readonly faultRate: number;
  readonly faults?: readonly Fault[];
  /** Retry-After sent with 429, in seconds. */
  readonly retryAfterSeconds?: number;
  /** Delay of a slow response. */
  readonly slowMs?: number;
  readonly host?: string;
  readonly port?: number;
}

export interface SandboxStats {
  requests: number;
  readonly outcomes: Record<string, number>;
  /** Full 200 responses per page request (`/sales?start_sales_id=..&page=..&page_size=..`). */
  readonly pagesServed: Map<string, number>;
}

export interface Sandbox {
  readonly url: string;
  readonly port: number;
  readonly data: SandboxData;
  readonly stats: SandboxStats;
  /** Pages served whole, all endpoints together. */
  pagesServedTotal(): number;
  close(): Promise<void>;
}

const json = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): undefined => {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
  return undefined;
};

/** An integer query parameter: its default when absent, `undefined` when not an integer. */
function intParam(url: URL, name: string, fallback: number): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  return /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
}

/** First index whose id is >= `start` (ids ascend). */
function lowerBound(ids: readonly number[], start: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ids[mid] ?? 0) < start) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The Retail API simulator: a real HTTP server implementing retail-api.openapi.yaml, with
 * faults on demand. Usable from the CLI (`retail-pipeline sandbox`) and in-process from tests.
 */
export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const data = new SandboxData(options);
  const faultRandom = prng((options.seed ^ 0x5eed) >>> 0);
  const faults = options.faults ?? FAULTS;
  const stats: SandboxStats = { requests: 0, outcomes: {}, pagesServed: new Map() };
  const count = (outcome: string): void => {
    stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
  };
  const sockets = new Set<Socket>();

  const listing = (entity: Entity): readonly string[] =>
    entity === 'sales' ? data.sales : entity === 'products' ? data.products : data.customers;

  const handle = (req: IncomingMessage, res: ServerResponse): undefined => {
    stats.requests++;
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const entity = url.pathname.replace(/^\/+|\/+$/g, '');
    if (!isEntity(entity)) {
      count('404');
      return json(res, 404, {
        error: `no such endpoint: ${url.pathname}; try ${ENTITIES.map((e) => `/${e}`).join(', ')}`,
      });
    }
    if (req.method !== 'GET') {
      count('405');
      return json(res, 405, { error: 'only GET is supported' }, { allow: 'GET' });
    }
    if (req.headers['x-api-key'] !== options.apiKey) {
      count('401');
      return json(res, 401, { error: 'missing or wrong X-API-Key' });
    }
    const page = intParam(url, 'page', 1);
    const pageSize = intParam(url, 'page_size', MAX_PAGE_SIZE);
    const start = entity === 'sales' ? intParam(url, 'start_sales_id', 1) : 1;
    if (page === undefined || page < 1) return badRequest(res, 'page must be an integer >= 1');
    if (pageSize === undefined || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      return badRequest(res, `page_size must be an integer from 1 to ${MAX_PAGE_SIZE}`);
    }
    if (start === undefined || start < 1) return badRequest(res, 'start_sales_id must be an integer >= 1');

    const fault =
      faultRandom() < options.faultRate ? faults[Math.floor(faultRandom() * faults.length)] : undefined;
    if (fault === '429') {
      count('429');
      return json(
        res,
        429,
        { error: 'rate limited' },
        { 'retry-after': String(options.retryAfterSeconds ?? 1) },
      );
    }
    if (fault === '5xx') {
      const status = [500, 502, 503, 504][Math.floor(faultRandom() * 4)] ?? 503;
      count(String(status));
      return json(res, status, { error: 'transient server fault' });
    }
    if (fault === 'reset') {
      count('reset');
      req.socket.resetAndDestroy();
      return;
    }
    const respond = (): void => {
      // Compute the page when answering: sales that arrived meanwhile are included, as live.
      const all = listing(entity);
      const from = entity === 'sales' ? lowerBound(data.saleIds, start) : 0;
      const totalItems = all.length - from;
      const offset = from + (page - 1) * pageSize;
      const items = all.slice(offset, Math.min(offset + pageSize, all.length));
      const body = `{"data":[${items.join(',')}],"page":${page},"page_size":${pageSize},"total_items":${totalItems},"total_pages":${Math.ceil(totalItems / pageSize)}}`;
      const bytes = Buffer.from(body);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(bytes.length) });
      if (fault === 'truncate') {
        count('truncate');
        res.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
        setImmediate(() => req.socket.destroy());
        return;
      }
      res.end(bytes);
      count(fault === 'slow' ? 'slow' : '200');
      const key = `/${entity}?${entity === 'sales' ? `start_sales_id=${start}&` : ''}page=${page}&page_size=${pageSize}`;
      stats.pagesServed.set(key, (stats.pagesServed.get(key) ?? 0) + 1);
    };
    if (fault === 'slow') setTimeout(respond, options.slowMs ?? 1500);
    else respond();
    return undefined;
  };

  const badRequest = (res: ServerResponse, message: string): undefined => {
    count('400');
    return json(res, 400, { error: message });
  };

  const server: Server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    data,
    stats,
    pagesServedTotal: () => [...stats.pagesServed.values()].reduce((a, b) => a + b, 0),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
