import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HttpRetailApi } from '../../functions/adapters/common/http-retail-api.js';
import { SystemClock } from '../../functions/adapters/common/system-clock.js';
import { type PipelineError, TerminalError, TransientError } from '../../functions/core/errors.js';
import { Secret } from '../../functions/core/secret.js';
import { type Fault, startSandbox } from '../../functions/sandbox/server.js';

const KEY = 'k-3f9c1b7e-secret';

async function withSandbox(
  options: { faults?: Fault[]; faultRate?: number; key?: string; timeoutMs?: number },
  fn: (api: HttpRetailApi) => Promise<void>,
) {
  const sandbox = await startSandbox({
    apiKey: KEY,
    faultRate: options.faultRate ?? 0,
    faults: options.faults ?? [],
    retryAfterSeconds: 3,
    slowMs: 400,
    seed: 3,
    sales: 600,
    products: 20,
    customers: 20,
  });
  try {
    await fn(
      new HttpRetailApi({
        baseUrl: sandbox.url,
        apiKey: new Secret(options.key ?? KEY),
        timeoutMs: options.timeoutMs ?? 5000,
        clock: new SystemClock(),
      }),
    );
  } finally {
    await sandbox.close();
  }
}

/** Rejects with the given class, and the key never shows in the message or its causes. */
async function rejectsWith(promise: Promise<unknown>, kind: typeof PipelineError, pattern: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof kind, `expected ${kind.name}, got ${String(error)}`);
    assert.match((error as Error).message, pattern);
    assert.ok(
      !JSON.stringify({ m: (error as Error).message, c: String((error as Error).cause) }).includes(KEY),
    );
    return true;
  });
}

describe('HttpRetailApi against the sandbox', () => {
  test('reads a page with records exactly as served', () =>
    withSandbox({}, async (api) => {
      const page = await api.fetchPage({ entity: 'sales', page: 2, pageSize: 100, startSalesId: 10n });
      assert.equal(page.page, 2);
      assert.equal(page.records.length, 100);
      assert.ok(page.records.every((r) => r.startsWith('{') && !r.includes('\n')));
    }));

  const transient: [Fault, RegExp][] = [
    ['429', /HTTP 429/],
    ['5xx', /HTTP 50[0234]/],
    ['truncate', /mid-body|not complete JSON/],
    ['reset', /network error|ECONNRESET|socket/i],
  ];
  for (const [fault, pattern] of transient) {
    test(`${fault} is a transient error`, () =>
      withSandbox({ faults: [fault], faultRate: 1 }, async (api) => {
        await rejectsWith(
          api.fetchPage({ entity: 'products', page: 1, pageSize: 10 }),
          TransientError,
          pattern,
        );
      }));
  }

  test('429 passes on the server Retry-After', () =>
    withSandbox({ faults: ['429'], faultRate: 1 }, async (api) => {
      const error = await api.fetchPage({ entity: 'sales', page: 1, pageSize: 10 }).catch((e: unknown) => e);
      assert.ok(error instanceof TransientError);
      assert.equal(error.retryAfterMs, 3000);
    }));

  test('a response slower than the timeout is a transient error', () =>
    withSandbox({ faults: ['slow'], faultRate: 1, timeoutMs: 100 }, async (api) => {
      await rejectsWith(
        api.fetchPage({ entity: 'sales', page: 1, pageSize: 10 }),
        TransientError,
        /within 100 ms/,
      );
    }));

  test('a wrong key is terminal and the message does not repeat it', () =>
    withSandbox({ key: 'wrong-key-value' }, async (api) => {
      await assert.rejects(api.fetchPage({ entity: 'sales', page: 1, pageSize: 10 }), (error: unknown) => {
        assert.ok(error instanceof TerminalError);
        assert.match(error.message, /refused the API key \(HTTP 401\)/);
        assert.ok(!error.message.includes('wrong-key-value'));
        return true;
      });
    }));

  test('a bad request is terminal with the API explanation', () =>
    withSandbox({}, async (api) => {
      await rejectsWith(
        api.fetchPage({ entity: 'sales', page: 1, pageSize: 999 }),
        TerminalError,
        /HTTP 400: page_size/,
      );
    }));

  test('an unreachable API is a transient error naming the cause', async () => {
    const closed = await startSandbox({
      apiKey: KEY,
      faultRate: 0,
      seed: 1,
      sales: 0,
      products: 0,
      customers: 0,
    });
    await closed.close(); // a port nobody listens on any more
    const api = new HttpRetailApi({
      baseUrl: closed.url,
      apiKey: new Secret(KEY),
      timeoutMs: 2000,
      clock: new SystemClock(),
    });
    await rejectsWith(
      api.fetchPage({ entity: 'sales', page: 1, pageSize: 10 }),
      TransientError,
      /ECONNREFUSED/,
    );
  });
});
