import {
  ExpressionError,
  evaluate,
  expressionOf,
  parseExpression,
  type Scope,
  type WorkflowFunction,
} from './expressions.js';

/**
 * Runs a Cloud Workflows definition (the subset workflows/merge.yaml uses): subworkflows with
 * params, `assign`, `call` (subworkflows, connectors, functions) with `args`/`result`, `switch`,
 * `for` (`in` or `range`), `try` with `retry` (predicate subworkflow + backoff) and `except`,
 * `raise`, `return`, `next`, nested `steps`. Anything else is refused, by `validateWorkflow`
 * (validate.ts) when a definition is loaded and by the interpreter during a run. The host supplies
 * the connectors and functions. It emulates the platform, so it lives with the local adapters.
 */

type Step = Record<string, Record<string, unknown>>;
export type WorkflowDefinition = Record<string, { params?: string[]; steps: Step[] }>;

export interface WorkflowHost {
  readonly connectors: Readonly<Record<string, (args: Record<string, unknown>) => Promise<unknown>>>;
  readonly functions: Readonly<Record<string, WorkflowFunction>>;
  sleep(ms: number): Promise<void>;
}

/** A workflow error value (what `raise` raises and `except: as:` receives). */
export class WorkflowRaised extends Error {
  constructor(readonly value: unknown) {
    super(
      typeof value === 'string'
        ? value
        : String((value as { message?: unknown })?.message ?? JSON.stringify(value)),
    );
    this.name = 'WorkflowRaised';
  }
}

const STEP_KEYS = [
  'assign',
  'call',
  'args',
  'result',
  'switch',
  'for',
  'try',
  'retry',
  'except',
  'raise',
  'return',
  'next',
  'steps',
] as const;

type Signal = { type: 'return'; value: unknown } | { type: 'break' } | { type: 'continue' } | undefined;

function errorValue(error: unknown): unknown {
  if (error instanceof WorkflowRaised) return error.value;
  const tags =
    error instanceof ExpressionError
      ? ['ExpressionError']
      : error instanceof TypeError
        ? ['TypeError']
        : ['Error'];
  return { message: error instanceof Error ? error.message : String(error), tags };
}

class Frame implements Scope {
  readonly vars = new Map<string, unknown>();
  constructor(
    private readonly workflow: WorkflowDefinition,
    private readonly host: WorkflowHost,
  ) {}
  lookup(name: string): unknown {
    return this.vars.has(name) ? this.vars.get(name) : name;
  }
  has(name: string): boolean {
    return this.vars.has(name) || name in this.workflow;
  }
  fn(name: string): WorkflowFunction | undefined {
    return this.host.functions[name];
  }
}

export async function runWorkflow(
  workflow: WorkflowDefinition,
  host: WorkflowHost,
  args: unknown,
): Promise<unknown> {
  return callSubworkflow(
    workflow,
    host,
    'main',
    workflow.main?.params?.length ? { [workflow.main.params[0] as string]: args } : {},
  );
}

/** Calls one subworkflow with named arguments (what `call: name` with `args` does). */
export function runSubworkflow(
  workflow: WorkflowDefinition,
  host: WorkflowHost,
  name: string,
  args: Record<string, unknown>,
): Promise<unknown> {
  return callSubworkflow(workflow, host, name, args);
}

async function callSubworkflow(
  workflow: WorkflowDefinition,
  host: WorkflowHost,
  name: string,
  args: Record<string, unknown>,
): Promise<unknown> {
  const sub = workflow[name];
  if (!sub) throw new WorkflowRaised({ message: `no subworkflow ${name}`, tags: ['KeyError'] });
  const frame = new Frame(workflow, host);
  for (const param of sub.params ?? []) {
    if (!(param in args))
      throw new WorkflowRaised({ message: `${name}: missing argument ${param}`, tags: ['TypeError'] });
    frame.vars.set(param, args[param]);
  }
  const signal = await runSteps(sub.steps, frame, workflow, host);
  return signal?.type === 'return' ? signal.value : null;
}

function value(raw: unknown, frame: Frame): unknown {
  const expression = expressionOf(raw);
  if (expression !== undefined) return evaluate(parseExpression(expression), frame);
  if (Array.isArray(raw)) return raw.map((r) => value(r, frame));
  if (raw !== null && typeof raw === 'object') {
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, value(v, frame)]));
  }
  return raw;
}

function assign(target: string, v: unknown, frame: Frame): void {
  const expr = parseExpression(target);
  if (expr.kind === 'name') {
    frame.vars.set(expr.name, v);
    return;
  }
  if (expr.kind === 'index' || expr.kind === 'member') {
    const container = evaluate(expr.object, frame) as Record<string, unknown>;
    const key = expr.kind === 'index' ? String(evaluate(expr.index, frame)) : expr.key;
    container[key] = v;
    return;
  }
  throw new WorkflowRaised({ message: `cannot assign to ${target}`, tags: ['SyntaxError'] });
}

function entry(step: Step): [string, Record<string, unknown>] {
  const entries = Object.entries(step);
  if (entries.length !== 1)
    throw new WorkflowRaised({ message: 'a step must have exactly one name', tags: ['SyntaxError'] });
  return entries[0] as [string, Record<string, unknown>];
}

async function runSteps(
  steps: Step[],
  frame: Frame,
  workflow: WorkflowDefinition,
  host: WorkflowHost,
): Promise<Signal> {
  let i = 0;
  while (i < steps.length) {
    const [name, body] = entry(steps[i] as Step);
    const outcome = await runStep(name, body, frame, workflow, host);
    if (outcome.signal) return outcome.signal;
    const next = outcome.next ?? (body.next as string | undefined);
    if (next === undefined) {
      i++;
    } else if (next === 'end') {
      return { type: 'return', value: null };
    } else if (next === 'break' || next === 'continue') {
      return { type: next };
    } else {
      const target = steps.findIndex((s) => Object.keys(s)[0] === next);
      if (target < 0) throw new WorkflowRaised({ message: `next: no step ${next}`, tags: ['KeyError'] });
      i = target;
    }
  }
  return undefined;
}

async function runCall(
  body: Record<string, unknown>,
  frame: Frame,
  workflow: WorkflowDefinition,
  host: WorkflowHost,
) {
  const name = body.call as string;
  const args = (value(body.args ?? {}, frame) ?? {}) as Record<string, unknown>;
  let result: unknown;
  if (name in workflow) result = await callSubworkflow(workflow, host, name, args);
  else if (host.connectors[name])
    result = await (host.connectors[name] as (a: Record<string, unknown>) => Promise<unknown>)(args);
  else if (host.functions[name]) result = (host.functions[name] as WorkflowFunction)(...Object.values(args));
  else throw new WorkflowRaised({ message: `unsupported call ${name}`, tags: ['NotImplemented'] });
  if (typeof body.result === 'string') frame.vars.set(body.result, result);
}

async function runStep(
  name: string,
  body: Record<string, unknown>,
  frame: Frame,
  workflow: WorkflowDefinition,
  host: WorkflowHost,
): Promise<{ signal?: Signal; next?: string }> {
  const unknown = Object.keys(body).filter((k) => !(STEP_KEYS as readonly string[]).includes(k));
  if (unknown.length)
    throw new WorkflowRaised({
      message: `step ${name}: unsupported ${unknown.join(', ')}`,
      tags: ['NotImplemented'],
    });
  if (body.try !== undefined) return runTry(name, body, frame, workflow, host);
  if (body.assign) {
    for (const item of body.assign as Record<string, unknown>[]) {
      for (const [target, raw] of Object.entries(item)) assign(target, value(raw, frame), frame);
    }
  }
  if (body.call) await runCall(body, frame, workflow, host);
  if (body.switch) {
    for (const branch of body.switch as Record<string, unknown>[]) {
      const condition = value(branch.condition, frame);
      // "Each expression must evaluate to true or false" (syntax reference, conditions).
      if (typeof condition !== 'boolean')
        throw new WorkflowRaised({
          message: `step ${name}: the switch condition evaluated to ${JSON.stringify(condition)}, not a boolean`,
          tags: ['TypeError'],
        });
      if (!condition) continue;
      if (branch.assign) await runStep(`${name}.switch`, { assign: branch.assign }, frame, workflow, host);
      if (branch.steps) {
        const signal = await runSteps(branch.steps as Step[], frame, workflow, host);
        if (signal) return { signal };
      }
      if ('raise' in branch) throw new WorkflowRaised(value(branch.raise, frame));
      if ('return' in branch) return { signal: { type: 'return', value: value(branch.return, frame) } };
      if (branch.next) return { next: branch.next as string };
      break;
    }
  }
  if (body.for) {
    const loop = body.for as Record<string, unknown>;
    let items: unknown[];
    if (loop.range !== undefined) {
      const [from, to] = value(loop.range, frame) as [number, number];
      items = [];
      for (let k = from; k <= to; k++) items.push(k);
    } else items = value(loop.in, frame) as unknown[];
    for (const item of items) {
      frame.vars.set(loop.value as string, item);
      const signal = await runSteps(loop.steps as Step[], frame, workflow, host);
      if (signal?.type === 'break') break;
      if (signal?.type === 'return') return { signal };
    }
  }
  if (body.steps) {
    const signal = await runSteps(body.steps as Step[], frame, workflow, host);
    if (signal) return { signal };
  }
  if ('raise' in body) throw new WorkflowRaised(value(body.raise, frame));
  if ('return' in body) return { signal: { type: 'return', value: value(body.return, frame) } };
  return {};
}

async function runTry(
  name: string,
  body: Record<string, unknown>,
  frame: Frame,
  workflow: WorkflowDefinition,
  host: WorkflowHost,
) {
  const attempt = body.try as Record<string, unknown>;
  const retry = body.retry as
    | { predicate: string; max_retries: number; backoff: Record<string, number> }
    | undefined;
  const handler = body.except as { as: string; steps: Step[] } | undefined;
  let delay = (retry?.backoff.initial_delay ?? 1) * 1000;
  for (let tries = 0; ; tries++) {
    try {
      return await runStep(name, attempt, frame, workflow, host);
    } catch (error) {
      const raised = errorValue(error);
      if (retry && tries < retry.max_retries) {
        const predicate = expressionOf(retry.predicate)?.trim() ?? retry.predicate;
        if ((await callSubworkflow(workflow, host, predicate, { e: raised })) === true) {
          await host.sleep(delay);
          delay = Math.min(delay * (retry.backoff.multiplier ?? 2), (retry.backoff.max_delay ?? 60) * 1000);
          continue;
        }
      }
      if (!handler) throw error instanceof WorkflowRaised ? error : new WorkflowRaised(raised);
      frame.vars.set(handler.as, raised);
      const signal = await runSteps(handler.steps, frame, workflow, host);
      return signal ? { signal } : {};
    }
  }
}
