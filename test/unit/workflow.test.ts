import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import {
  LOCAL_CONNECTORS,
  LocalWorkflowRunner,
  loadWorkflow,
  SQL_REFERENCE,
} from '../../functions/adapters/local/local-workflow-runner.js';
import { TerminalError, TransientError } from '../../functions/core/errors.js';
import type { PipelineEvent } from '../../functions/core/events.js';
import { evaluate, parseExpression } from '../../functions/core/workflow-expressions.js';
import { WORKFLOW_FUNCTION_NAMES } from '../../functions/core/workflow-functions.js';
import { validateWorkflow, type WorkflowDefinition } from '../../functions/core/workflow-interpreter.js';
import type { StepCounts, Warehouse } from '../../functions/ports/warehouse.js';
import { FakeClock, MemoryLogger, SeqRandomness } from '../helpers/fakes.js';

const WORKFLOW = fileURLToPath(new URL('../../workflows/merge.yaml', import.meta.url));
const SQL = fileURLToPath(new URL('../../sql/', import.meta.url));
const SCHEMA = JSON.parse(
  readFileSync(fileURLToPath(new URL('../fixtures/workflows-subset.schema.json', import.meta.url)), 'utf8'),
);

/** `@sql X.sql` must name a script that exists in both dialects. */
function sqlReference(text: string): string | undefined {
  if (!text.startsWith('@sql')) return undefined;
  const name = SQL_REFERENCE.exec(text)?.[1];
  if (!name) return `malformed SQL reference "${text}"`;
  const missing = ['bigquery', 'duckdb'].filter((d) => !existsSync(`${SQL}${d}/${name}.sql`));
  return missing.length
    ? `${text}: no ${missing.map((d) => `sql/${d}/${name}.sql`).join(' or ')}`
    : undefined;
}

const validate = (workflow: WorkflowDefinition) =>
  validateWorkflow(workflow, {
    calls: LOCAL_CONNECTORS,
    functions: WORKFLOW_FUNCTION_NAMES,
    reference: sqlReference,
  });

describe('workflows/merge.yaml', () => {
  test('matches the JSON schema of the supported Workflows subset', () => {
    const ajv = new Ajv({ allErrors: true });
    const check = ajv.compile(SCHEMA);
    assert.ok(check(parse(readFileSync(WORKFLOW, 'utf8'))), ajv.errorsText(check.errors));
  });

  test('passes the structural checks: next targets, calls, expressions, SQL references', () => {
    assert.deepEqual(validate(loadWorkflow(WORKFLOW)), []);
  });

  test('every SQL script it names exists, and every merge step of sql/ is named', () => {
    const names = [...readFileSync(WORKFLOW, 'utf8').matchAll(/"@sql (\w+)\.sql"/g)].map((m) => m[1]);
    assert.deepEqual(names.sort(), [
      'dmt_sales_items',
      'ods_customers',
      'ods_products',
      'ods_sales',
      'record_merge_step',
    ]);
  });

  const broken: [string, string, RegExp][] = [
    [
      'a next target that does not exist',
      'main:\n  steps:\n    - a:\n        next: nowhere\n',
      /main\.a: next "nowhere" is not a step here/,
    ],
    [
      'an unknown call',
      'main:\n  steps:\n    - a:\n        call: googleapis.storage.v1.objects.get\n',
      /call "googleapis\.storage\.v1\.objects\.get" is neither/,
    ],
    [
      'an expression that does not parse',
      'main:\n  steps:\n    - a:\n        return: ${1 +}\n',
      /main\.a\.return: unexpected end/,
    ],
    [
      'an unknown function',
      'main:\n  steps:\n    - a:\n        return: ${http.get("x")}\n',
      /unknown function http\.get/,
    ],
    [
      'an unsupported construct',
      'main:\n  steps:\n    - a:\n        parallel:\n          branches: []\n',
      /main\.a: unsupported "parallel"/,
    ],
    [
      'a missing SQL script',
      'main:\n  steps:\n    - a:\n        assign:\n          - q: "@sql nothing.sql"\n',
      /no sql\/bigquery\/nothing\.sql or sql\/duckdb\/nothing\.sql/,
    ],
  ];
  for (const [what, yaml, problem] of broken) {
    test(`reports ${what}`, () => {
      const problems = validate(parse(yaml) as WorkflowDefinition);
      assert.ok(
        problems.some((p) => problem.test(p)),
        problems.join('\n'),
      );
    });
  }
});

describe('workflow expressions', () => {
  const scope = (vars: Record<string, unknown>) => ({
    lookup: (n: string) => vars[n],
    has: (n: string) => n in vars,
    fn: () => undefined,
  });
  const cases: [string, Record<string, unknown>, unknown][] = [
    ['a.b[c] + "-" + d', { a: { b: { x: 'one' } }, c: 'x', d: 'two' }, 'one-two'],
    ['not (e in m) or n == 2', { e: 'k', m: { k: 1 }, n: 2 }, true],
    ['[1, len_] [1]', { len_: 5 }, 5],
    ['{"a": x * 2 + 1}["a"]', { x: 3 }, 7],
    ['"code" in e and (e.code == 429 or e.code == 503)', { e: { code: 503 } }, true],
  ];
  for (const [source, vars, expected] of cases) {
    test(source, () => assert.deepEqual(evaluate(parseExpression(source), scope(vars)), expected));
  }
});

/** A warehouse whose steps are recorded and can be made to fail. */
function fakeWarehouse(fail?: (step: string, attempt: number) => Error | undefined) {
  const calls: { step: string; params: Record<string, string> }[] = [];
  const attempts = new Map<string, number>();
  const warehouse: Pick<Warehouse, 'runStep'> = {
    async runStep(step, params): Promise<StepCounts> {
      const attempt = (attempts.get(step) ?? 0) + 1;
      attempts.set(step, attempt);
      const error = fail?.(step, attempt);
      if (error) throw error;
      calls.push({ step, params: { ...params } });
      return step === 'record_merge_step' ? {} : { rows: 3 };
    },
  };
  return { warehouse: warehouse as Warehouse, calls };
}

function runner(warehouse: Warehouse) {
  const events: PipelineEvent[] = [];
  const clock = new FakeClock();
  const run = new LocalWorkflowRunner(loadWorkflow(WORKFLOW), {
    warehouse,
    events: { publish: async (e) => void events.push(e) },
    clock,
    randomness: new SeqRandomness(),
    logger: new MemoryLogger(),
  });
  return { run, events, clock };
}

describe('the local runner walks workflows/merge.yaml', () => {
  for (const [entity, steps] of [
    ['sales', ['ods_sales', 'dmt_sales_items']],
    ['products', ['ods_products', 'dmt_sales_items']],
    ['customers', ['ods_customers', 'dmt_sales_items']],
  ] as const) {
    test(`${entity}: its steps in order, each recorded, then merge.finished with the counts`, async () => {
      const { warehouse, calls } = fakeWarehouse();
      const { run, events } = runner(warehouse);
      await run.start({ entity, object: `${entity}/in/x.json`, generation: '1', runId: 'run-1' });
      assert.deepEqual(
        calls.map((c) => c.step),
        steps.flatMap((s) => [s, 'record_merge_step']),
      );
      assert.deepEqual(
        calls.filter((c) => c.step === 'record_merge_step').map((c) => [c.params.step, c.params.counts]),
        [
          [steps[0], '{"rows":3}'],
          [steps[1], '{"rows":3}'],
        ],
      );
      assert.match(calls[0]?.params.now ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.type, 'merge.finished');
      assert.equal(events[0]?.object, `${entity}/in/x.json`);
      assert.deepEqual(events[0]?.data, {
        runId: 'run-1',
        steps: Object.fromEntries(steps.map((s) => [s, { rows: 3 }])),
      });
    });
  }

  test('a transient warehouse error (a concurrent update) is retried with backoff', async () => {
    const { warehouse, calls } = fakeWarehouse((step, attempt) =>
      step === 'ods_sales' && attempt <= 2
        ? new TransientError('Transaction is aborted due to concurrent update')
        : undefined,
    );
    const { run, events, clock } = runner(warehouse);
    await run.start({ entity: 'sales', object: 'sales/in/x.json', generation: '1', runId: 'r' });
    assert.equal(calls.filter((c) => c.step === 'ods_sales').length, 1);
    assert.deepEqual(clock.sleeps, [2000, 4000]);
    assert.equal(events[0]?.type, 'merge.finished');
  });

  test('a terminal error fails loudly: merge.failed with the step and reason, and the start rejects', async () => {
    const { warehouse } = fakeWarehouse((step) =>
      step === 'dmt_sales_items' ? new TerminalError('dmt_sales_items: division by zero') : undefined,
    );
    const { run, events } = runner(warehouse);
    await assert.rejects(
      run.start({ entity: 'sales', object: 'sales/in/x.json', generation: '1', runId: 'r' }),
      /merge of sales failed: dmt_sales_items: division by zero/,
    );
    assert.deepEqual(
      events.map((e) => [e.type, e.data.step, e.data.reason]),
      [['merge.failed', 'dmt_sales_items', 'dmt_sales_items: division by zero']],
    );
  });
});
