import {
  describeError,
  isRetryable,
  RetriesExhaustedError,
  TransientError,
  throwIfStopped,
} from '../core/errors.js';
import { backoffDelayMs, type RetryPolicy, shouldRetry } from '../core/retry.js';
import type { Clock, Randomness } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

/**
 * Runs `operation` until it succeeds, a terminal error occurs, or the policy's tries are used up.
 * Only errors that say they are retryable are retried. A stop request ends the wait between tries
 * at once (StoppedError).
 */
export async function withRetries<T>(
  what: string,
  operation: () => Promise<T>,
  deps: {
    policy: RetryPolicy;
    clock: Clock;
    randomness: Randomness;
    logger: Logger;
    signal?: AbortSignal | undefined;
  },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    throwIfStopped(deps.signal);
    try {
      return await operation();
    } catch (error) {
      throwIfStopped(deps.signal);
      const retryable = isRetryable(error);
      if (!shouldRetry(deps.policy, attempt, retryable)) {
        if (!retryable) throw error;
        throw new RetriesExhaustedError(`${what} failed after ${attempt} tries: ${describeError(error)}`, {
          cause: error,
        });
      }
      const retryAfterMs = error instanceof TransientError ? error.retryAfterMs : undefined;
      const delayMs = backoffDelayMs(deps.policy, attempt, deps.randomness.random(), retryAfterMs);
      deps.logger.log('WARNING', `${what} will be retried`, {
        attempt,
        delayMs,
        reason: describeError(error),
      });
      await stoppable(deps.clock.sleep(delayMs), deps.signal);
    }
  }
}

/** `wait`, or less if `signal` asks to stop first. */
function stoppable(wait: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return wait;
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    void wait.then(done);
  });
}
