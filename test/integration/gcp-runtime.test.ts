import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { cloudEvent } from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { type Message, PubSub, type Subscription } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { HttpRetailApi } from '../../functions/adapters/common/http-retail-api.js';
import { CryptoRandomness, SystemClock } from '../../functions/adapters/common/system-clock.js';
import { GcsObjectStore } from '../../functions/adapters/gcp/gcs-object-store.js';
import { PubSubPublisher } from '../../functions/adapters/gcp/pubsub-publisher.js';
import { DuckDbWarehouse } from '../../functions/adapters/local/duckdb-warehouse.js';
import { EventLogPublisher } from '../../functions/adapters/local/event-log-publisher.js';
import { LocalWorkflowRunner, loadWorkflow } from '../../functions/adapters/local/local-workflow-runner.js';
import { extract } from '../../functions/app/extract.js';
import type { IngestPorts } from '../../functions/app/ingest-object.js';
import type { PipelineEvent } from '../../functions/core/events.js';
import { Secret } from '../../functions/core/secret.js';
import { loaderHandler } from '../../functions/entrypoints/loader-function.js';
import type { EventPublisher } from '../../functions/ports/events.js';
import { type Sandbox, startSandbox } from '../../functions/sandbox/server.js';
import { expectedFrom } from '../helpers/expected-mart.js';
import { type FakeGcs, NO_RETRY, startFakeGcs } from '../helpers/fake-gcp.mjs';
import { localHolderFake, MemoryLogger, tempDir } from '../helpers/fakes.js';
import { emulatorUnavailable, type PubSubEmulator, startPubSubEmulator } from '../helpers/pubsub-emulator.js';
import { canonicalRow, sortRows, tableNamed } from '../helpers/rows.js';

/**
 * The integration tier: the GCP runtime's pieces against the Pub/Sub emulator and an HTTP-level
 * GCS, the loader served by the Functions Framework and fed real CloudEvents. The composition is
 * mixed — GCS (HTTP level) and Pub/Sub (emulator) where they can run here, DuckDB and the local
 * workflow runner where they cannot — to show the same app code drives both runtimes.
 */

const UNAVAILABLE = emulatorUnavailable();
if (UNAVAILABLE && process.env.CI)
  throw new Error(`the integration tier needs the Pub/Sub emulator in CI: ${UNAVAILABLE}`);
const SKIP = UNAVAILABLE ? `skipped: ${UNAVAILABLE}` : false;

const PROJECT = 'retail-pipeline-test';
const BUCKET = 'pipeline';
const WORK_BUCKET = 'pipeline-work';
const KEY = 'integration-key-81b2';
const WORKFLOW = fileURLToPath(new URL('../../workflows/merge.yaml', import.meta.url));
const SQL_ROOT = fileURLToPath(new URL('../../sql/', import.meta.url));
const SQL = fileURLToPath(new URL('../../sql/duckdb/', import.meta.url));

describe('the GCP runtime against the Pub/Sub emulator, HTTP-level GCS and the Functions Framework', {
  skip: SKIP,
}, () => {
  let emulator: PubSubEmulator;
  let pubsub: PubSub;
  let subscription: Subscription;
  const received: { data: PipelineEvent; attributes: Record<string, string> }[] = [];
  let gcs: FakeGcs;
  let store: GcsObjectStore;
  let work: GcsObjectStore;
  let home: Awaited<ReturnType<typeof tempDir>>;
  let warehouse: DuckDbWarehouse;
  let events: PubSubPublisher;
  let server: Server;
  let url: string;
  let sandbox: Sandbox;

  before(async () => {
    emulator = await startPubSubEmulator(PROJECT);
    pubsub = new PubSub({ projectId: PROJECT, apiEndpoint: emulator.host, emulatorMode: true });
    const [topic] = await pubsub.createTopic('pipeline-events');
    [subscription] = await topic.createSubscription('all-events');
    subscription.on('message', (m: Message) => {
      received.push({ data: JSON.parse(m.data.toString('utf8')), attributes: { ...m.attributes } });
      m.ack();
    });
    events = new PubSubPublisher(topic);

    gcs = await startFakeGcs({ autoCreateBuckets: true });
    const storage = new Storage(gcs.clientOptions({ projectId: PROJECT, retryOptions: NO_RETRY }));
    store = new GcsObjectStore(storage.bucket(BUCKET));
    work = new GcsObjectStore(storage.bucket(WORK_BUCKET));

    home = await tempDir();
    warehouse = await DuckDbWarehouse.open({
      path: join(home.path, 'warehouse.duckdb'),
      sqlDir: SQL,
      // DuckDB reads the rows file the loader wrote to GCS through a downloaded copy.
      rowsFile: async (key) => {
        const path = join(home.path, `rows-${randomUUID()}.ndjson`);
        await writeFile(path, await store.read(key));
        return { path, release: () => rm(path, { force: true }) };
      },
    });
    const logger = new MemoryLogger();
    const clock = new SystemClock();
    const randomness = new CryptoRandomness();
    const workflows = new LocalWorkflowRunner(loadWorkflow(WORKFLOW, SQL_ROOT), {
      warehouse,
      events,
      clock,
      randomness,
      logger,
    });
    const ports: IngestPorts = { store, warehouse, events, workflows, clock, randomness, logger };
    cloudEvent(
      'integrationLoader',
      loaderHandler(async () => ({ ports, settings: { maxFileBytes: 64 * 2 ** 20 } }), logger),
    );
    server = getTestServer('integrationLoader');
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

    sandbox = await startSandbox({
      apiKey: KEY,
      faultRate: 0.1,
      retryAfterSeconds: 0,
      slowMs: 50,
      seed: 21,
      sales: 1500,
      products: 200,
      customers: 300,
    });
  });

  after(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    await sandbox?.close();
    await subscription?.close();
    await pubsub?.close();
    await emulator?.stop();
    await gcs?.stop();
    warehouse?.close();
    await home?.[Symbol.asyncDispose]();
  });

  const object = (name: string, generation: string) => ({
    bucket: BUCKET,
    name,
    generation,
    contentType: 'application/json',
    timeCreated: new Date().toISOString(),
  });

  /** A finalize event in binary mode (ce-* headers) or structured mode (one JSON envelope). */
  async function deliver(name: string, generation: string, mode: 'binary' | 'structured', id = randomUUID()) {
    const envelope = {
      specversion: '1.0',
      id,
      type: 'google.cloud.storage.object.v1.finalized',
      source: `//storage.googleapis.com/projects/_/buckets/${BUCKET}`,
      subject: `objects/${name}`,
      time: new Date().toISOString(),
    };
    const response =
      mode === 'binary'
        ? await fetch(url, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              ...Object.fromEntries(Object.entries(envelope).map(([k, v]) => [`ce-${k}`, v])),
            },
            body: JSON.stringify(object(name, generation)),
          })
        : await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/cloudevents+json' },
            body: JSON.stringify({
              ...envelope,
              datacontenttype: 'application/json',
              data: object(name, generation),
            }),
          });
    await response.arrayBuffer();
    return response.status;
  }

  async function until<T>(what: string, check: () => T | undefined, ms = 15_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = check();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await delay(50);
    }
  }

  const count = async (table: string) =>
    Number((await warehouse.query(`SELECT count(*) AS n FROM ${table}`))[0]?.n);

  test('EventPublisher contract: the local event log and Pub/Sub carry the same event and attributes', async () => {
    const event: PipelineEvent = {
      id: randomUUID(),
      type: 'file.failed',
      time: new Date().toISOString(),
      entity: 'sales',
      object: 'sales/in/x.json',
      data: { reason: 'line 2: not valid JSON', line: 2 },
    };
    const log = join(home.path, 'events.ndjson');
    const publishers: [
      string,
      EventPublisher,
      () => Promise<{ data: unknown; attributes: Record<string, string> }>,
    ][] = [
      [
        'event log',
        new EventLogPublisher(log),
        async () => {
          const { attributes, ...data } = JSON.parse((await readFile(log, 'utf8')).trim());
          return { data, attributes };
        },
      ],
      [
        'Pub/Sub',
        events,
        () => until('the event on the subscription', () => received.find((r) => r.data.id === event.id)),
      ],
    ];
    for (const [name, publisher, read] of publishers) {
      await publisher.publish(event);
      const got = await read();
      assert.deepEqual(got.data, event, name);
      assert.deepEqual(
        got.attributes,
        { type: 'file.failed', entity: 'sales', object: 'sales/in/x.json' },
        name,
      );
    }
  });

  test('connector and loader, mixed composition: sandbox -> GCS -> CloudEvents -> raw/ods/mart, events on Pub/Sub', async () => {
    const clock = new SystemClock();
    const api = new HttpRetailApi({ baseUrl: sandbox.url, apiKey: new Secret(KEY), timeoutMs: 5000, clock });
    const connector = {
      api,
      store,
      work,
      clock,
      randomness: new CryptoRandomness(),
      logger: new MemoryLogger(),
      holder: localHolderFake,
      ingested: warehouse,
      events,
      runLog: warehouse,
    };
    const settings = {
      concurrency: 3,
      pageSize: 100,
      targetFileBytes: 64 * 1024,
      retry: { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 10, maxRetryAfterMs: 10 },
      leaseTtlMs: 60_000,
    };
    let mode: 'binary' | 'structured' = 'binary';
    for (const entity of ['products', 'customers', 'sales'] as const) {
      const [mainBefore, workBefore] = [gcs.finalized(BUCKET).length, gcs.finalized(WORK_BUCKET).length];
      const report = await extract({ entity }, connector, settings);
      const files = report.runs.flatMap((r) => r.files);
      assert.ok(files.length);
      // Each object finalized in the pipeline bucket is one loader invocation: exactly one per
      // published file, none for the run's staged pages, cursors, parts and lease renewals.
      const invocations = gcs.finalized(BUCKET).slice(mainBefore);
      assert.deepEqual(invocations.map((f) => f.name).sort(), [...files].sort(), entity);
      assert.ok(
        gcs.finalized(WORK_BUCKET).length - workBefore > invocations.length,
        `${entity}: the staging writes went to the work bucket`,
      );
      assert.deepEqual(await work.list(`${entity}/staging/runs/`), [], `${entity}: staging cleaned up`);
      for (const file of await store.list(`${entity}/in/`)) {
        assert.equal(await deliver(file.key, file.generation, mode), 204);
        mode = mode === 'binary' ? 'structured' : 'binary';
      }
    }
    assert.deepEqual(await store.list('sales/in/'), []);
    assert.deepEqual(await store.list('sales/processing/'), []);
    const mart = sortRows(
      (await warehouse.query('SELECT * FROM dmt.sales_items')).map((r) =>
        canonicalRow(tableNamed('dmt.sales_items'), r),
      ),
    );
    const expected = expectedFrom(sandbox.data);
    assert.deepEqual(
      mart,
      sortRows(expected.mart.map((r) => canonicalRow(tableNamed('dmt.sales_items'), r))),
    );
    const loaded = await until('file.loaded events', () => {
      const n = received.filter((r) => r.data.type === 'file.loaded').length;
      return n >= 3 ? n : undefined;
    });
    assert.ok(loaded >= 3);
    const types = new Set(received.map((r) => r.attributes.type));
    for (const t of ['connector.run.finished', 'file.loaded', 'merge.finished'])
      assert.ok(types.has(t), `${t} published`);
  });

  test('a duplicated delivery is acknowledged and loads nothing twice', async () => {
    const info = await store.write('customers/in/dup.json', '{"customer_id":"DUP-1"}\n');
    const id = randomUUID();
    assert.equal(await deliver('customers/in/dup.json', info.generation, 'binary', id), 204);
    const raw = await count('raw.customers');
    assert.equal(await deliver('customers/in/dup.json', info.generation, 'structured', id), 204);
    assert.equal(await count('raw.customers'), raw);
  });

  test('objects outside {entity}/in/ are acknowledged without any Google API call', async () => {
    gcs.clearRequests();
    for (const name of [
      'sales/archive/20250719/x.json',
      'sales/processing/1/x.json',
      'sales/failed/2025/07/19/10h/x.json',
      'sales/staging/runs/r/run.json',
      'notes/readme.json',
    ]) {
      assert.equal(await deliver(name, '1', 'binary'), 204, name);
    }
    assert.deepEqual(gcs.requests, []);
  });

  test('a transient failure fails the delivery (Eventarc retries); the retry loads the file once', async () => {
    const info = await store.write(
      'products/in/late.json',
      '{"product_sku":"LATE-1","unit_amount":"3.50"}\n',
    );
    gcs.failNext({ match: 'objects.rewrite', status: 503, reason: 'backendError' });
    assert.equal(await deliver('products/in/late.json', info.generation, 'binary'), 500);
    assert.ok(await store.stat('products/in/late.json'), 'the file is still waiting');
    assert.equal(await deliver('products/in/late.json', info.generation, 'structured'), 204);
    assert.equal(
      Number(
        (await warehouse.query("SELECT count(*) AS n FROM raw.products WHERE product_sku = 'LATE-1'"))[0]?.n,
      ),
      1,
    );
  });

  test('a malformed file is settled in failed/ with its sidecar and acknowledged', async () => {
    const info = await store.write('sales/in/broken.json', '{"id":1}\nnot json\n');
    assert.equal(await deliver('sales/in/broken.json', info.generation, 'binary'), 204);
    const failed = (await store.list('sales/failed/')).map((o) => o.key);
    assert.equal(failed.length, 2);
    const sidecar = JSON.parse(String(await store.read(failed.find((k) => k.endsWith('.error.json')) ?? '')));
    assert.equal(sidecar.line, 2);
    await until('file.failed on Pub/Sub', () =>
      received.find((r) => r.data.type === 'file.failed' && r.data.object === 'sales/in/broken.json'),
    );
  });

  test('a file whose name is too long for the layout goes to failed/ under a shortened name, saying why', async () => {
    // It fits GCS's 1,024 bytes in in/, but its claim name (processing/ and the generation) would not.
    const name = `customers/in/${'é'.repeat(480)}.json`;
    const info = await store.write(name, '{"customer_id":"LONG-1"}\n');
    const raw = await count('raw.customers');
    assert.equal(await deliver(name, info.generation, 'binary'), 204);
    assert.equal(await store.stat(name), undefined, 'nothing left in in/');
    assert.deepEqual(await store.list('customers/processing/'), []);
    const failed = (await store.list('customers/failed/')).map((o) => o.key);
    const file = failed.find((k) => k.endsWith('.name-too-long'));
    assert.ok(file, failed.join(', '));
    assert.ok(Buffer.byteLength(file) < 200, file);
    const sidecar = JSON.parse(String(await store.read(`${file}.error.json`)));
    assert.equal(sidecar.object, name);
    assert.match(sidecar.reason, /name is too long .*rename it shorter/);
    assert.equal(String(await store.read(file)), '{"customer_id":"LONG-1"}\n', 'the bytes are kept');
    assert.equal(await count('raw.customers'), raw, 'nothing loaded');
    assert.equal(await deliver(name, info.generation, 'structured'), 204, 'a second delivery is a duplicate');
    assert.equal((await store.list('customers/failed/')).length, failed.length);
  });
});
