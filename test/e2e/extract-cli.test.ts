import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { FsObjectStore } from '../../functions/adapters/local/fs-object-store.js';
import { type Sandbox, startSandbox } from '../../functions/sandbox/server.js';
import { filesContaining, runCli } from '../helpers/cli.js';
import { recordsIn, tempDir } from '../helpers/fakes.js';

const KEY = 'e2e-2b8f0c1d-api-key';
const sorted = (xs: readonly string[]) => [...xs].sort();

async function sandboxWith(options: { sales: number; faultRate: number }): Promise<Sandbox> {
  return startSandbox({
    apiKey: KEY,
    faultRate: options.faultRate,
    retryAfterSeconds: 0,
    slowMs: 150,
    seed: 11,
    sales: options.sales,
    products: 700,
    customers: 900,
  });
}

function assertNoKey(...texts: string[]): void {
  for (const text of texts) assert.ok(!text.includes(KEY), 'the API key must not appear in any output');
}

describe('retail-pipeline extract against the sandbox', () => {
  test('with 30% faults and sales arriving meanwhile: every sale lands exactly once, no page fetched whole twice', async () => {
    await using home = await tempDir();
    const sandbox = await sandboxWith({ sales: 4000, faultRate: 0.3 });
    try {
      const env = { RETAIL_API_URL: sandbox.url, RETAIL_API_KEY: KEY, PIPELINE_HOME: home.path };
      // New sales keep arriving while the connector pages through /sales.
      const arrivals = setInterval(() => sandbox.data.appendSales(25), 50);
      const first = await runCli(
        ['extract', '--entity', 'sales', '--page-size', '100', '--file-bytes', '200KiB'],
        env,
      );
      clearInterval(arrivals);
      assert.equal(first.code, 0, first.stderr);
      sandbox.data.appendSales(60);
      const second = await runCli(['extract', '--entity', 'sales', '--page-size', '100'], env);
      assert.equal(second.code, 0, second.stderr);
      for (const entity of ['products', 'customers']) {
        const r = await runCli(['extract', '--entity', entity], env);
        assert.equal(r.code, 0, r.stderr);
        assertNoKey(r.stdout, r.stderr);
      }

      const store = new FsObjectStore(join(home.path, 'bucket'));
      assert.deepEqual(sorted(await recordsIn(store, 'sales/in/')), sorted(sandbox.data.sales));
      assert.deepEqual(sorted(await recordsIn(store, 'products/in/')), sorted(sandbox.data.products));
      assert.deepEqual(sorted(await recordsIn(store, 'customers/in/')), sorted(sandbox.data.customers));
      assert.ok((await store.list('sales/in/')).length >= 3, 'the first run wrote several files of ~200 KiB');
      const work = new FsObjectStore(join(home.path, 'work'));
      assert.deepEqual(await work.list('sales/staging/runs/'), [], 'nothing left in staging');
      assert.deepEqual(await store.list('sales/staging/'), [], 'nothing staged in the bucket folder');

      const twice = [...sandbox.stats.pagesServed].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [], 'no page received whole was fetched again');
      assert.ok(
        (sandbox.stats.outcomes['429'] ?? 0) + (sandbox.stats.outcomes.reset ?? 0) > 5,
        'faults did happen',
      );
      assertNoKey(first.stdout, first.stderr, second.stdout, second.stderr);
      assert.deepEqual(await filesContaining(home.path, KEY), []);
      // The second run fetched exactly the sales the first did not see: 60 and more that arrived after its last page.
      const firstCount = Number(/^sales: (\d+) records from sale id 1,/.exec(first.stdout)?.[1]);
      const secondCount = Number(/^sales: (\d+) records from sale id \d+,/.exec(second.stdout)?.[1]);
      assert.ok(secondCount >= 60);
      assert.equal(firstCount + secondCount, sandbox.data.sales.length);
    } finally {
      await sandbox.close();
    }
  });

  test('killed mid-run with SIGKILL, a re-run continues after the last durable page', async () => {
    await using home = await tempDir();
    const sandbox = await sandboxWith({ sales: 12_000, faultRate: 0.1 });
    try {
      const env = { RETAIL_API_URL: sandbox.url, RETAIL_API_KEY: KEY, PIPELINE_HOME: home.path };
      const args = [
        'extract',
        '--entity',
        'sales',
        '--page-size',
        '50',
        '--concurrency',
        '3',
        '--file-bytes',
        '100KiB',
      ];
      const totalPages = Math.ceil(sandbox.data.sales.length / 50);
      const killed = await runCli(args, env, (child) => {
        void (async () => {
          while (sandbox.pagesServedTotal() < totalPages * 0.4) await delay(5);
          child.kill('SIGKILL');
        })();
      });
      assert.equal(killed.signal, 'SIGKILL');
      const servedBeforeKill = sandbox.pagesServedTotal();
      assert.ok(servedBeforeKill < totalPages, 'killed before the end');

      const rerun = await runCli(args, env);
      assert.equal(rerun.code, 0, rerun.stderr);
      assert.match(rerun.stdout, /resumed; \d+ pages were already durable/);
      const servedByRerun = sandbox.pagesServedTotal() - servedBeforeKill;
      // The re-run fetches what was left: the pages in flight at the kill at most come again (+1 end probe).
      assert.ok(
        servedByRerun <= totalPages - servedBeforeKill + 3 + 1,
        `re-run fetched ${servedByRerun} pages; ${servedBeforeKill} of ${totalPages} were fetched before the kill`,
      );
      const store = new FsObjectStore(join(home.path, 'bucket'));
      assert.deepEqual(sorted(await recordsIn(store, 'sales/in/')), sorted(sandbox.data.sales));
      assert.deepEqual(await new FsObjectStore(join(home.path, 'work')).list('sales/staging/runs/'), []);
    } finally {
      await sandbox.close();
    }
  });

  test('a fault that outlasts the retries fails with exit 1 and one line without the key', async () => {
    await using home = await tempDir();
    const sandbox = await startSandbox({
      apiKey: KEY,
      faultRate: 1,
      faults: ['5xx'],
      seed: 1,
      sales: 10,
      products: 1,
      customers: 1,
    });
    try {
      const r = await runCli(
        [
          'extract',
          '--entity',
          'products',
          '--max-attempts',
          '2',
          '--api-url',
          sandbox.url,
          '--api-key',
          KEY,
        ],
        {
          PIPELINE_HOME: home.path,
        },
      );
      assert.equal(r.code, 1);
      const errorLine = r.stderr.split('\n').filter((l) => l.startsWith('retail-pipeline:'));
      assert.equal(errorLine.length, 1);
      assert.match(
        errorLine[0] ?? '',
        /^retail-pipeline: GET \/products page 1 failed after 2 tries: GET \/products\?page=1&page_size=250: HTTP 50\d/,
      );
      assert.ok(!r.stderr.includes('    at '), 'no stack trace');
      assertNoKey(r.stdout, r.stderr);
    } finally {
      await sandbox.close();
    }
  });

  const usage: [string[], Record<string, string>, RegExp][] = [
    [
      ['extract', '--entity', 'orders'],
      { RETAIL_API_URL: 'http://x', RETAIL_API_KEY: KEY },
      /--entity must be one of products, customers, sales/,
    ],
    [['extract'], {}, /--entity is required/],
    [['extract', '--entity', 'sales', '--bogus'], {}, /Unknown option '--bogus'/],
    [
      ['extract', '--entity', 'sales', '--start-sales-id', 'ten'],
      {},
      /--start-sales-id must be a positive integer/,
    ],
    [['extract', '--entity', 'products', '--start-sales-id', '5'], {}, /applies to --entity sales only/],
    [['extract', '--entity', 'sales', '--api-url', 'http://127.0.0.1:1'], {}, /missing Retail API key/],
    [['extract', '--entity', 'sales', '--api-key', KEY], {}, /missing Retail API URL/],
    [['frobnicate'], {}, /unknown command "frobnicate"/],
    [['sandbox', '--fault-rate', '2'], {}, /--fault-rate must be a number from 0 to 1/],
  ];
  for (const [args, env, message] of usage) {
    test(`usage error, exit 2: ${args.join(' ')}`, async () => {
      const r = await runCli(args, env);
      assert.equal(r.code, 2);
      assert.match(r.stderr.split('\n')[0] ?? '', message);
      assert.ok(!r.stderr.includes('    at '));
      assertNoKey(r.stdout, r.stderr);
    });
  }

  test('the sandbox command serves the API until stopped', async () => {
    let url = '';
    const r = await runCli(['sandbox', '--port', '0', '--sales', '300', '--api-key', KEY], {}, (child) => {
      child.stdout?.on('data', async (d: Buffer) => {
        url = /listening on (\S+)/.exec(String(d))?.[1] ?? url;
        if (!url) return;
        const response = await fetch(`${url}/sales?page=2&page_size=100`, { headers: { 'X-API-Key': KEY } });
        const body = (await response.json()) as { data: unknown[]; total_items: number };
        assert.equal(body.data.length, 100);
        assert.ok(body.total_items >= 300);
        child.kill('SIGTERM');
      });
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(url.startsWith('http://127.0.0.1:'));
  });
});
