import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Storage } from '@google-cloud/storage';
import { COMPOSE_LIMIT, GcsObjectStore } from '../../functions/adapters/gcp/gcs-object-store.js';
import { ObjectNotFoundError, PreconditionFailedError, TransientError } from '../../functions/core/errors.js';
import { type FakeGcs, NO_RETRY, startFakeGcs } from '../helpers/fake-gcp.mjs';
import { objectStoreContract } from './object-store.contract.js';

/** The GCS adapter against an HTTP endpoint that speaks the GCS JSON API and records every request. */
async function gcs(options: Record<string, unknown> = {}) {
  const fake = await startFakeGcs({ autoCreateBuckets: true, ...options });
  const storage = new Storage(fake.clientOptions({ projectId: 'p', retryOptions: NO_RETRY }));
  return {
    fake,
    store: new GcsObjectStore(storage.bucket('pipeline')),
    other: new GcsObjectStore(storage.bucket('pipeline-work')),
  };
}

objectStoreContract('GcsObjectStore (GCS JSON API at the HTTP level)', async () => {
  const { fake, store, other } = await gcs({ pageSize: 2 });
  return { store, other, dispose: () => fake.stop() };
});

describe('GcsObjectStore requests', () => {
  let fake: FakeGcs;
  let store: GcsObjectStore;
  before(async () => {
    ({ fake, store } = await gcs());
  });
  after(() => fake.stop());

  test('create-only writes send ifGenerationMatch=0 and a taken name is a precondition failure', async () => {
    fake.clearRequests();
    await store.write('sales/staging/lease.json', '{}', { ifGenerationMatch: '0' });
    assert.equal(fake.last('objects.insert')?.query.ifGenerationMatch, '0');
    await assert.rejects(
      store.write('sales/staging/lease.json', '{}', { ifGenerationMatch: '0' }),
      PreconditionFailedError,
    );
  });

  test('a name GCS refuses (over 1024 bytes, or a line feed) is refused, and a claim of a long arrival cannot be made', async () => {
    await assert.rejects(store.write(`sales/in/${'x'.repeat(1020)}.json`, 'x\n'), /object name is not valid/);
    await assert.rejects(store.write('sales/in/a\nb.json', 'x\n'), /object name is not valid/);
    // An arrival that fits, whose claim key (processing/ and the generation added) does not.
    const name = `sales/in/${'y'.repeat(1000)}.json`;
    const info = await store.write(name, 'x\n');
    await assert.rejects(
      store.move(name, `sales/processing/${info.generation}/${name.slice('sales/in/'.length)}`, {
        ifSourceGenerationMatch: info.generation,
        ifDestinationAbsent: true,
      }),
      /object name is not valid/,
    );
    assert.ok(await store.stat(name), 'the arrival stays where it was');
  });

  test('a claim is a rewrite pinned to the source generation, then a delete pinned to it too', async () => {
    const info = await store.write('sales/in/a.json', 'x\n');
    fake.clearRequests();
    await store.move('sales/in/a.json', `sales/processing/${info.generation}/a.json`, {
      ifSourceGenerationMatch: info.generation,
      ifDestinationAbsent: true,
    });
    const rewrite = fake.last('objects.rewrite');
    assert.equal(rewrite?.query.sourceGeneration, info.generation);
    assert.equal(rewrite?.query.ifGenerationMatch, '0');
    assert.equal(fake.last('objects.delete')?.query.ifGenerationMatch, info.generation);
  });

  test('a move never deletes a newer upload of the same name', async () => {
    const old = await store.write('sales/in/b.json', 'old\n');
    await store.write('sales/in/b.json', 'new\n'); // a new generation arrives
    await assert.rejects(
      store.move('sales/in/b.json', `sales/processing/${old.generation}/b.json`, {
        ifSourceGenerationMatch: old.generation,
      }),
      ObjectNotFoundError,
    );
    assert.equal(String(await store.read('sales/in/b.json')), 'new\n');
  });

  test(`compose takes more than ${COMPOSE_LIMIT} sources in rounds and removes its intermediates`, async () => {
    const keys = Array.from({ length: 70 }, (_, i) => `p/pages/${String(i).padStart(3, '0')}`);
    for (const [i, key] of keys.entries()) await store.write(key, `${i}\n`);
    fake.clearRequests();
    await store.compose(keys, 'p/out.json');
    assert.equal(String(await store.read('p/out.json')), keys.map((_, i) => `${i}\n`).join(''));
    const composes = fake.find('objects.compose');
    assert.ok(composes.every((r) => r.body.sourceObjects.length <= COMPOSE_LIMIT));
    assert.equal(composes.length, 4, '70 sources: 3 groups, then the final compose');
    assert.deepEqual(
      fake.listObjects('pipeline').filter((n) => n.includes('.compose-')),
      [],
    );
  });

  test('a compose that fails after its first round leaves no intermediate object behind', async () => {
    const keys = Array.from({ length: 70 }, (_, i) => `q/pages/${String(i).padStart(3, '0')}`);
    for (const [i, key] of keys.entries()) await store.write(key, `${i}\n`);
    // The third compose of the first round fails for good (a 403 is not retried).
    let composes = 0;
    fake.failNext({
      match: (r: { op: string }) => r.op === 'objects.compose' && ++composes === 3,
      status: 403,
      reason: 'forbidden',
    });
    await assert.rejects(store.compose(keys, 'q/out.json'));
    assert.equal(await store.stat('q/out.json'), undefined);
    assert.deepEqual(
      fake.listObjects('pipeline').filter((n) => n.includes('.compose-')),
      [],
    );
  });

  test('errors are classified: 503 transient, 404 not found, 412 precondition', async () => {
    fake.failNext({ match: 'objects.get.media', status: 503, reason: 'backendError' });
    await assert.rejects(store.read('sales/in/a.json'), TransientError);
    await assert.rejects(store.read('sales/in/none.json'), ObjectNotFoundError);
    const info = await store.write('x/y', '1');
    await assert.rejects(
      store.delete('x/y', { ifGenerationMatch: String(Number(info.generation) + 100) }),
      PreconditionFailedError,
    );
  });
});

describe('GcsObjectStore keeps the client retrying', () => {
  test('after every kind of change, a 503 on the next request is still retried by the client', async () => {
    const fake = await startFakeGcs({ autoCreateBuckets: true });
    try {
      const storage = new Storage(fake.clientOptions({ projectId: 'p' })); // the client's retries on
      const store = new GcsObjectStore(storage.bucket('pipeline'));
      const work = new GcsObjectStore(storage.bucket('pipeline-work'));
      async function* rows() {
        yield Buffer.from('{"a":1}\n');
      }
      const changes: [string, () => Promise<unknown>][] = [
        ['an unconditional write', () => store.write('sales/staging/runs/r/cursor.json', '{}')],
        ['a rewrite of it', () => store.write('sales/staging/runs/r/cursor.json', '{"n":1}')],
        [
          'a create-only write',
          () => store.write('sales/in/a.json', '{"id":1}\n', { ifGenerationMatch: '0' }),
        ],
        ['a streamed write', () => store.writeStream('sales/processing/1/a.json.rows.ndjson', rows())],
        ['a compose', () => store.compose(['sales/in/a.json', 'sales/in/a.json'], 'sales/in/b.json')],
        ['a move', () => store.move('sales/in/b.json', 'sales/archive/20250719/b.json')],
        ['a copy to another bucket', () => store.copyTo('sales/in/a.json', work, 'sales/in/a.json')],
        ['an unconditional delete', () => store.delete('sales/staging/runs/r/cursor.json')],
        ['a delete of nothing', () => store.delete('sales/staging/runs/r/none.json')],
      ];
      fake.putObject('pipeline', 'sales/in/seed.json', '{"id":0}\n');
      const mutating = [
        'objects.insert',
        'objects.insert.resumable',
        'objects.rewrite',
        'objects.compose',
        'objects.delete',
      ];
      for (const [what, change] of changes) {
        fake.clearRequests();
        await change();
        for (const request of fake.requests.filter((r) => mutating.includes(r.op))) {
          assert.notEqual(
            request.query.ifGenerationMatch,
            undefined,
            `${what}: ${request.op} carries a precondition`,
          );
        }
        assert.equal(storage.retryOptions.autoRetry, true, `${what} left the client's retries on`);
        fake.clearRequests();
        fake.failNext({ match: 'objects.get', status: 503, reason: 'backendError' });
        assert.ok(await store.stat('sales/in/seed.json'), `after ${what}: the stat succeeds on the retry`);
        assert.equal(fake.find('objects.get').length, 2, `after ${what}: one 503, then the retry`);
      }
    } finally {
      await fake.stop();
    }
  });
});
