/**
 * When and how long to wait before trying a request again. Pure: the caller passes the random
 * number and owns the clock, so the policy is table-testable.
 */
export interface RetryPolicy {
  /** Total tries of one request, the first included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** A server asking for a longer pause than this is waited for this long only. */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  maxAttempts: 8,
  baseDelayMs: 200,
  maxDelayMs: 20_000,
  maxRetryAfterMs: 120_000,
});

/** HTTP statuses a retry can cure: throttling and server-side faults. */
const TRANSIENT_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504]);

export function isTransientStatus(status: number): boolean {
  return TRANSIENT_STATUSES.has(status);
}

/**
 * Delay before try number `attempt + 1`, after `attempt` failed tries (1-based).
 * "Full jitter" exponential backoff; a server's Retry-After wins, with a little jitter on top so
 * that pages throttled together do not come back together.
 */
export function backoffDelayMs(
  policy: RetryPolicy,
  attempt: number,
  random: number,
  retryAfterMs?: number,
): number {
  if (retryAfterMs !== undefined) {
    return (
      Math.min(Math.max(0, retryAfterMs), policy.maxRetryAfterMs) + Math.floor(random * policy.baseDelayMs)
    );
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random * ceiling);
}

/** Retry-After is either delta-seconds or an HTTP date; anything else is ignored. */
export function parseRetryAfterMs(value: string | null | undefined, now: Date): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (!/[a-z]/i.test(text) || Number.isNaN(at)) return undefined;
  return Math.max(0, at - now.getTime());
}

export function shouldRetry(policy: RetryPolicy, attempt: number, retryable: boolean): boolean {
  return retryable && attempt < policy.maxAttempts;
}
