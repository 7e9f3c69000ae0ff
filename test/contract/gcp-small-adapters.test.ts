import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import { SecretManagerSource } from '../../functions/adapters/gcp/secret-manager-source.js';
import { WorkflowsStarter } from '../../functions/adapters/gcp/workflows-starter.js';
import { TerminalError, TransientError } from '../../functions/core/errors.js';

/** The adapters whose Google APIs have no emulator here, against stub clients given through their constructors. */

const grpcError = (code: number, details: string) =>
  Object.assign(new Error(`${code} ${details}`), { code, details });

describe('WorkflowsStarter', () => {
  test('starts an execution of the merge workflow with the file as its argument', async () => {
    const calls: unknown[] = [];
    const client = { createExecution: async (request: unknown) => void calls.push(request) };
    await new WorkflowsStarter(client as never, 'projects/p/locations/europe-west1/workflows/merge').start({
      entity: 'sales',
      object: 'sales/in/a.json',
      generation: '17',
      runId: 'r-1',
    });
    assert.deepEqual(calls, [
      {
        parent: 'projects/p/locations/europe-west1/workflows/merge',
        execution: {
          argument: '{"entity":"sales","object":"sales/in/a.json","generation":"17","run_id":"r-1"}',
        },
      },
    ]);
  });

  test('UNAVAILABLE is transient, PERMISSION_DENIED terminal', async () => {
    const failing = (error: Error) =>
      new WorkflowsStarter({ createExecution: async () => Promise.reject(error) } as never, 'w');
    const execution = { entity: 'sales', object: 'o', generation: '1', runId: 'r' } as const;
    await assert.rejects(failing(grpcError(14, 'unavailable')).start(execution), TransientError);
    await assert.rejects(failing(grpcError(7, 'permission denied')).start(execution), TerminalError);
  });
});

describe('SecretManagerSource', () => {
  const KEY = 'sm-4d1e-very-secret';
  test('reads the key once per instance and never shows it', async () => {
    let reads = 0;
    const client = {
      accessSecretVersion: async ({ name }: { name: string }) => {
        reads++;
        assert.equal(name, 'projects/p/secrets/retail-api-key/versions/latest');
        return [{ payload: { data: Buffer.from(`${KEY}\n`) } }];
      },
    };
    const source = new SecretManagerSource(
      client as never,
      'projects/p/secrets/retail-api-key/versions/latest',
    );
    const [a, b] = await Promise.all([source.apiKey(), source.apiKey()]);
    assert.equal(reads, 1);
    assert.equal(a.reveal(), KEY);
    assert.equal(a, b);
    for (const shown of [String(a), JSON.stringify({ a }), inspect(a), `${a}`])
      assert.ok(!shown.includes(KEY), shown);
  });

  test('an empty secret or a failed read is a clear error naming the secret, and is tried again next time', async () => {
    const empty = new SecretManagerSource(
      { accessSecretVersion: async () => [{ payload: { data: Buffer.from('  ') } }] } as never,
      's/v',
    );
    await assert.rejects(empty.apiKey(), /the secret s\/v is empty/);
    let attempt = 0;
    const flaky = new SecretManagerSource(
      {
        accessSecretVersion: async () => {
          attempt++;
          if (attempt === 1) throw grpcError(14, 'unavailable');
          return [{ payload: { data: 'k' } }];
        },
      } as never,
      's/v',
    );
    await assert.rejects(
      flaky.apiKey(),
      (e: unknown) => e instanceof TransientError && /reading the secret s\/v/.test(e.message),
    );
    assert.equal((await flaky.apiKey()).reveal(), 'k');
  });
});
