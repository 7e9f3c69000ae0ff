import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type ConnectorCall,
  failedJobError,
  LocalWorkflowRunner,
  loadWorkflow,
} from '../../functions/adapters/local/local-workflow-runner.js';
import { workflowFunctions } from '../../functions/adapters/local/workflows/functions.js';
import {
  runSubworkflow,
  runWorkflow,
  WorkflowRaised,
} from '../../functions/adapters/local/workflows/interpreter.js';
import { ingestObject } from '../../functions/app/ingest-object.js';
import { openLocalRuntime } from '../../functions/compose-local.js';
import { MemoryLogger, readEvents, tempDir } from '../helpers/fakes.js';

const WORKFLOW = loadWorkflow(
  fileURLToPath(new URL('../../workflows/merge.yaml', import.meta.url)),
  fileURLToPath(new URL('../../sql/', import.meta.url)),
);

/**
 * The error shapes the Workflows BigQuery connector raises, as Google documents them:
 * HttpError (`code`, `body` = BigQuery's error response), OperationError (the failed job in
 * `operation`, its `status.errorResult`), TimeoutError, ConnectionError, ConnectionFailedError.
 * https://cloud.google.com/workflows/docs/reference/googleapis/bigquery/v2/jobs/insert
 * https://cloud.google.com/workflows/docs/reference/syntax/error-types
 * https://cloud.google.com/bigquery/docs/troubleshoot-quotas (rateLimitExceeded, quotaExceeded: 403)
 */
function httpError(code: number, reason: string, message: string) {
  return {
    message: `HTTP server responded with error code ${code}`,
    code,
    tags: ['HttpError'],
    headers: { 'content-type': 'application/json; charset=UTF-8' },
    body: { error: { code, message, errors: [{ reason, message, domain: 'global' }], status: 'ERROR' } },
  };
}
const jobFailed = (reason: string, message: string) => failedJobError('job_1', 'EU', reason, message);
const plain = (tag: string) => ({ message: `${tag} raised`, tags: [tag] });

const SHAPES: [string, unknown, boolean, string][] = [
  ['HttpError 429', httpError(429, 'rateLimitExceeded', 'Too many requests'), true, 'Too many requests'],
  [
    'HttpError 403 rateLimitExceeded',
    httpError(
      403,
      'rateLimitExceeded',
      'Exceeded rate limits: too many table update operations for this table',
    ),
    true,
    'Exceeded rate limits: too many table update operations for this table',
  ],
  ['HttpError 500 backendError', httpError(500, 'backendError', 'Backend error'), true, 'Backend error'],
  ['HttpError 502', httpError(502, 'backendError', 'Bad gateway'), true, 'Bad gateway'],
  [
    'HttpError 503 backendError',
    httpError(503, 'backendError', 'Service unavailable'),
    true,
    'Service unavailable',
  ],
  ['HttpError 504', httpError(504, 'backendError', 'Gateway timeout'), true, 'Gateway timeout'],
  ['HttpError 403 quotaExceeded', httpError(403, 'quotaExceeded', 'Quota exceeded'), false, 'Quota exceeded'],
  [
    'HttpError 400 invalid',
    httpError(400, 'invalid', 'Invalid job configuration'),
    false,
    'Invalid job configuration',
  ],
  [
    'HttpError 404 notFound',
    httpError(404, 'notFound', 'Not found: Table p:ods.sales'),
    false,
    'Not found: Table p:ods.sales',
  ],
  ['OperationError backendError', jobFailed('backendError', 'Backend error'), true, 'Backend error'],
  ['OperationError internalError', jobFailed('internalError', 'Internal error'), true, 'Internal error'],
  [
    'OperationError: a transaction aborted by a concurrent update',
    jobFailed('invalidQuery', 'Transaction is aborted due to concurrent update against table p.ods.sales.'),
    true,
    'Transaction is aborted due to concurrent update against table p.ods.sales.',
  ],
  [
    'OperationError: could not serialize access',
    jobFailed('invalidQuery', 'Could not serialize access to table p:ops.loads due to concurrent update'),
    true,
    'Could not serialize access to table p:ops.loads due to concurrent update',
  ],
  [
    'OperationError invalidQuery',
    jobFailed('invalidQuery', 'Division by zero: 1 / 0'),
    false,
    'Division by zero: 1 / 0',
  ],
  ['OperationError quotaExceeded', jobFailed('quotaExceeded', 'Quota exceeded'), false, 'Quota exceeded'],
  ['TimeoutError', plain('TimeoutError'), true, 'TimeoutError raised'],
  ['ConnectionError', plain('ConnectionError'), true, 'ConnectionError raised'],
  ['ConnectionFailedError', plain('ConnectionFailedError'), true, 'ConnectionFailedError raised'],
  ['a TypeError of the workflow itself', plain('TypeError'), false, 'TypeError raised'],
  ['a string raised by the workflow', 'unknown entity x', false, 'unknown entity x'],
];

const host = {
  connectors: {},
  functions: workflowFunctions({
    // What Workflows sets in every execution, and the workflow's user environment.
    env: {
      GOOGLE_CLOUD_PROJECT_ID: 'p',
      GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID: 'execution-1',
      BIGQUERY_LOCATION: 'EU',
      EVENTS_TOPIC: 'events',
    },
    nowSeconds: () => 0,
    log: () => undefined,
  }),
  sleep: async () => undefined,
};

describe('merge workflow: BigQuery failures as the Workflows connector raises them', () => {
  for (const [what, shape, retried, message] of SHAPES) {
    test(`${what}: ${retried ? 'retried' : 'not retried'}, reported as "${message}"`, async () => {
      assert.equal(await runSubworkflow(WORKFLOW, host, 'retry_bigquery', { e: shape }), retried);
      assert.equal(await runSubworkflow(WORKFLOW, host, 'error_message', { e: shape }), message);
    });
  }
});

const SALE = (id: number, sku: string) =>
  `{"id":${id},"datetime":"2025-07-19T10:00:00Z","total_amount":"5","customer_id":"C1","items":[{"product_sku":"${sku}","quantity":1,"amount":"5"}]}`;

interface Outcome {
  events: { type: string; data: Record<string, unknown> }[];
  sales: number;
  mart: number;
  orphans: number;
  attempts: number;
}

/** One sales file through the local loader, with `fault` raised by the first jobs.insert. */
async function loadWith(fault: unknown): Promise<Outcome> {
  await using dir = await tempDir();
  const rt = await openLocalRuntime(dir.path, new MemoryLogger());
  try {
    let attempts = 0;
    const connectorCall: ConnectorCall = async (name, _args, proceed) => {
      if (name === 'googleapis.bigquery.v2.jobs.insert' && attempts++ === 0 && fault !== undefined) {
        throw new WorkflowRaised(fault);
      }
      return proceed();
    };
    const workflows = new LocalWorkflowRunner(WORKFLOW, { ...rt, connectorCall });
    const info = await rt.store.write('sales/in/a.json', `${SALE(1, 'P1')}\n${SALE(2, 'P2')}\n`);
    await ingestObject(
      { bucket: 'b', name: 'sales/in/a.json', generation: info.generation },
      { ...rt, workflows },
      { maxFileBytes: 1 << 20 },
    ).catch(() => undefined);
    const n = async (table: string) =>
      Number((await rt.warehouse.query(`SELECT count(*) AS n FROM ${table}`))[0]?.n);
    const events = await readEvents(dir.path);
    return {
      events,
      sales: await n('ods.sales'),
      mart: await n('dmt.sales_items'),
      orphans: await n('dmt.sales_items_orphans'),
      attempts,
    };
  } finally {
    rt.close();
  }
}

describe('merge workflow on the local runtime with each failure shape injected once', () => {
  let clean: Outcome;
  test('a clean run, for comparison', async () => {
    clean = await loadWith(undefined);
    assert.deepEqual(
      clean.events.map((e) => e.type),
      ['file.loaded', 'merge.finished'],
    );
    assert.equal(clean.sales, 2);
    assert.equal(clean.orphans, 2, 'no product or customer loaded: both lines are orphans');
  });
  for (const [what, shape, retried, message] of SHAPES.filter(([w]) => !w.startsWith('a '))) {
    test(`${what}: ${retried ? 'retried, the same result as a clean run' : "merge.failed with BigQuery's message"}`, async () => {
      const outcome = await loadWith(shape);
      if (retried) {
        assert.deepEqual(
          outcome.events.map((e) => e.type),
          ['file.loaded', 'merge.finished'],
        );
        assert.deepEqual(
          [outcome.sales, outcome.mart, outcome.orphans],
          [clean.sales, clean.mart, clean.orphans],
        );
        assert.ok(outcome.attempts > clean.attempts, 'the failed call was made again');
      } else {
        const failed = outcome.events.find((e) => e.type === 'merge.failed');
        assert.ok(failed, 'merge.failed published');
        assert.equal(failed.data.reason, message);
        assert.equal(failed.data.step, 'ods_sales');
        assert.equal(outcome.sales, 0, 'nothing merged');
      }
    });
  }
});

describe('merge workflow: bad arguments are reported like any failure', () => {
  const cases: [string, unknown, RegExp][] = [
    ['no map', 'sales', /the merge takes a map of arguments, not string/],
    ['an entity that is not a string', { entity: 5 }, /entity must be a string, not integer/],
    ['an unknown entity', { entity: 'orders', object: 'orders/in/x.json' }, /unknown entity orders/],
  ];
  for (const [what, args, reason] of cases) {
    test(`${what}: merge.failed is published, then the execution fails`, async () => {
      const published: { type: string; data: { reason: string } }[] = [];
      const runHost = {
        ...host,
        connectors: {
          'googleapis.pubsub.v1.projects.topics.publish': async (a: Record<string, unknown>) => {
            for (const m of (a.body as { messages: { data: string }[] }).messages) {
              published.push(JSON.parse(Buffer.from(m.data, 'base64').toString('utf8')));
            }
            return { messageIds: ['1'] };
          },
        },
      };
      await assert.rejects(runWorkflow(WORKFLOW, runHost, args), reason);
      assert.equal(published.length, 1);
      assert.equal(published[0]?.type, 'merge.failed');
      assert.match(published[0]?.data.reason ?? '', reason);
    });
  }
});
