import type { Entity } from '../../core/entities.js';
import { ConfigError, TerminalError, TransientError, throwIfStopped } from '../../core/errors.js';
import { type PageResult, parsePageBody } from '../../core/page.js';
import { isTransientStatus, parseRetryAfterMs } from '../../core/retry.js';
import type { Secret } from '../../core/secret.js';
import type { Clock } from '../../ports/clock.js';
import type { PageRequest, RetailApi } from '../../ports/retail-api.js';

export interface HttpRetailApiOptions {
  readonly baseUrl: string;
  readonly apiKey: Secret;
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly fetch?: typeof globalThis.fetch;
}

/** The Retail API over HTTP: one request per call, faults classified, the key sent only as a header. */
export class HttpRetailApi implements RetailApi {
  private readonly base: URL;
  private readonly fetchImpl: typeof globalThis.fetch;

  constructor(private readonly options: HttpRetailApiOptions) {
    this.base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  pageUrl(request: PageRequest): URL {
    const url = new URL(request.entity satisfies Entity, this.base);
    if (request.startSalesId !== undefined)
      url.searchParams.set('start_sales_id', request.startSalesId.toString());
    url.searchParams.set('page', String(request.page));
    url.searchParams.set('page_size', String(request.pageSize));
    return url;
  }

  async fetchPage(request: PageRequest): Promise<PageResult> {
    const url = this.pageUrl(request);
    const what = `GET ${url.pathname}${url.search}`;
    let response: Response;
    try {
      response = await this.fetchImpl(url, {
        headers: { 'X-API-Key': this.options.apiKey.reveal(), Accept: 'application/json' },
        signal: request.signal
          ? AbortSignal.any([AbortSignal.timeout(this.options.timeoutMs), request.signal])
          : AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      throwIfStopped(request.signal);
      throw new TransientError(`${what}: ${networkReason(error, this.options.timeoutMs)}`, { cause: error });
    }
    let body: string;
    try {
      body = await response.text();
    } catch (error) {
      throwIfStopped(request.signal);
      throw new TransientError(
        `${what}: connection dropped mid-body (${networkReason(error, this.options.timeoutMs)})`,
      );
    }
    if (response.status === 200) {
      try {
        return parsePageBody(body);
      } catch (error) {
        throw new TransientError(`${what}: ${(error as Error).message}`, { cause: error });
      }
    }
    const detail = errorText(body);
    if (isTransientStatus(response.status)) {
      throw new TransientError(`${what}: HTTP ${response.status}${detail}`, {
        retryAfterMs: parseRetryAfterMs(response.headers.get('retry-after'), this.options.clock.now()),
      });
    }
    if (response.status === 401 || response.status === 403) {
      // The key is a setting: a wrong one is a configuration error (exit code 2), never retried.
      throw new ConfigError(
        `${what}: the Retail API refused the API key (HTTP ${response.status}); check --api-key or RETAIL_API_KEY`,
      );
    }
    throw new TerminalError(`${what}: HTTP ${response.status}${detail}`);
  }
}

function networkReason(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `no complete response within ${timeoutMs} ms`;
  const code = e?.cause?.code;
  if (code) return `network error ${code}`;
  return e?.cause?.message ?? e?.message ?? 'network error';
}

/** The API's `{"error": "..."}` text, short, for the one-line message. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') return `: ${parsed.error.slice(0, 200)}`;
  } catch {
    // not JSON: say nothing more than the status
  }
  return '';
}
