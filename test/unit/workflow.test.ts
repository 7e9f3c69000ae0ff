import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import {
  LocalWorkflowRunner,
  loadWorkflow,
  workflowProblems,
} from '../../functions/adapters/local/local-workflow-runner.js';
import { evaluate, parseExpression } from '../../functions/adapters/local/workflows/expressions.js';
import { runWorkflow, WorkflowRaised } from '../../functions/adapters/local/workflows/interpreter.js';
import { ConfigError, TerminalError, TransientError } from '../../functions/core/errors.js';
import type { PipelineEvent } from '../../functions/core/events.js';
import type { StepCounts, Warehouse } from '../../functions/ports/warehouse.js';
import { FakeClock, MemoryLogger, SeqRandomness, tempDir } from '../helpers/fakes.js';

const WORKFLOW = fileURLToPath(new URL('../../workflows/merge.yaml', import.meta.url));
const SQL = fileURLToPath(new URL('../../sql/', import.meta.url));
const SCHEMA = JSON.parse(
  readFileSync(fileURLToPath(new URL('../fixtures/workflows-subset.schema.json', import.meta.url)), 'utf8'),
);

const validate = (yaml: string) => workflowProblems(parse(yaml), SQL);

describe('workflows/merge.yaml', () => {
  test('matches the JSON schema of the supported Workflows subset', () => {
    const ajv = new Ajv({ allErrors: true });
    const check = ajv.compile(SCHEMA);
    assert.ok(check(parse(readFileSync(WORKFLOW, 'utf8'))), ajv.errorsText(check.errors));
  });

  test('passes every deploy-time check (and loads: loading runs the same checks)', () => {
    assert.deepEqual(validate(readFileSync(WORKFLOW, 'utf8')), []);
    assert.ok(loadWorkflow(WORKFLOW, SQL).main);
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
});

/**
 * Each form Cloud Workflows refuses at deploy time (validate.ts cites the pages), with the
 * service's reason where Google documents its wording.
 */
describe('definitions the service would not deploy are refused when loaded', () => {
  const steps = (body: string) => `main:\n  params: [args]\n  steps:\n${body}`;
  const broken: [string, string, RegExp][] = [
    [
      'a for directly under try (Workflows known issues)',
      steps(
        '    - run:\n        try:\n          for:\n            value: v\n            in: [1]\n            steps:\n              - s:\n                  assign:\n                    - x: ${v}\n        except:\n          as: e\n          steps:\n            - f:\n                raise: ${e}\n',
      ),
      /main\.run: loop step name should not be empty/,
    ],
    [
      'a reference to a variable that is never assigned',
      steps('    - a:\n        return: ${varC}\n'),
      /main\.a\.return: symbol 'varC' is neither a variable nor a sub-workflow name/,
    ],
    [
      'a variable read before it is assigned',
      steps(
        '    - a:\n        assign:\n          - y: ${x + 1}\n    - b:\n        assign:\n          - x: 1\n',
      ),
      /main\.a\.assign\.y: symbol 'x' is neither a variable/,
    ],
    [
      "a subworkflow reading main's variables",
      'main:\n  steps:\n    - a:\n        assign:\n          - x: 1\n    - b:\n        call: sub\n        result: r\n    - c:\n        return: ${r}\nsub:\n  steps:\n    - d:\n        return: ${x}\n',
      /sub\.d\.return: symbol 'x' is neither/,
    ],
    [
      'a call to a subworkflow that is not defined',
      steps('    - a:\n        call: merge_everything\n'),
      /main\.a: call "merge_everything" is neither a subworkflow nor a supported connector/,
    ],
    [
      'an argument the subworkflow does not take',
      'main:\n  steps:\n    - a:\n        call: sub\n        args:\n          y: 1\nsub:\n  params: [x]\n  steps:\n    - d:\n        return: ${x}\n',
      /main\.a: subworkflow sub has no parameter "y"/,
    ],
    [
      'a step that mixes kinds (assign + call + return)',
      steps(
        '    - a:\n        assign:\n          - x: 1\n        call: sys.log\n        args:\n          data: ${x}\n        return: ${x}\n',
      ),
      /main\.a: a step does one thing, this one mixes assign and call and return/,
    ],
    [
      'a switch condition that cannot be a boolean',
      steps('    - a:\n        switch:\n          - condition: ${"yes"}\n            next: end\n'),
      /main\.a\.switch\[0\]\.condition: the condition "yes" cannot evaluate to true or false/,
    ],
    [
      'a switch condition that is arithmetic',
      steps(
        '    - a:\n        assign:\n          - n: 1\n    - b:\n        switch:\n          - condition: ${n + 1}\n            next: end\n',
      ),
      /cannot evaluate to true or false/,
    ],
    [
      'a loop variable used outside its loop',
      steps(
        '    - l:\n        for:\n          value: v\n          in: [1, 2]\n          steps:\n            - s:\n                assign:\n                  - last: ${v}\n    - b:\n        return: ${v}\n',
      ),
      /main\.b\.return: symbol 'v' is neither a variable nor a sub-workflow name \(it exists only inside the for loop of main\.l\)/,
    ],
    [
      'a variable first assigned inside a loop, used after it',
      steps(
        '    - l:\n        for:\n          value: v\n          in: [1, 2]\n          steps:\n            - s:\n                assign:\n                  - last: ${v}\n    - b:\n        return: ${last}\n',
      ),
      /symbol 'last' is neither a variable nor a sub-workflow name \(it exists only inside the for loop/,
    ],
    [
      'the except variable used outside the except block',
      steps(
        '    - t:\n        try:\n          call: sys.log\n          args:\n            data: "x"\n        except:\n          as: e\n          steps:\n            - h:\n                assign:\n                  - seen: true\n    - b:\n        return: ${e}\n',
      ),
      /symbol 'e' is neither .* \(it exists only inside the except block of main\.t\)/,
    ],
    [
      'an unknown key in a step',
      steps('    - a:\n        call: sys.log\n        argz:\n          data: 1\n'),
      /main\.a: unknown key "argz"/,
    ],
    [
      'an unknown key in a loop',
      steps(
        '    - l:\n        for:\n          value: v\n          in: [1]\n          step: 2\n          steps:\n            - s:\n                return: ${v}\n',
      ),
      /main\.l\.for: unknown key "step"/,
    ],
    [
      'an unknown key in a retry policy',
      'main:\n  steps:\n    - t:\n        try:\n          call: sys.log\n          args:\n            data: "x"\n        retry:\n          predicate: ${p}\n          max_retries: 2\n          backof:\n            initial_delay: 1\np:\n  params: [e]\n  steps:\n    - r:\n        return: true\n',
      /main\.t\.retry: unknown key "backof"/,
    ],
    [
      'an unknown key in a switch branch',
      steps('    - a:\n        switch:\n          - condition: true\n            goto: end\n'),
      /main\.a\.switch\[0\]: unknown key "goto"/,
    ],
    [
      'a step name used twice in one subworkflow',
      steps('    - a:\n        assign:\n          - x: 1\n    - a:\n        return: ${x}\n'),
      /main\.a: step name "a" is used twice/,
    ],
    [
      'a switch of more than 50 conditions',
      steps(
        `    - a:\n        switch:\n${Array.from({ length: 51 }, () => '          - condition: false\n            next: end\n').join('')}`,
      ),
      /a switch has at most 50 conditions, this one 51/,
    ],
    [
      'a next target that does not exist',
      steps('    - a:\n        next: nowhere\n'),
      /main\.a: next "nowhere" is not a step here/,
    ],
    [
      'an expression that does not parse',
      steps('    - a:\n        return: ${1 +}\n'),
      /main\.a\.return: unexpected end/,
    ],
    [
      'an unknown function',
      steps('    - a:\n        return: ${http.get("x")}\n'),
      /unknown function http\.get/,
    ],
    [
      'a construct outside the supported subset',
      steps('    - a:\n        parallel:\n          branches: []\n'),
      /main\.a: unknown step kind \(parallel\)/,
    ],
    [
      'a missing SQL script',
      steps('    - a:\n        assign:\n          - q: "@sql nothing.sql"\n'),
      /no sql\/bigquery\/nothing\.sql or sql\/duckdb\/nothing\.sql/,
    ],
  ];
  for (const [what, yaml, problem] of broken) {
    test(`refuses ${what}`, () => {
      const problems = validate(yaml);
      assert.ok(
        problems.some((p) => problem.test(p)),
        problems.join('\n') || 'no problem reported',
      );
    });
  }

  test('the runner refuses such a definition when it loads it, naming the file and the reason', async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/merge.yaml`;
    writeFileSync(path, steps('    - a:\n        return: ${varC}\n'));
    assert.throws(
      () => loadWorkflow(path, SQL),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes('merge.yaml would not deploy') &&
        error.message.includes("symbol 'varC' is neither a variable nor a sub-workflow name"),
    );
  });

  test('a condition that evaluates to something other than a boolean raises a TypeError at run time', async () => {
    const definition = parse(
      steps(
        '    - a:\n        switch:\n          - condition: ${args}\n            next: end\n    - b:\n        return: 1\n',
      ),
    );
    assert.deepEqual(workflowProblems(definition, SQL), []);
    await assert.rejects(
      runWorkflow(definition, { connectors: {}, functions: {}, sleep: async () => undefined }, 'yes'),
      (error: unknown) =>
        error instanceof WorkflowRaised &&
        (error.value as { tags: string[] }).tags.includes('TypeError') &&
        /not a boolean/.test(error.message),
    );
  });
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
  const run = new LocalWorkflowRunner(loadWorkflow(WORKFLOW, SQL), {
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
