import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FsObjectStore } from '../../functions/adapters/local/fs-object-store.js';
import { type ExtractPorts, type ExtractSettings, extract } from '../../functions/app/extract.js';
import type { Entity } from '../../functions/core/entities.js';
import {
  LeaseHeldError,
  RetriesExhaustedError,
  TerminalError,
  TransientError,
} from '../../functions/core/errors.js';
import { integerOf, memberText } from '../../functions/core/json-text.js';
import type { PageResult } from '../../functions/core/page.js';
import { type ObjectStore, streamCopy } from '../../functions/ports/object-store.js';
import type { PageRequest, RetailApi } from '../../functions/ports/retail-api.js';
import {
  FakeClock,
  localHolderFake,
  MemoryLogger,
  recordsIn,
  SeqRandomness,
  tempDir,
} from '../helpers/fakes.js';

/** An in-memory Retail API: ordered records, page-number pagination, request log, scripted faults. */
class FakeApi implements RetailApi {
  readonly requests: PageRequest[] = [];
  inFlight = 0;
  maxInFlight = 0;
  fault: ((request: PageRequest, attempt: number) => Error | undefined) | undefined;
  private attempts = new Map<string, number>();
  constructor(readonly records: Record<Entity, string[]>) {}

  async fetchPage(request: PageRequest): Promise<PageResult> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      const key = `${request.entity}:${request.startSalesId}:${request.page}`;
      const attempt = (this.attempts.get(key) ?? 0) + 1;
      this.attempts.set(key, attempt);
      const error = this.fault?.(request, attempt);
      if (error) throw error;
      this.requests.push(request);
      let all = this.records[request.entity];
      if (request.startSalesId !== undefined) {
        const start = request.startSalesId;
        all = all.filter((r) => (integerOf(memberText(r, 'id')) ?? 0n) >= start);
      }
      const from = (request.page - 1) * request.pageSize;
      return {
        records: all.slice(from, from + request.pageSize),
        page: request.page,
        pageSize: request.pageSize,
        totalItems: all.length,
        totalPages: Math.ceil(all.length / request.pageSize),
      };
    } finally {
      this.inFlight--;
    }
  }
}

const sale = (id: number) => `{"id":${id},"total_amount":${id}.10,"items":[]}`;
const salesUpTo = (n: number) => Array.from({ length: n }, (_, i) => sale(i + 1));

const settings: ExtractSettings = {
  concurrency: 3,
  pageSize: 10,
  targetFileBytes: 700,
  retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 10 },
  leaseTtlMs: 60_000,
};

interface Stores {
  /** The pipeline bucket (files published into in/). */
  readonly store: ObjectStore;
  /** The connector's work area. */
  readonly work: ObjectStore;
}

function stores(root: string): { store: FsObjectStore; work: FsObjectStore } {
  return { store: new FsObjectStore(join(root, 'bucket')), work: new FsObjectStore(join(root, 'work')) };
}

function ports({ store, work }: Stores, api: RetailApi): ExtractPorts {
  return {
    api,
    store,
    work,
    clock: new FakeClock(),
    randomness: new SeqRandomness(),
    logger: new MemoryLogger(),
    holder: localHolderFake,
  };
}

const sorted = (xs: string[]) => [...xs].sort();

/** Stores that die (like kill -9) at the n-th change they are asked to make, counted across both. */
class Crash {
  changes = 0;
  constructor(readonly at: number) {}
  tick(): void {
    if (++this.changes >= this.at) throw new Error('crash');
  }
  stores(inner: Stores): Stores {
    return { store: new CrashingStore(inner.store, this), work: new CrashingStore(inner.work, this) };
  }
}

class CrashingStore implements ObjectStore {
  constructor(
    private readonly inner: ObjectStore,
    private readonly crash: Crash,
  ) {}
  get location() {
    return this.inner.location;
  }
  private tick(): void {
    this.crash.tick();
  }
  read = (key: string) => this.inner.read(key);
  readStream = (key: string) => this.inner.readStream(key);
  stat = (key: string) => this.inner.stat(key);
  list = (prefix: string) => this.inner.list(prefix);
  write: ObjectStore['write'] = async (...args) => {
    this.tick();
    return this.inner.write(...args);
  };
  delete: ObjectStore['delete'] = async (...args) => {
    this.tick();
    return this.inner.delete(...args);
  };
  compose: ObjectStore['compose'] = async (...args) => {
    this.tick();
    return this.inner.compose(...args);
  };
  move: ObjectStore['move'] = async (...args) => {
    this.tick();
    return this.inner.move(...args);
  };
  writeStream: ObjectStore['writeStream'] = async (...args) => {
    this.tick();
    return this.inner.writeStream(...args);
  };
  // The copy lands in the target through the target's own writeStream (counted there).
  copyTo: ObjectStore['copyTo'] = (key, target, destination, options) =>
    streamCopy(this, key, target, destination, options);
}

describe('extract (connector use case)', () => {
  test('full refresh: every record once, files of about the target size, staging cleaned up', async () => {
    await using dir = await tempDir();
    const s = stores(dir.path);
    const { store } = s;
    const products = Array.from(
      { length: 95 },
      (_, i) => `{"product_sku":"SKU-${String(i).padStart(4, '0')}","unit_amount":"1.50"}`,
    );
    const api = new FakeApi({ products, customers: [], sales: [] });
    const report = await extract({ entity: 'products' }, ports(s, api), settings);
    assert.deepEqual(sorted(await recordsIn(store, 'products/in/')), sorted(products));
    const files = await store.list('products/in/');
    assert.ok(files.length >= 2, 'pages are joined into several files by size');
    for (const f of files.slice(0, -1)) assert.ok(f.size >= settings.targetFileBytes);
    assert.match(files[0]?.key ?? '', /^products\/in\/products_\d{8}_\d{4}_[0-9a-f-]{36}\.json$/);
    assert.deepEqual(await s.work.list('products/staging/'), []);
    assert.deepEqual(await store.list('products/staging/'), [], 'nothing staged in the pipeline bucket');
    assert.equal(report.runs[0]?.records, 95);
    assert.equal(api.requests.length, 10, 'pages 1..10, no page twice');
    assert.ok(
      api.maxInFlight <= settings.concurrency && api.maxInFlight > 1,
      `in flight: ${api.maxInFlight}`,
    );
  });

  test('sales are incremental: the next run starts after the largest id waiting in in/', async () => {
    await using dir = await tempDir();
    const s = stores(dir.path);
    const { store } = s;
    const api = new FakeApi({ products: [], customers: [], sales: salesUpTo(25) });
    const first = await extract({ entity: 'sales' }, ports(s, api), settings);
    assert.equal(first.runs[0]?.startSalesId, '1');
    api.records.sales.push(sale(30), sale(31));
    const second = await extract({ entity: 'sales' }, ports(s, api), settings);
    assert.equal(second.runs[0]?.startSalesId, '26');
    assert.equal(second.runs[0]?.records, 2);
    assert.deepEqual(sorted(await recordsIn(store, 'sales/in/')), sorted(api.records.sales));
  });

  test('the warehouse watermark counts too, and --start-sales-id overrides it', async () => {
    await using dir = await tempDir();
    const s = stores(dir.path);
    const { store } = s;
    const api = new FakeApi({ products: [], customers: [], sales: salesUpTo(40) });
    const p = { ...ports(s, api), ingested: { maxSaleId: async () => 35n } };
    assert.equal((await extract({ entity: 'sales' }, p, settings)).runs[0]?.records, 5);
    const explicit = await extract({ entity: 'sales', startSalesId: 39n }, p, settings);
    assert.deepEqual(
      explicit.runs.map((r) => [r.startSalesId, r.records]),
      [['39', 2]],
    );
  });

  test('transient faults are retried; a fault that persists fails the run with one clear message', async () => {
    await using dir = await tempDir();
    const s = stores(dir.path);
    const { store } = s;
    const api = new FakeApi({ products: [], customers: [], sales: salesUpTo(45) });
    api.fault = (r, attempt) =>
      r.page === 2 && attempt <= 2
        ? new TransientError('HTTP 503')
        : r.page === 4
          ? new TransientError('HTTP 502')
          : undefined;
    await assert.rejects(extract({ entity: 'sales' }, ports(s, api), settings), (error: unknown) => {
      assert.ok(error instanceof RetriesExhaustedError);
      assert.equal(error.message, 'GET /sales page 4 failed after 4 tries: HTTP 502');
      return true;
    });
    // The pages received before the failure are durable: the re-run fetches only what was missing.
    api.fault = undefined;
    const before = api.requests.length;
    const report = await extract({ entity: 'sales' }, ports(s, api), settings);
    assert.equal(report.runs.length, 1);
    assert.ok(report.runs[0]?.resumed);
    const refetched = api.requests.slice(before).map((r) => r.page);
    assert.ok(
      !refetched.includes(1) && !refetched.includes(2) && refetched.includes(4),
      `re-run fetched ${refetched}`,
    );
    assert.deepEqual(sorted(await recordsIn(store, 'sales/in/')), sorted(api.records.sales));
  });

  test('a terminal API error is not retried', async () => {
    await using dir = await tempDir();
    const api = new FakeApi({ products: [], customers: [], sales: salesUpTo(5) });
    api.fault = () => new TerminalError('the Retail API refused the API key (HTTP 401)');
    await assert.rejects(extract({ entity: 'sales' }, ports(stores(dir.path), api), settings), /HTTP 401/);
  });

  test('a live run holds the lease: a second run of the same entity is refused', async () => {
    await using dir = await tempDir();
    const s = stores(dir.path);
    const { store } = s;
    await s.work.write(
      'sales/staging/lease.json',
      JSON.stringify({
        owner: 'other',
        host: 'h',
        pid: 2,
        acquiredAt: '2025-07-19T10:00:00Z',
        expiresAt: '2099-01-01T00:00:00Z',
      }),
    );
    const api = new FakeApi({ products: [], customers: [], sales: salesUpTo(5) });
    const p = { ...ports(s, api), holder: { ...localHolderFake, isAlive: () => true } };
    await assert.rejects(extract({ entity: 'sales' }, p, settings), LeaseHeldError);
    assert.equal(api.requests.length, 0);
  });

  test('a crash at any step, then a re-run, yields every record exactly once and no page fetched twice', async () => {
    const records = salesUpTo(73); // 8 pages of 10
    // Count the changes a clean run makes, then crash at each of them in turn.
    let total: number;
    {
      await using dir = await tempDir();
      const counting = new Crash(Number.POSITIVE_INFINITY);
      await extract(
        { entity: 'sales' },
        ports(
          counting.stores(stores(dir.path)),
          new FakeApi({ products: [], customers: [], sales: records }),
        ),
        settings,
      );
      total = counting.changes;
    }
    assert.ok(total > 20);
    for (let crashAt = 1; crashAt <= total; crashAt++) {
      await using dir = await tempDir();
      const s = stores(dir.path);
      const { store } = s;
      const api = new FakeApi({ products: [], customers: [], sales: records });
      // The last change is releasing the lease, whose failure is only logged: the run itself succeeded.
      const crashed = extract({ entity: 'sales' }, ports(new Crash(crashAt).stores(s), api), settings);
      if (crashAt < total) await assert.rejects(crashed, /crash/, `crash at change ${crashAt}`);
      else await crashed;
      await extract({ entity: 'sales' }, ports(s, api), settings);
      assert.deepEqual(
        sorted(await recordsIn(store, 'sales/in/')),
        sorted(records),
        `crash at change ${crashAt}`,
      );
      assert.deepEqual(
        (await s.work.list('sales/staging/')).map((o) => o.key),
        [],
        `staging empty after crash at ${crashAt}`,
      );
      // Pages in flight when the crash hit may be fetched again; nothing else.
      const fetched = api.requests.length;
      assert.ok(fetched <= 8 + settings.concurrency, `crash at ${crashAt}: ${fetched} page requests`);
    }
  });

  test('a file the loader took before the crash that interrupted its publishing is not published again', async () => {
    await using dir = await tempDir();
    const s = stores(dir.path);
    const api = new FakeApi({ products: [], customers: [], sales: salesUpTo(73) });
    // Dies right after the first file was copied into in/, before its staged copy is dropped.
    let armed = true;
    const work: ObjectStore = Object.assign(Object.create(s.work) as FsObjectStore, {
      delete: async (key: string, options?: { ifGenerationMatch?: string }) => {
        if (armed && key.includes('/parts/')) {
          armed = false;
          throw new Error('crash');
        }
        return s.work.delete(key, options);
      },
    });
    await assert.rejects(
      extract({ entity: 'sales' }, ports({ store: s.store, work }, api), settings),
      /crash/,
    );
    const [published] = await s.store.list('sales/in/');
    assert.ok(published);
    // Meanwhile the loader claims it (and could archive it) before the connector runs again.
    const name = published.key.split('/').at(-1) ?? '';
    await s.store.move(published.key, `sales/processing/${published.generation}/${name}`);
    const report = await extract({ entity: 'sales' }, ports(s, api), settings);
    assert.ok(report.runs[0]?.resumed);
    const claimed = await recordsIn(s.store, 'sales/processing/');
    const waiting = await recordsIn(s.store, 'sales/in/');
    assert.deepEqual(
      sorted([...claimed, ...waiting]),
      sorted(api.records.sales),
      'every record exactly once',
    );
    assert.ok(!(await s.store.stat(`sales/in/${name}`)), 'the claimed file is not published a second time');
  });
});
