import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConnectorJob } from '../../functions/core/config.js';
import { JOB_EXIT, runConnectorJob } from '../../functions/entrypoints/connector-job.js';
import { runCli } from '../helpers/cli.js';
import { startFakeGcs } from '../helpers/fake-gcp.mjs';

describe('the CLI against the deployed pipeline', () => {
  test('replay gs://BUCKET/... moves a failed file back to in/ (its arrival event loads it) and drops its sidecar', async () => {
    const fake = await startFakeGcs({ autoCreateBuckets: true });
    try {
      const failed = 'sales/failed/2025/07/19/10h/x.json';
      fake.putObject('pipeline', failed, '{"id":1}\n');
      fake.putObject('pipeline', `${failed}.error.json`, '{"reason":"line 1: …"}');
      const r = await runCli(['replay', `gs://pipeline/${failed}`], {
        STORAGE_EMULATOR_HOST: fake.url,
        GOOGLE_CLOUD_PROJECT: 'p',
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^moved to gs:\/\/pipeline\/sales\/in\/x\.json; its arrival event loads it/);
      assert.deepEqual(fake.listObjects('pipeline'), ['sales/in/x.json']);
      assert.equal(String(fake.getObject('pipeline', 'sales/in/x.json')?.data), '{"id":1}\n');

      const again = await runCli(['replay', `gs://pipeline/${failed}`], {
        STORAGE_EMULATOR_HOST: fake.url,
        GOOGLE_CLOUD_PROJECT: 'p',
      });
      assert.equal(again.code, 1);
      assert.match(again.stderr, /no such object: sales\/failed\/2025\/07\/19\/10h\/x\.json/);
    } finally {
      await fake.stop();
    }
  });

  test('status --gcp names the missing setting and exits 2', async () => {
    const r = await runCli(['status', '--gcp'], { GOOGLE_CLOUD_PROJECT: 'p' });
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^retail-pipeline: missing MERGE_WORKFLOW|^retail-pipeline: missing PIPELINE_BUCKET/,
    );
  });
});

describe('the Cloud Run Job entry point', () => {
  const env = {
    GOOGLE_CLOUD_PROJECT: 'p',
    PIPELINE_BUCKET: 'gs://pipeline',
    PIPELINE_WORK_BUCKET: 'pipeline-work',
    BIGQUERY_LOCATION: 'EU',
    EVENTS_TOPIC: 'pipeline-events',
    MERGE_WORKFLOW: 'projects/p/locations/europe-west1/workflows/merge',
    RETAIL_API_URL: 'https://retail.example.com/api',
    RETAIL_API_KEY_SECRET: 'projects/p/secrets/retail-api-key',
  };

  test("takes the scheduler's --endpoint and --start_sales_id, and its settings from the environment", () => {
    const config = parseConnectorJob(['--endpoint', 'sales', '--start_sales_id', '1001'], env);
    assert.equal(config.entity, 'sales');
    assert.equal(config.startSalesId, 1001n);
    assert.equal(config.gcp.bucket, 'pipeline');
    assert.equal(config.gcp.workBucket, 'pipeline-work');
    assert.deepEqual(config.apiKey, { secret: 'projects/p/secrets/retail-api-key/versions/latest' });
    const fromEnv = parseConnectorJob(['--endpoint', 'sales'], {
      ...env,
      RETAIL_API_KEY: 'k-from-secret-env',
    });
    assert.ok('value' in fromEnv.apiKey && fromEnv.apiKey.value.reveal() === 'k-from-secret-env');
    assert.ok(!JSON.stringify(fromEnv).includes('k-from-secret-env'), 'the key never prints');
    assert.equal(parseConnectorJob(['--endpoint', 'products'], env).startSalesId, undefined);
  });

  const bad: [string[], Record<string, string>, string][] = [
    [['--endpoint', 'orders'], env, '--endpoint must be one of products, customers, sales'],
    [['--endpoint', 'products', '--start_sales_id', '5'], env, 'with --endpoint sales only'],
    [
      ['--endpoint', 'sales'],
      { ...env, RETAIL_API_KEY_SECRET: '' },
      'missing RETAIL_API_KEY or RETAIL_API_KEY_SECRET',
    ],
    [['--endpoint', 'sales'], { ...env, PIPELINE_WORK_BUCKET: '' }, 'missing PIPELINE_WORK_BUCKET'],
    [
      ['--endpoint', 'sales'],
      { ...env, MERGE_WORKFLOW: 'merge' },
      'MERGE_WORKFLOW must be projects/P/locations/L/workflows/W',
    ],
  ];
  for (const [args, environment, message] of bad) {
    test(`exit ${JOB_EXIT.config} (configuration): ${message}`, async () => {
      const lines: string[] = [];
      const write = process.stdout.write;
      process.stdout.write = ((chunk: string) => {
        lines.push(String(chunk));
        return true;
      }) as typeof process.stdout.write;
      let code: number;
      try {
        code = await runConnectorJob(args, environment);
      } finally {
        process.stdout.write = write;
      }
      assert.equal(code, JOB_EXIT.config);
      const entry = JSON.parse(lines.join('').trim().split('\n').at(-1) ?? '{}');
      assert.equal(entry.severity, 'ERROR');
      assert.ok(String(entry.message).includes(message), entry.message);
    });
  }
});
