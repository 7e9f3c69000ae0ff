import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Storage } from '@google-cloud/storage';
import { GcsObjectStore } from '../../functions/adapters/gcp/gcs-object-store.js';
import { DuckDbWarehouse } from '../../functions/adapters/local/duckdb-warehouse.js';
import { EventLogPublisher } from '../../functions/adapters/local/event-log-publisher.js';
import { LocalWorkflowRunner, loadWorkflow } from '../../functions/adapters/local/local-workflow-runner.js';
import { type IngestPorts, ingestObject } from '../../functions/app/ingest-object.js';
import {
  DEFAULT_RECONCILE_SETTINGS,
  EXCLUSIVE_RECONCILE_SETTINGS,
  reconcile,
} from '../../functions/app/reconcile.js';
import { openLocalRuntime } from '../../functions/compose-local.js';
import { CLAIM_STALE_AFTER_MS } from '../../functions/core/loader-limits.js';
import { claimKey } from '../../functions/core/object-keys.js';
import type { Clock } from '../../functions/ports/clock.js';
import { runCli } from '../helpers/cli.js';
import { type FakeGcs, NO_RETRY, startFakeGcs } from '../helpers/fake-gcp.mjs';
import { MemoryLogger, readEvents, SeqRandomness, tempDir } from '../helpers/fakes.js';

const settings = { maxFileBytes: 1024 * 1024 };
const PRODUCT = (sku: string) => `{"product_sku":"${sku}","description":"d","unit_amount":"1.50"}`;
const SALE = (id: number) =>
  `{"id":${id},"datetime":"2025-07-19T10:00:00Z","total_amount":"5","customer_id":"C1","items":[{"product_sku":"P1","quantity":1,"amount":"5"}]}`;

const count = async (warehouse: { query(sql: string): Promise<Record<string, unknown>[]> }, sql: string) =>
  Number((await warehouse.query(sql))[0]?.n);

describe('the reconciler on the local runtime', () => {
  test('a file still being copied into in/ is left for the next pass; a subfolder file goes to failed/', async () => {
    await using dir = await tempDir();
    const rt = await openLocalRuntime(dir.path, new MemoryLogger());
    try {
      // Written by a person (not through this store), just now: it may still be growing.
      await rt.store.write('products/in/sub/deep.json', `${PRODUCT('P2')}\n`);
      await writeFile(rt.store.pathOf('products/in/copying.json'), `${PRODUCT('P1')}\n`);
      const first = await reconcile(rt, { ...settings, quietMs: 60_000 }, EXCLUSIVE_RECONCILE_SETTINGS);
      assert.equal(first.busy, 1);
      assert.deepEqual(
        first.outcomes.map((o) => [o.status, o.object]),
        [['failed', 'products/in/sub/deep.json']],
      );
      assert.ok(await rt.store.stat('products/in/copying.json'), 'left in in/');
      const second = await reconcile(rt, { ...settings, quietMs: 0 }, EXCLUSIVE_RECONCILE_SETTINGS);
      assert.deepEqual(
        second.outcomes.map((o) => [o.status, o.object]),
        [['loaded', 'products/in/copying.json']],
      );
    } finally {
      rt.close();
    }
  });

  test('finishes a claim a crash left, loads a file whose event was lost, merges a load left unmerged; publishes each', async () => {
    await using dir = await tempDir();
    const rt = await openLocalRuntime(dir.path, new MemoryLogger());
    try {
      // A crash right after the claim: the file sits in processing/, nothing loaded.
      const crashed = await rt.store.write('sales/in/crashed.json', `${SALE(1)}\n${SALE(2)}\n`);
      await rt.store.move('sales/in/crashed.json', claimKey('sales', crashed.generation, 'crashed.json'), {
        ifDestinationAbsent: true,
      });
      // A file whose arrival event never came.
      await rt.store.write('products/in/lost.json', `${PRODUCT('P1')}\n`);
      // A load whose merge could not be started.
      const unmerged = await rt.store.write('customers/in/c.json', '{"customer_id":"C1","name":"Ann"}\n');
      const outcome = await ingestObject(
        { bucket: 'b', name: 'customers/in/c.json', generation: unmerged.generation },
        { ...rt, workflows: { start: () => Promise.reject(new Error('Workflows unavailable')) } },
        settings,
      );
      assert.equal(outcome.status === 'loaded' && outcome.mergeError, 'Workflows unavailable');
      assert.equal(await count(rt.warehouse, 'SELECT count(*) AS n FROM ods.customers'), 0);

      const report = await reconcile(rt, settings, EXCLUSIVE_RECONCILE_SETTINGS);
      assert.deepEqual(
        report.healed.map((h) => [h.action, h.object, h.outcome]).sort(),
        [
          ['arrival.loaded', 'products/in/lost.json', 'loaded'],
          ['claim.finished', 'sales/in/crashed.json', 'loaded'],
          ['merge.started', 'customers/in/', 'started'],
        ].sort(),
      );
      assert.deepEqual(report.stuck, []);
      assert.equal(await count(rt.warehouse, 'SELECT count(*) AS n FROM raw.sales'), 2);
      assert.equal(await count(rt.warehouse, 'SELECT count(*) AS n FROM ods.customers'), 1);
      assert.equal(await count(rt.warehouse, 'SELECT count(*) AS n FROM ods.products'), 1);
      for (const entity of ['sales', 'products', 'customers']) {
        assert.deepEqual(await rt.store.list(`${entity}/in/`), [], `${entity}/in/ empty`);
        assert.deepEqual(await rt.store.list(`${entity}/processing/`), [], `${entity}/processing/ empty`);
      }
      const healed = (await readEvents(dir.path)).filter((e) => e.type === 'reconcile.healed');
      assert.deepEqual(healed.map((e) => e.data.action).sort(), [
        'arrival.loaded',
        'claim.finished',
        'merge.started',
      ]);

      // A second pass finds nothing left.
      const again = await reconcile(rt, settings, EXCLUSIVE_RECONCILE_SETTINGS);
      assert.deepEqual([again.healed, again.stuck, again.busy], [[], [], 0]);
    } finally {
      rt.close();
    }
  });

  test('`retail-pipeline reconcile` heals a crashed claim and says what it healed', async () => {
    await using dir = await tempDir();
    const rt = await openLocalRuntime(dir.path, new MemoryLogger());
    try {
      const info = await rt.store.write('sales/in/x.json', `${SALE(7)}\n`);
      await rt.store.move('sales/in/x.json', claimKey('sales', info.generation, 'x.json'));
    } finally {
      rt.close();
    }
    const first = await runCli(['reconcile', '--home', dir.path]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      /^healed claim\.finished sales\/in\/x\.json \(waited \d+ s\): loaded -> sales\/archive\/\d{8}\/x\.json$/m,
    );
    const second = await runCli(['reconcile', '--home', dir.path, '--json']);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(JSON.parse(second.stdout).healed, []);
  });
});

/** A clock some minutes ahead of the bucket's, as the reconciler's is when it finds old work. */
class AheadClock implements Clock {
  constructor(public aheadMs = 0) {}
  now() {
    return new Date(Date.now() + this.aheadMs);
  }
  async sleep(ms: number) {
    await new Promise((r) => setTimeout(r, ms));
  }
}

describe('the reconciler against HTTP-level GCS (atomic preconditions, as deployed)', () => {
  let gcs: FakeGcs;
  let store: GcsObjectStore;
  let home: Awaited<ReturnType<typeof tempDir>>;
  let warehouse: DuckDbWarehouse;
  const clock = new AheadClock();
  let ports: IngestPorts;

  before(async () => {
    gcs = await startFakeGcs({ autoCreateBuckets: true });
    store = new GcsObjectStore(new Storage(gcs.clientOptions({ retryOptions: NO_RETRY })).bucket('pipeline'));
    home = await tempDir();
    warehouse = await DuckDbWarehouse.open({
      path: join(home.path, 'warehouse.duckdb'),
      sqlDir: fileURLToPath(new URL('../../sql/duckdb/', import.meta.url)),
      rowsFile: async (key) => {
        const path = join(home.path, `rows-${randomUUID()}.ndjson`);
        await writeFile(path, await store.read(key));
        return { path, release: () => rm(path, { force: true }) };
      },
    });
    const events = new EventLogPublisher(join(home.path, 'events.ndjson'));
    const randomness = new SeqRandomness();
    const logger = new MemoryLogger();
    const workflows = new LocalWorkflowRunner(
      loadWorkflow(
        fileURLToPath(new URL('../../workflows/merge.yaml', import.meta.url)),
        fileURLToPath(new URL('../../sql/', import.meta.url)),
      ),
      { warehouse, events, clock, randomness, logger },
    );
    ports = { store, warehouse, events, workflows, clock, randomness, logger };
  });
  after(async () => {
    warehouse?.close();
    await gcs?.stop();
    await home?.[Symbol.asyncDispose]();
  });

  test('young work is left to its delivery; stale work is healed once the thresholds pass', async () => {
    const info = await store.write('sales/in/young.json', `${SALE(11)}\n`);
    const claimed = claimKey('sales', info.generation, 'young.json');
    await store.move('sales/in/young.json', claimed, { ifSourceGenerationMatch: info.generation });
    await store.write('products/in/waiting.json', `${PRODUCT('W1')}\n`);

    clock.aheadMs = 0;
    const now = await reconcile(ports, settings, DEFAULT_RECONCILE_SETTINGS, ['sales', 'products']);
    assert.deepEqual([now.healed, now.stuck], [[], []]);
    assert.ok(await store.stat(claimed), 'a young claim stays with its delivery');

    clock.aheadMs = CLAIM_STALE_AFTER_MS + 1000;
    const later = await reconcile(ports, settings, DEFAULT_RECONCILE_SETTINGS, ['sales', 'products']);
    assert.deepEqual(
      later.healed.map((h) => h.action),
      ['claim.finished'],
      'the claim is stale; the arrival has not waited 30 minutes yet',
    );
    clock.aheadMs = DEFAULT_RECONCILE_SETTINGS.arrivalLostAfterMs + 1000;
    const latest = await reconcile(ports, settings, DEFAULT_RECONCILE_SETTINGS, ['sales', 'products']);
    assert.deepEqual(
      latest.healed.map((h) => [h.action, h.object]),
      [['arrival.loaded', 'products/in/waiting.json']],
    );
  });

  test('two reconcilers and a redelivered event racing for the same files load each exactly once', async () => {
    const names: string[] = [];
    clock.aheadMs = 0;
    for (let i = 0; i < 4; i++) {
      const name = `products/in/race-${i}.json`;
      const info = await store.write(name, `${PRODUCT(`R${i}a`)}\n${PRODUCT(`R${i}b`)}\n`);
      // Half of them were claimed by a delivery that then died; all have waited long.
      let waiting = name;
      if (i % 2) {
        waiting = claimKey('products', info.generation, `race-${i}.json`);
        await store.move(name, waiting);
      }
      gcs.backdate('pipeline', waiting, DEFAULT_RECONCILE_SETTINGS.arrivalLostAfterMs + 1000);
      names.push(name);
    }
    const waiting = await store.list('products/in/');
    const results = await Promise.allSettled([
      reconcile(ports, settings, DEFAULT_RECONCILE_SETTINGS, ['products']),
      reconcile(ports, settings, DEFAULT_RECONCILE_SETTINGS, ['products']),
      ...waiting.map((o) =>
        ingestObject({ bucket: 'pipeline', name: o.key, generation: o.generation }, ports, {
          ...settings,
          claimStaleAfterMs: CLAIM_STALE_AFTER_MS,
        }),
      ),
    ]);
    const [a, b, ...deliveries] = results;
    assert.ok(a?.status === 'fulfilled' && b?.status === 'fulfilled');
    // Whoever lost a race saw the work in progress elsewhere: nothing is reported stuck.
    assert.deepEqual([...a.value.stuck, ...b.value.stuck], []);
    for (const d of deliveries) {
      if (d.status === 'rejected') assert.equal(d.reason?.name, 'ClaimHeldError', String(d.reason));
    }
    for (const [i, name] of names.entries()) {
      const rows = await count(
        warehouse,
        `SELECT count(*) AS n FROM raw.products WHERE SYS_FILE_NAME = '${name}'`,
      );
      assert.equal(rows, 2, `${name}: its two rows once`);
      const archived = (await store.list('products/archive/')).filter((o) =>
        o.key.endsWith(`race-${i}.json`),
      );
      assert.equal(archived.length, 1, `${name}: one archived copy`);
    }
    assert.deepEqual(await store.list('products/in/'), []);
    assert.deepEqual(await store.list('products/processing/'), []);
    const loadedEvents = (await readEvents(home.path)).filter(
      (e) => e.type === 'file.loaded' && String(e.object).includes('race-'),
    );
    assert.equal(new Set(loadedEvents.map((e) => e.object)).size, 4);
    // Events are at least once: a repeat is possible only for a settle a crash cut short, not here.
    assert.equal(loadedEvents.length, 4);
  });
});
