import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withRetries } from '../../functions/app/retry.js';
import { RetriesExhaustedError, TerminalError, TransientError } from '../../functions/core/errors.js';
import { backoffDelayMs, isTransientStatus, parseRetryAfterMs } from '../../functions/core/retry.js';
import { FakeClock, MemoryLogger, SeqRandomness } from '../helpers/fakes.js';

const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 60_000 };

describe('retry policy', () => {
  test('backoff grows exponentially under full jitter and is capped', () => {
    const ceilings = [1, 2, 3, 4, 5, 6].map((attempt) => backoffDelayMs(policy, attempt, 0.999999));
    assert.deepEqual(ceilings, [99, 199, 399, 799, 999, 999]);
    assert.equal(backoffDelayMs(policy, 3, 0), 0, 'full jitter reaches down to zero');
  });

  test('a Retry-After from the server wins, capped, with a little jitter', () => {
    assert.equal(backoffDelayMs(policy, 1, 0, 3000), 3000);
    assert.equal(backoffDelayMs(policy, 1, 0.5, 3000), 3050);
    assert.equal(backoffDelayMs(policy, 1, 0, 10 * 60_000), 60_000);
  });

  const now = new Date('2025-07-19T10:00:00Z');
  const retryAfter: [string | null, number | undefined][] = [
    ['3', 3000],
    [' 0 ', 0],
    ['Sat, 19 Jul 2025 10:00:05 GMT', 5000],
    ['Sat, 19 Jul 2025 09:00:00 GMT', 0],
    ['soon', undefined],
    ['-1', undefined],
    [null, undefined],
  ];
  for (const [header, expected] of retryAfter) {
    test(`Retry-After ${JSON.stringify(header)} -> ${expected} ms`, () => {
      assert.equal(parseRetryAfterMs(header, now), expected);
    });
  }

  test('transient statuses', () => {
    assert.deepEqual(
      [200, 400, 401, 404, 408, 429, 500, 502, 503, 504].filter(isTransientStatus),
      [408, 429, 500, 502, 503, 504],
    );
  });
});

describe('withRetries', () => {
  const deps = () => ({
    policy,
    clock: new FakeClock(),
    randomness: new SeqRandomness(0.5),
    logger: new MemoryLogger(),
  });

  test('retries transient errors and honours Retry-After', async () => {
    const d = deps();
    let calls = 0;
    const result = await withRetries(
      'GET /sales',
      async () => {
        calls++;
        if (calls === 1) throw new TransientError('HTTP 429', { retryAfterMs: 2000 });
        if (calls === 2) throw new TransientError('HTTP 503');
        return 'page';
      },
      d,
    );
    assert.equal(result, 'page');
    assert.deepEqual(d.clock.sleeps, [2050, 100]);
    assert.equal(d.logger.entries.filter((e) => e.severity === 'WARNING').length, 2);
  });

  test('does not retry terminal errors', async () => {
    const d = deps();
    let calls = 0;
    await assert.rejects(
      withRetries(
        'GET /sales',
        async () => {
          calls++;
          throw new TerminalError('HTTP 401');
        },
        d,
      ),
      TerminalError,
    );
    assert.equal(calls, 1);
  });

  test('gives up after maxAttempts with a message naming the request and the last fault', async () => {
    const d = deps();
    let calls = 0;
    await assert.rejects(
      withRetries(
        'GET /sales page 3',
        async () => {
          calls++;
          throw new TransientError('HTTP 502');
        },
        d,
      ),
      (error: unknown) =>
        error instanceof RetriesExhaustedError &&
        error.message === 'GET /sales page 3 failed after 5 tries: HTTP 502',
    );
    assert.equal(calls, policy.maxAttempts);
  });
});
