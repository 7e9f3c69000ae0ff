import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  type IngestPorts,
  type IngestSettings,
  ingestObject,
  recoverClaims,
} from '../../functions/app/ingest-object.js';
import { processWaiting, replay, status } from '../../functions/app/pipeline.js';
import { openLocalRuntime } from '../../functions/compose-local.js';
import { TransientError } from '../../functions/core/errors.js';
import { LOADER_MAX_LINE_CHARS } from '../../functions/core/loader-limits.js';
import { claimKey, rowsKeyOf, shortenedName } from '../../functions/core/object-keys.js';
import type { ObjectStore } from '../../functions/ports/object-store.js';
import { MemoryLogger, readEvents, tempDir } from '../helpers/fakes.js';

const SALE = (id: number, customer = 'C1') =>
  `{"id":${id},"datetime":"2025-07-19T10:00:00Z","total_amount":"5","customer_id":"${customer}","items":[{"product_sku":"P1","quantity":1,"amount":"5"}]}`;
const settings = { maxFileBytes: 1024 * 1024 };

async function withRuntime(
  fn: (rt: Awaited<ReturnType<typeof openLocalRuntime>>, home: string) => Promise<void>,
) {
  await using dir = await tempDir();
  const runtime = await openLocalRuntime(dir.path, new MemoryLogger());
  try {
    await fn(runtime, dir.path);
  } finally {
    runtime.close();
  }
}

const count = async (
  rt: { warehouse: { query(sql: string): Promise<Record<string, unknown>[]> } },
  table: string,
) => Number((await rt.warehouse.query(`SELECT count(*) AS n FROM ${table}`))[0]?.n);

/** Every call the loader makes to the store, to prove an ignored event touches nothing. */
function spying(store: ObjectStore, calls: string[]): ObjectStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(property));
        return value.apply(target, args);
      };
    },
  });
}

/**
 * The claim a loader makes before it crashes: `sales/in/{path}` written, then moved into
 * processing/ under its generation, the path under in/ kept in the claim key.
 */
async function claimLeftByCrash(store: ObjectStore, path: string, body: string): Promise<string> {
  const written = await store.write(`sales/in/${path}`, body);
  const claim = claimKey('sales', written.generation, path);
  await store.move(`sales/in/${path}`, claim, {
    ifSourceGenerationMatch: written.generation,
    ifDestinationAbsent: true,
  });
  return claim;
}

describe('the loader on the local runtime', () => {
  test('two deliveries of the same event at once: one load; the other is a duplicate or comes back later', () =>
    withRuntime(async (rt, home) => {
      const info = await rt.store.write('sales/in/a.json', `${SALE(1)}\n${SALE(2)}\n`);
      const event = { bucket: 'b', name: 'sales/in/a.json', generation: info.generation };
      const outcomes = await Promise.allSettled([
        ingestObject(event, rt, settings),
        ingestObject(event, rt, settings),
      ]);
      const loaded = outcomes.filter((o) => o.status === 'fulfilled' && o.value.status === 'loaded');
      assert.equal(loaded.length, 1, 'loaded once');
      const other = outcomes.find((o) => !loaded.includes(o));
      // Found the claim while the first was still at work (retry later), or after it finished.
      if (other?.status === 'rejected') {
        assert.ok(other.reason instanceof TransientError, String(other.reason));
        assert.match(other.reason.message, /was claimed \d+ s ago by another delivery; trying again later/);
      } else assert.equal(other?.value.status, 'duplicate');
      assert.equal(await count(rt, 'raw.sales'), 2);
      assert.equal(await count(rt, 'ods.sales'), 2);
      const again = await ingestObject(event, rt, settings); // a late redelivery
      assert.equal(again.status, 'duplicate');
      assert.equal(await count(rt, 'raw.sales'), 2);
      assert.deepEqual(
        (await readEvents(home)).map((e) => e.type),
        ['file.loaded', 'merge.finished'],
      );
    }));

  test('events outside {entity}/in/ are acknowledged without touching the bucket', () =>
    withRuntime(async (rt) => {
      const calls: string[] = [];
      const ports: IngestPorts = { ...rt, store: spying(rt.store, calls) };
      for (const name of [
        'sales/archive/20250719/a.json',
        'sales/processing/123/a.json',
        'sales/failed/2025/07/19/10h/a.json',
        'sales/staging/runs/r/parts/00000001-00000001_1__a.json',
        'sales/in/nested/',
        'orders/in/a.json',
        'a.json',
      ]) {
        const outcome = await ingestObject({ bucket: 'b', name, generation: '1' }, ports, settings);
        assert.equal(outcome.status, 'ignored', name);
      }
      assert.deepEqual(calls, []);
    }));

  test('a file in a subfolder of in/ goes to failed/ saying why (GCS fires its event too), where replay finds it', () =>
    withRuntime(async (rt) => {
      const written = await rt.store.write('sales/in/nested/a.json', '{"id": 1}\n');
      const outcome = await ingestObject(
        { bucket: 'b', name: 'sales/in/nested/a.json', generation: written.generation },
        rt,
        settings,
      );
      assert.equal(outcome.status, 'failed');
      assert.match(
        outcome.status === 'failed' ? outcome.reason : '',
        /in a subfolder of sales\/in\/.*replay/,
      );
      assert.deepEqual(
        (await rt.store.list('sales/')).map((o) => o.key.replace(/\/\d{4}\/\d\d\/\d\d\/\d\dh\//, '/DATE/')),
        ['sales/failed/DATE/a.json', 'sales/failed/DATE/a.json.error.json'],
      );
    }));

  test('a subfolder file claimed, then left by a crash, is recovered as what it was: failed, never loaded under another name', () =>
    withRuntime(async (rt) => {
      await claimLeftByCrash(rt.store, 'nested/a.json', '{"id": 1}\n');
      const [outcome, ...more] = await recoverClaims(rt, settings, ['sales']);
      assert.equal(more.length, 0);
      assert.equal(outcome?.status, 'failed');
      assert.match(outcome?.status === 'failed' ? outcome.reason : '', /in a subfolder of sales\/in\//);
      assert.equal(outcome?.object, 'sales/in/nested/a.json');
      assert.equal(Number((await rt.warehouse.query('SELECT count(*) AS n FROM raw.sales'))[0]?.n), 0);
      assert.deepEqual(
        (await rt.store.list('sales/')).map((o) => o.key.replace(/\/\d{4}\/\d\d\/\d\d\/\d\dh\//, '/DATE/')),
        ['sales/failed/DATE/a.json', 'sales/failed/DATE/a.json.error.json'],
      );
    }));

  test('a file name too long for the layout (250 bytes in a folder bucket) goes to failed/ under a shortened name, also after a crash', () =>
    withRuntime(async (rt) => {
      const long = `${'a'.repeat(245)}.json`; // a file the folder can hold; its rows file name could not be
      const written = await rt.store.write(`sales/in/${long}`, `${SALE(1)}\n`);
      const outcome = await ingestObject(
        { bucket: 'b', name: `sales/in/${long}`, generation: written.generation },
        rt,
        settings,
      );
      assert.equal(outcome.status, 'failed', JSON.stringify(outcome));
      assert.match(
        outcome.status === 'failed' ? outcome.reason : '',
        /250 bytes under in\/.*rename it shorter/,
      );
      // The same file, claimed under its shortened name by a loader that then crashed.
      const again = await rt.store.write(`sales/in/${long}`, `${SALE(2)}\n`);
      await rt.store.move(`sales/in/${long}`, claimKey('sales', again.generation, shortenedName(long)), {
        ifSourceGenerationMatch: again.generation,
        ifDestinationAbsent: true,
      });
      const [recovered] = await recoverClaims(rt, settings, ['sales']);
      assert.equal(recovered?.status, 'failed');
      assert.match(recovered?.status === 'failed' ? recovered.reason : '', /name is too long/);
      assert.equal(await count(rt, 'raw.sales'), 0, 'nothing loaded');
      assert.deepEqual(await rt.store.list('sales/in/'), []);
      assert.deepEqual(await rt.store.list('sales/processing/'), []);
      const failed = (await rt.store.list('sales/failed/')).map((o) => o.key);
      assert.equal(failed.filter((k) => k.endsWith('.name-too-long')).length, 2, failed.join('\n'));
      assert.equal(failed.filter((k) => k.endsWith('.error.json')).length, 2);
      const shortened = failed.find((k) => k.endsWith('.name-too-long')) ?? '';
      const sidecar = JSON.parse(String(await rt.store.read(`${shortened}.error.json`)));
      assert.equal(sidecar.replay, undefined, 'no replay offered: the file needs a shorter name');
      await assert.rejects(replay(shortened, rt, settings), /name was too long .*rename it shorter/);
      assert.ok(await rt.store.stat(shortened), 'the file stays in failed/');
    }));

  const rejected: [string, string | Buffer, RegExp, IngestSettings?][] = [
    ['empty.json', '', /the file holds no records/],
    ['blank.json', '\n\n  \n', /the file holds no records/],
    ['array.json', '[{"id":1}]\n', /line 1: a record must be a JSON object, found a list/],
    [
      'latin1.json',
      Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d, 0x0a]),
      /not UTF-8 text/,
    ],
    ['shape.json', `${SALE(1)}\n{"id":2,"items":"x"}\n`, /line 2: items is a string, expected a list/],
    ['notes.txt', 'hello', /only files ending \.json are loaded/],
    ['big.json', `${SALE(1)}\n`.repeat(20_000), /over the limit of 1048576 bytes/],
    [
      // Rows of the first lines are already streamed out when line 3 is found too long.
      'long-line.json',
      `${SALE(1)}\n${SALE(2)}\n{"id":3,"note":"${'x'.repeat(LOADER_MAX_LINE_CHARS)}"}\n`,
      new RegExp(`line 3 is longer than ${LOADER_MAX_LINE_CHARS} characters`),
      { ...settings, maxFileBytes: 2 * LOADER_MAX_LINE_CHARS },
    ],
  ];
  for (const [name, body, reason, fileSettings = settings] of rejected) {
    test(`${name} goes to failed/ with a sidecar, nothing reaches raw`, () =>
      withRuntime(async (rt, home) => {
        const info = await rt.store.write(`sales/in/${name}`, body);
        const outcome = await ingestObject(
          { bucket: 'b', name: `sales/in/${name}`, generation: info.generation },
          rt,
          fileSettings,
        );
        assert.equal(outcome.status, 'failed');
        assert.ok(outcome.status === 'failed' && reason.test(outcome.reason), JSON.stringify(outcome));
        const failed = await rt.store.list('sales/failed/');
        assert.equal(failed.length, 2);
        const sidecar = JSON.parse(
          String(await rt.store.read(failed.find((o) => o.key.endsWith('.error.json'))?.key ?? '')),
        );
        assert.match(sidecar.reason, reason);
        assert.equal(sidecar.object, `sales/in/${name}`);
        assert.equal(await count(rt, 'raw.sales'), 0);
        assert.deepEqual(await rt.store.list('sales/processing/'), []);
        const [event] = await readEvents(home);
        assert.equal(event?.type, 'file.failed');
        assert.match(String(event?.data.reason), reason);
      }));
  }

  test('a claim left by a crash after loading is finished without loading twice', () =>
    withRuntime(async (rt) => {
      const info = await rt.store.write('sales/in/a.json', `${SALE(7)}\n`);
      // First delivery: claimed and loaded, then the process "dies" before archiving (no workflow either).
      const dying: IngestPorts = {
        ...rt,
        store: new Proxy(rt.store, {
          get(target, property, receiver) {
            const value = Reflect.get(target, property, receiver);
            if (property === 'move') {
              return (...args: Parameters<ObjectStore['move']>) => {
                if (args[1].includes('/archive/')) throw new Error('killed');
                return target.move(...args);
              };
            }
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
      };
      await assert.rejects(
        ingestObject({ bucket: 'b', name: 'sales/in/a.json', generation: info.generation }, dying, settings),
        /killed/,
      );
      assert.equal(await count(rt, 'raw.sales'), 1);
      assert.ok(await rt.store.stat(claimKey('sales', info.generation, 'a.json')));
      const [outcome] = await recoverClaims(rt, settings, ['sales']);
      assert.equal(outcome?.status, 'loaded');
      assert.ok(outcome?.status === 'loaded' && outcome.alreadyLoaded);
      assert.equal(await count(rt, 'raw.sales'), 1, 'not appended twice');
      assert.equal(await count(rt, 'ods.sales'), 1);
      assert.deepEqual(await rt.store.list('sales/processing/'), []);
    }));

  test('merges running at the same time neither lose nor duplicate rows', () =>
    withRuntime(async (rt) => {
      await rt.store.write('products/in/p.json', '{"product_sku":"P1","unit_amount":"5"}\n');
      await rt.store.write('customers/in/c.json', '{"customer_id":"C1"}\n');
      for (let f = 0; f < 6; f++) {
        await rt.store.write(
          `sales/in/s${f}.json`,
          `${Array.from({ length: 50 }, (_, i) => SALE(f * 50 + i + 1)).join('\n')}\n`,
        );
      }
      const files = await rt.store.list('sales/in/');
      await processWaiting(rt, settings, ['products', 'customers']);
      // Six files arrive at once: six loaders, six merges in flight together.
      const outcomes = await Promise.all(
        files.map((o) => ingestObject({ bucket: 'b', name: o.key, generation: o.generation }, rt, settings)),
      );
      assert.ok(outcomes.every((o) => o.status === 'loaded' && !o.mergeError));
      assert.equal(await count(rt, 'ods.sales'), 300);
      assert.equal(await count(rt, 'dmt.sales_items'), 300);
      assert.equal(
        Number((await rt.warehouse.query('SELECT count(DISTINCT id) AS n FROM dmt.sales_items'))[0]?.n),
        300,
      );
      assert.equal(await count(rt, 'dmt.sales_items_orphans'), 0);
    }));

  test('a file dropped by hand with any .json name is loaded like a connector file', () =>
    withRuntime(async (rt) => {
      const info = await rt.store.write(
        'customers/in/My Export (2).json',
        '{"customer_id":"C9","emails":["a@b.c"]}\n',
      );
      const outcome = await ingestObject(
        { bucket: 'b', name: 'customers/in/My Export (2).json', generation: info.generation },
        rt,
        settings,
      );
      assert.equal(outcome.status, 'loaded');
      assert.equal(await count(rt, 'ods.customers'), 1);
    }));

  test('a file named like a rows file, claimed and left by a crash, is finished, not left in processing/', () =>
    withRuntime(async (rt) => {
      await claimLeftByCrash(rt.store, 'x.rows.ndjson', `${SALE(1)}\n`);
      const [outcome, ...more] = await recoverClaims(rt, settings, ['sales']);
      assert.equal(more.length, 0);
      assert.equal(outcome?.status, 'failed');
      assert.match(outcome?.status === 'failed' ? outcome.reason : '', /only files ending \.json/);
      assert.deepEqual(await rt.store.list('sales/processing/'), []);
      assert.equal(await count(rt, 'raw.sales'), 0);
    }));

  test('a claim and its rows file left by a crash: the claim is finished once, the rows file is not taken for a claim', () =>
    withRuntime(async (rt) => {
      const claim = await claimLeftByCrash(rt.store, 'a.json', `${SALE(1)}\n`);
      await rt.store.write(rowsKeyOf(claim), 'half a rows file');
      const outcomes = await recoverClaims(rt, settings, ['sales']);
      assert.deepEqual(
        outcomes.map((o) => [o.status, o.object]),
        [['loaded', 'sales/in/a.json']],
      );
      assert.deepEqual(await rt.store.list('sales/processing/'), []);
      assert.equal(await count(rt, 'raw.sales'), 1);
    }));

  test('a data file named like a sidecar is counted and loaded, and can be replayed', () =>
    withRuntime(async (rt) => {
      await rt.store.write('sales/in/a.error.json', `${SALE(1)}\n`);
      assert.equal((await status({ store: rt.store, warehouse: undefined })).files.sales.in, 1);
      const [outcome] = (await processWaiting(rt, settings, ['sales'])).outcomes;
      assert.equal(outcome?.status, 'loaded');
      const archived = outcome?.status === 'loaded' ? outcome.archivedObject : '';
      assert.match(archived, /^sales\/archive\/.*\/a\.error\.json$/);
      assert.equal((await status({ store: rt.store, warehouse: undefined })).files.sales.archive, 1);
      assert.equal((await replay(archived, rt, settings)).status, 'loaded');
    }));

  test('new fields are reported bounded: at most 200 per file, a long name cut to its start and a digest', () =>
    withRuntime(async (rt, home) => {
      const long = `x${'y'.repeat(20_000)}`;
      const wide = `\u{1F600}${'\u00e9'.repeat(300)}\u0001`; // 4-byte, 2-byte and escaped characters
      const extras = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}`, i]));
      const line = JSON.stringify({ ...JSON.parse(SALE(1)), [long]: 1, [wide]: 2, ...extras });
      const info = await rt.store.write('sales/in/wide.json', `${line}\n`);
      const outcome = await ingestObject(
        { bucket: 'b', name: 'sales/in/wide.json', generation: info.generation },
        rt,
        settings,
      );
      assert.equal(outcome.status, 'loaded');
      const [drift, ...more] = (await readEvents(home)).filter((e) => e.type === 'schema.drift');
      assert.equal(more.length, 0);
      const fields = (drift?.data.fields ?? []) as string[];
      assert.equal(fields.length, 200);
      assert.ok(
        fields.every((f) => Buffer.byteLength(JSON.stringify(f)) <= 256 && !/\p{Cs}/u.test(f)),
        'every path at most 256 bytes of JSON, in whole characters',
      );
      const cut = fields.find((f) => f.startsWith('xyyy'));
      assert.match(cut ?? '', /^xy+…[0-9a-f]{12}$/);
      assert.match(fields.find((f) => f.startsWith('\u{1F600}')) ?? '', /^\u{1F600}\u00e9+…[0-9a-f]{12}$/u);
      // The row keeps the whole name in extras: only the report is cut.
      const [row] = await rt.warehouse.query('SELECT json_keys(extras) AS k FROM raw.sales');
      assert.ok(JSON.stringify(row?.k).includes(long));
      assert.equal(
        Number((await rt.warehouse.query('SELECT count(*) AS n FROM ops.schema_fields'))[0]?.n),
        200,
      );
    }));

  test('a sidecar a cut-short replay left alone in failed/ is neither counted as a failed file nor replayed', () =>
    withRuntime(async (rt) => {
      const sidecar = 'sales/failed/2025/07/19/10h/x.json.error.json';
      await rt.store.write(sidecar, '{"object":"sales/in/x.json","reason":"line 1: not valid JSON"}');
      const counted = await status({ store: rt.store, warehouse: undefined });
      assert.equal(counted.files.sales.failed, 0);
      await assert.rejects(replay(sidecar, rt, settings), /replay takes a file under/);
      assert.ok(await rt.store.stat(sidecar), 'left where it is');
    }));

  test('closing the runtime while a status snapshot read is queued: no warning, no snapshot left behind', async () => {
    await using dir = await tempDir();
    const logger = new MemoryLogger();
    const runtime = await openLocalRuntime(dir.path, logger);
    const pending = runtime.snapshot(); // queued in the warehouse behind nothing, not yet run
    runtime.close();
    await pending;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(
      logger.entries.filter((e) => e.severity === 'WARNING'),
      [],
    );
    assert.equal(existsSync(join(dir.path, 'status.json')), false);
  });

  test('closing while a warehouse read is running waits for it (closing under a running query hangs or crashes the process)', async () => {
    await using dir = await tempDir();
    for (let ticks = 0; ticks < 6; ticks++) {
      const runtime = await openLocalRuntime(dir.path, new MemoryLogger());
      const read = runtime.warehouse.status().then(
        () => 'read',
        (error: Error) => error.message,
      );
      for (let i = 0; i < ticks; i++) await new Promise((resolve) => setImmediate(resolve));
      runtime.close();
      assert.match(await read, /^(read|the warehouse is closed)$/);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // Closed for good: the next process opens it.
    const again = await openLocalRuntime(dir.path, new MemoryLogger());
    again.close();
  });
});
