import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ObjectNotFoundError, PreconditionFailedError } from '../../functions/core/errors.js';
import type { ObjectStore } from '../../functions/ports/object-store.js';

/** What every ObjectStore adapter must do; run against each adapter that can run here. */
export function objectStoreContract(
  name: string,
  make: () => Promise<{ store: ObjectStore; dispose(): Promise<void> }>,
): void {
  const withStore = (fn: (store: ObjectStore) => Promise<void>) => async () => {
    const { store, dispose } = await make();
    try {
      await fn(store);
    } finally {
      await dispose();
    }
  };
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
  });
}
