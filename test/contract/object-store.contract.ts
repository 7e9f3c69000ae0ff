import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ObjectNotFoundError, PreconditionFailedError } from '../../functions/core/errors.js';
import type { ObjectStore } from '../../functions/ports/object-store.js';

/** What every ObjectStore adapter must do; run against each adapter that can run here. */
export function objectStoreContract(
  name: string,
  /** `store` and `other`: two buckets of one kind (the pipeline bucket and the work bucket). */
  make: () => Promise<{ store: ObjectStore; other: ObjectStore; dispose(): Promise<void> }>,
): void {
  const withStores = (fn: (store: ObjectStore, other: ObjectStore) => Promise<void>) => async () => {
    const { store, other, dispose } = await make();
    try {
      await fn(store, other);
    } finally {
      await dispose();
    }
  };
  const withStore = (fn: (store: ObjectStore) => Promise<void>) => withStores((store) => fn(store));
  /** The same store seen through another type: copyTo cannot take its server-side path. */
  const foreign = (store: ObjectStore): ObjectStore => ({
    location: store.location,
    read: (k) => store.read(k),
    readStream: (k) => store.readStream(k),
    write: (k, d, o) => store.write(k, d, o),
    writeStream: (k, src, o) => store.writeStream(k, src, o),
    stat: (k) => store.stat(k),
    list: (p) => store.list(p),
    delete: (k, o) => store.delete(k, o),
    compose: (src, d) => store.compose(src, d),
    move: (a, b, o) => store.move(a, b, o),
    copyTo: (k, t, d, o) => store.copyTo(k, t, d, o),
  });
  async function* chunks(parts: readonly string[], fail?: () => Promise<void>): AsyncIterable<Uint8Array> {
    for (const part of parts) yield Buffer.from(part);
    if (fail) await fail();
  }
  const text = async (store: ObjectStore, key: string) => (await store.read(key)).toString('utf8');

  describe(`ObjectStore contract: ${name}`, () => {
    test(
      'write, read, stat, stream',
      withStore(async (store) => {
        const info = await store.write('sales/in/a.json', '{"id":1}\n');
        assert.equal(info.size, 9);
        assert.equal(await text(store, 'sales/in/a.json'), '{"id":1}\n');
        assert.equal((await store.stat('sales/in/a.json'))?.generation, info.generation);
        assert.equal(await store.stat('sales/in/missing.json'), undefined);
        const chunks: Buffer[] = [];
        for await (const c of store.readStream('sales/in/a.json')) chunks.push(c);
        assert.equal(Buffer.concat(chunks).toString('utf8'), '{"id":1}\n');
        await assert.rejects(store.read('sales/in/missing.json'), ObjectNotFoundError);
      }),
    );

    test(
      'a rewrite changes the generation; preconditions guard writes and deletes',
      withStore(async (store) => {
        const first = await store.write('k/x', 'one', { ifGenerationMatch: '0' });
        await assert.rejects(store.write('k/x', 'two', { ifGenerationMatch: '0' }), PreconditionFailedError);
        const second = await store.write('k/x', 'two', { ifGenerationMatch: first.generation });
        assert.notEqual(second.generation, first.generation);
        await assert.rejects(
          store.write('k/x', 'three', { ifGenerationMatch: first.generation }),
          PreconditionFailedError,
        );
        await assert.rejects(
          store.delete('k/x', { ifGenerationMatch: first.generation }),
          PreconditionFailedError,
        );
        assert.equal(await text(store, 'k/x'), 'two');
        await store.delete('k/x', { ifGenerationMatch: second.generation });
        assert.equal(await store.stat('k/x'), undefined);
        await store.delete('k/x'); // deleting what is gone is not an error
      }),
    );

    test(
      'list is recursive, by prefix, sorted',
      withStore(async (store) => {
        for (const key of [
          'sales/in/b.json',
          'sales/in/a.json',
          'sales/archive/20250719/c.json',
          'salesman/x',
          'products/in/p.json',
        ]) {
          await store.write(key, key);
        }
        assert.deepEqual(
          (await store.list('sales/')).map((o) => o.key),
          ['sales/archive/20250719/c.json', 'sales/in/a.json', 'sales/in/b.json'],
        );
        assert.deepEqual(
          (await store.list('sales/in/a')).map((o) => o.key),
          ['sales/in/a.json'],
        );
        assert.deepEqual(await store.list('nothing/'), []);
      }),
    );

    test(
      'compose concatenates in order',
      withStore(async (store) => {
        await store.write('s/p1', 'a\n');
        await store.write('s/p2', 'b\n');
        await store.write('s/p3', 'c\n');
        const info = await store.compose(['s/p3', 's/p1', 's/p2'], 's/out.json');
        assert.equal(info.size, 6);
        assert.equal(await text(store, 's/out.json'), 'c\na\nb\n');
        await assert.rejects(store.compose(['s/p1', 's/nope'], 's/bad.json'), ObjectNotFoundError);
        assert.equal(await store.stat('s/bad.json'), undefined, 'a failed compose leaves nothing');
      }),
    );

    test(
      'move: exactly one of two claims wins, destinations are not clobbered on request',
      withStore(async (store) => {
        const info = await store.write('sales/in/f.json', 'data');
        // As the loader claims: pinned to the generation, never replacing a claim.
        const claim = { ifSourceGenerationMatch: info.generation, ifDestinationAbsent: true };
        const results = await Promise.allSettled([
          store.move('sales/in/f.json', 'sales/processing/f.json', claim),
          store.move('sales/in/f.json', 'sales/processing/f.json', claim),
        ]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        assert.equal(await store.stat('sales/in/f.json'), undefined);
        assert.equal(await text(store, 'sales/processing/f.json'), 'data');

        await store.write('a/src', 'new');
        await store.write('a/dst', 'old');
        await assert.rejects(
          store.move('a/src', 'a/dst', { ifDestinationAbsent: true }),
          PreconditionFailedError,
        );
        assert.equal(await text(store, 'a/dst'), 'old');
        assert.equal(await text(store, 'a/src'), 'new');
        await assert.rejects(store.move('a/none', 'a/x'), ObjectNotFoundError);
      }),
    );

    test(
      'a streamed write is one object, visible only once complete; a failed stream leaves nothing',
      withStore(async (store) => {
        const big = 'x'.repeat(300_000);
        const info = await store.writeStream(
          'sales/processing/1/a.json.rows.ndjson',
          chunks(['{"a":1}\n', big, '\n']),
        );
        assert.equal(info.size, 8 + big.length + 1);
        assert.equal(await text(store, 'sales/processing/1/a.json.rows.ndjson'), `{"a":1}\n${big}\n`);
        await assert.rejects(
          store.writeStream(
            'sales/processing/1/b.json.rows.ndjson',
            chunks(['{"b":1}\n', big], async () => {
              assert.equal(await store.stat('sales/processing/1/b.json.rows.ndjson'), undefined);
              throw new Error('source failed');
            }),
          ),
          /source failed/,
        );
        assert.equal(await store.stat('sales/processing/1/b.json.rows.ndjson'), undefined);
        await assert.rejects(
          store.writeStream('sales/processing/1/a.json.rows.ndjson', chunks(['y']), {
            ifGenerationMatch: '0',
          }),
          PreconditionFailedError,
        );
        assert.equal(await text(store, 'sales/processing/1/a.json.rows.ndjson'), `{"a":1}\n${big}\n`);
      }),
    );

    test(
      'copyTo another bucket: create-only, the source stays, a missing source is not found',
      withStores(async (store, other) => {
        for (const target of [other, foreign(other)]) {
          await other.delete('sales/in/f.json');
          const source = await store.write('sales/staging/runs/r/parts/p.json', '{"id":1}\n{"id":2}\n');
          const copied = await store.copyTo('sales/staging/runs/r/parts/p.json', target, 'sales/in/f.json', {
            ifDestinationAbsent: true,
          });
          assert.equal(copied.size, source.size);
          assert.equal(await text(other, 'sales/in/f.json'), '{"id":1}\n{"id":2}\n');
          assert.ok(await store.stat('sales/staging/runs/r/parts/p.json'), 'the source stays');
          await assert.rejects(
            store.copyTo('sales/staging/runs/r/parts/p.json', target, 'sales/in/f.json', {
              ifDestinationAbsent: true,
            }),
            PreconditionFailedError,
          );
          await assert.rejects(
            store.copyTo('sales/staging/runs/r/parts/missing.json', target, 'sales/in/g.json'),
            ObjectNotFoundError,
          );
          assert.equal(await other.stat('sales/in/g.json'), undefined);
        }
      }),
    );
  });
}
