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
