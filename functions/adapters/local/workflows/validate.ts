import { type Expr, expressionOf, parseExpression } from './expressions.js';
import type { WorkflowDefinition } from './interpreter.js';

/**
 * What Cloud Workflows refuses when a definition is deployed, refused here when the local runner
 * loads one, so that a definition that runs locally also deploys. Each rule comes from Google's
 * documentation:
 *
 * - A `for` directly under `try` does not deploy ("loop step name should not be empty"); the
 *   documented workaround is a named step inside `steps:` under the `try`.
 *   https://cloud.google.com/workflows/docs/issues
 * - "When a workflow is deployed, Workflows checks that the source code is free from errors and
 *   matches the language syntax … Referencing an undefined variable, step, or subworkflow",
 *   reported as "symbol 'x' is neither a variable nor a sub-workflow name".
 *   https://cloud.google.com/workflows/docs/troubleshooting
 * - "A variable created inside a for loop belongs to the local scope of that loop … accessing it
 *   outside of the loop will raise an error when deploying the workflow. This local scoping also
 *   applies to any variable created inside an except block." Subworkflows do not see the
 *   variables of main or of each other; nested `steps` do not open a scope.
 *   https://cloud.google.com/workflows/docs/reference/syntax/variables
 * - "Each switch block can include a maximum of 50 conditions. Each expression must evaluate to
 *   true or false." https://cloud.google.com/workflows/docs/reference/syntax/conditions
 * - "Step names must be unique at the subworkflow level."
 *   https://cloud.google.com/workflows/docs/reference/syntax/steps
 *
 * Stricter than the service where the service's rule is not documented, never looser: a step does
 * one thing (assign, call, switch, for, try, steps, raise or return — with `next`, `args`,
 * `result`, `retry`, `except` only beside the kind they belong to), a `try` wraps a `call` or
 * `steps`, a variable is assigned before it is read (in the order of the definition), and every
 * key of a step, loop, retry, backoff, except block or switch branch is one the syntax reference
 * lists. The subset the runner executes is narrower still (no `parallel`, only known functions
 * and connectors): anything outside it is refused too.
 */

export interface ValidationContext {
  /** Connectors and other callables a `call` may name besides the definition's subworkflows. */
  readonly calls: readonly string[];
  /** Standard-library functions an expression may call. */
  readonly functions: readonly string[];
  /** Checks a plain string value (e.g. an `@sql` reference); returns a problem or undefined. */
  readonly reference?: (text: string) => string | undefined;
}

const KINDS = ['assign', 'call', 'switch', 'for', 'try', 'steps', 'raise', 'return'] as const;
/** What may stand beside each kind in one step. */
const COMPANIONS: Record<(typeof KINDS)[number] | 'next', readonly string[]> = {
  assign: ['next'],
  call: ['args', 'result', 'next'],
  switch: ['next'],
  for: ['next'],
  try: ['retry', 'except', 'next'],
  steps: ['next'],
  raise: [],
  return: [],
  next: [],
};
const SUBWORKFLOW_KEYS = ['params', 'steps'];
const FOR_KEYS = ['value', 'index', 'in', 'range', 'steps'];
const RETRY_KEYS = ['predicate', 'max_retries', 'backoff'];
const BACKOFF_KEYS = ['initial_delay', 'max_delay', 'multiplier'];
const EXCEPT_KEYS = ['as', 'steps'];
const BRANCH_KEYS = ['condition', 'next', 'steps', 'assign', 'return', 'raise'];
const BRANCH_ACTIONS = ['next', 'steps', 'return', 'raise'];
const JUMPS = ['end', 'break', 'continue'];
const MAX_SWITCH_CONDITIONS = 50;
const NOT_BOOLEAN_OPS = ['+', '-', '*', '/', '%', '//'];

/** Variables visible at a point of a subworkflow; loops and except blocks open a child scope. */
class Scope {
  private readonly names = new Set<string>();
  constructor(
    private readonly parent?: Scope,
    /** Names that lived only in a closed child scope, with where: for a precise message. */
    readonly closed: Map<string, string> = parent?.closed ?? new Map(),
  ) {}
  declare(name: string): void {
    if (!this.has(name)) this.names.add(name);
  }
  has(name: string): boolean {
    return this.names.has(name) || (this.parent?.has(name) ?? false);
  }
  /** Ends a child scope: its own names become "known only inside" (unless declared outside later). */
  close(where: string): void {
    for (const name of this.names) if (!this.parent?.has(name)) this.closed.set(name, where);
  }
}

/** Problems of a definition, each as `place: reason`; empty when it would deploy and run. */
export function validateWorkflow(workflow: unknown, context: ValidationContext): string[] {
  const problems: string[] = [];
  if (workflow === null || typeof workflow !== 'object' || Array.isArray(workflow)) {
    return ['the definition must be a map of subworkflows'];
  }
  const definition = workflow as WorkflowDefinition;
  if (!definition.main) problems.push('no main workflow');
  const subworkflows = Object.keys(definition);
  for (const [name, sub] of Object.entries(definition)) {
    if (sub === null || typeof sub !== 'object') {
      problems.push(`${name}: a subworkflow must be a map with steps`);
      continue;
    }
    for (const key of Object.keys(sub)) {
      if (!SUBWORKFLOW_KEYS.includes(key)) problems.push(`${name}: unknown key "${key}"`);
    }
    const scope = new Scope();
    if (sub.params !== undefined) {
      if (!Array.isArray(sub.params)) problems.push(`${name}: params must be a list`);
      else
        for (const param of sub.params as unknown[]) {
          const paramName =
            typeof param === 'string'
              ? param
              : param && typeof param === 'object' && Object.keys(param).length === 1
                ? Object.keys(param)[0]
                : undefined;
          if (paramName === undefined) problems.push(`${name}: a param is a name or a one-key map`);
          else scope.declare(paramName);
        }
    }
    new SubworkflowChecker(name, definition, subworkflows, context, problems).run(sub.steps, scope);
  }
  return problems;
}

class SubworkflowChecker {
  private readonly stepNames = new Set<string>();

  constructor(
    private readonly name: string,
    private readonly workflow: WorkflowDefinition,
    private readonly subworkflows: readonly string[],
    private readonly context: ValidationContext,
    private readonly problems: string[],
  ) {}

  run(steps: unknown, scope: Scope): void {
    this.steps(steps, this.name, scope);
  }

  private problem(where: string, reason: string): void {
    this.problems.push(`${where}: ${reason}`);
  }

  private steps(steps: unknown, where: string, scope: Scope): void {
    if (!Array.isArray(steps) || steps.length === 0) {
      this.problem(where, 'steps must be a non-empty list');
      return;
    }
    const names = steps.map((s) => (s && typeof s === 'object' ? Object.keys(s)[0] : undefined));
    steps.forEach((step, i) => {
      const keys = step && typeof step === 'object' ? Object.keys(step) : [];
      if (keys.length !== 1) {
        this.problem(`${where}[${i}]`, 'a step must have exactly one name');
        return;
      }
      const stepName = keys[0] as string;
      const at = `${where}.${stepName}`;
      if (this.stepNames.has(stepName)) {
        this.problem(at, `step name "${stepName}" is used twice in subworkflow ${this.name}`);
      }
      this.stepNames.add(stepName);
      const body = (step as Record<string, unknown>)[stepName];
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        this.problem(at, 'a step must be a map');
        return;
      }
      this.step(body as Record<string, unknown>, at, scope, names);
    });
  }

  private step(body: Record<string, unknown>, at: string, scope: Scope, siblings: unknown[]): void {
    const keys = Object.keys(body);
    const kinds = keys.filter((k) => (KINDS as readonly string[]).includes(k));
    if (kinds.length > 1) {
      this.problem(at, `a step does one thing, this one mixes ${kinds.join(' and ')}`);
    }
    const kind = (kinds[0] ?? (keys.includes('next') ? 'next' : undefined)) as
      | keyof typeof COMPANIONS
      | undefined;
    if (kind === undefined) {
      this.problem(at, `unknown step kind (${keys.join(', ') || 'empty'})`);
      return;
    }
    for (const key of keys) {
      if (key !== kind && !kinds.includes(key) && !COMPANIONS[kind].includes(key)) {
        this.problem(
          at,
          (KINDS as readonly string[]).includes(key) ||
            ['args', 'result', 'retry', 'except', 'next'].includes(key)
            ? `"${key}" does not belong in a ${kind} step`
            : `unknown key "${key}"`,
        );
      }
    }
    this.next(body.next, at, siblings);
    switch (kind) {
      case 'assign':
        this.assign(body.assign, at, scope);
        break;
      case 'call':
        this.call(body, at, scope);
        break;
      case 'switch':
        this.switch(body.switch, at, scope, siblings);
        break;
      case 'for':
        this.loop(body.for, at, scope);
        break;
      case 'try':
        this.tryStep(body, at, scope);
        break;
      case 'steps':
        this.steps(body.steps, `${at}.steps`, scope);
        break;
      case 'raise':
        this.value(body.raise, `${at}.raise`, scope);
        break;
      case 'return':
        this.value(body.return, `${at}.return`, scope);
        break;
      case 'next':
        break;
    }
  }

  private next(next: unknown, at: string, siblings: unknown[]): void {
    if (next === undefined) return;
    if (typeof next !== 'string') this.problem(at, 'next must name a step');
    else if (!JUMPS.includes(next) && !siblings.includes(next)) {
      this.problem(at, `next "${next}" is not a step here`);
    }
  }

  private assign(items: unknown, at: string, scope: Scope): void {
    if (!Array.isArray(items) || items.length === 0) {
      this.problem(at, 'assign takes a non-empty list of one-key maps');
      return;
    }
    for (const item of items) {
      if (item === null || typeof item !== 'object' || Object.keys(item).length !== 1) {
        this.problem(at, 'each assignment is a map with one key');
        continue;
      }
      const [target, raw] = Object.entries(item)[0] as [string, unknown];
      this.value(raw, `${at}.assign.${target}`, scope);
      let expr: Expr;
      try {
        expr = parseExpression(target);
      } catch (error) {
        this.problem(at, `assign target ${target}: ${(error as Error).message}`);
        continue;
      }
      if (expr.kind === 'name') scope.declare(expr.name);
      else if (expr.kind === 'index' || expr.kind === 'member') {
        // Assigning into a map or list needs the variable to exist already.
        this.expression(expr, `${at}.assign.${target}`, scope);
      } else this.problem(at, `cannot assign to ${target}`);
    }
  }

  private call(body: Record<string, unknown>, at: string, scope: Scope): void {
    const call = body.call;
    if (typeof call !== 'string') {
      this.problem(at, 'call must name a subworkflow, connector or function');
      return;
    }
    const known =
      call in this.workflow || this.context.calls.includes(call) || this.context.functions.includes(call);
    if (!known) this.problem(at, `call "${call}" is neither a subworkflow nor a supported connector`);
    if (body.args !== undefined) {
      if (body.args === null || typeof body.args !== 'object' || Array.isArray(body.args)) {
        this.problem(at, 'args must be a map');
      } else this.value(body.args, `${at}.args`, scope);
    }
    if (call in this.workflow && body.args && typeof body.args === 'object') {
      const params = (this.workflow[call]?.params ?? []).map((p) =>
        typeof p === 'string' ? p : Object.keys(p as object)[0],
      );
      for (const arg of Object.keys(body.args)) {
        if (!params.includes(arg)) this.problem(at, `subworkflow ${call} has no parameter "${arg}"`);
      }
    }
    if (body.result !== undefined) {
      if (typeof body.result !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(body.result)) {
        this.problem(at, 'result must be a variable name');
      } else scope.declare(body.result);
    }
  }

  private switch(branches: unknown, at: string, scope: Scope, siblings: unknown[]): void {
    if (!Array.isArray(branches) || branches.length === 0) {
      this.problem(at, 'switch takes a non-empty list of conditions');
      return;
    }
    if (branches.length > MAX_SWITCH_CONDITIONS) {
      this.problem(
        at,
        `a switch has at most ${MAX_SWITCH_CONDITIONS} conditions, this one ${branches.length}`,
      );
    }
    branches.forEach((branch, j) => {
      const where = `${at}.switch[${j}]`;
      if (branch === null || typeof branch !== 'object') {
        this.problem(where, 'a condition must be a map');
        return;
      }
      const b = branch as Record<string, unknown>;
      for (const key of Object.keys(b)) {
        if (!BRANCH_KEYS.includes(key)) this.problem(where, `unknown key "${key}"`);
      }
      if (!('condition' in b)) this.problem(where, 'a branch needs a condition');
      else this.condition(b.condition, `${where}.condition`, scope);
      const actions = BRANCH_ACTIONS.filter((k) => k in b);
      if (actions.length > 1)
        this.problem(where, `a branch does one thing, this one ${actions.join(' and ')}`);
      if (!actions.length && !('assign' in b)) this.problem(where, 'a branch needs something to do');
      if ('assign' in b) this.assign(b.assign, where, scope);
      this.next(b.next, where, siblings);
      if ('steps' in b) this.steps(b.steps, `${where}.steps`, scope);
      if ('raise' in b) this.value(b.raise, `${where}.raise`, scope);
      if ('return' in b) this.value(b.return, `${where}.return`, scope);
    });
  }

  /** A condition must evaluate to a boolean: a value that can be nothing else is refused here. */
  private condition(raw: unknown, where: string, scope: Scope): void {
    const source = expressionOf(raw);
    if (source === undefined) {
      if (typeof raw !== 'boolean')
        this.problem(where, 'a condition must be true, false or a boolean expression');
      return;
    }
    const expr = this.expression(source, where, scope);
    if (!expr) return;
    const notBoolean =
      (expr.kind === 'literal' && typeof expr.value !== 'boolean') ||
      expr.kind === 'list' ||
      expr.kind === 'map' ||
      (expr.kind === 'unary' && expr.op === '-') ||
      (expr.kind === 'binary' && NOT_BOOLEAN_OPS.includes(expr.op));
    if (notBoolean) this.problem(where, `the condition ${source.trim()} cannot evaluate to true or false`);
  }

  private loop(raw: unknown, at: string, scope: Scope): void {
    if (raw === null || typeof raw !== 'object') {
      this.problem(at, 'for must be a map');
      return;
    }
    const loop = raw as Record<string, unknown>;
    for (const key of Object.keys(loop)) {
      if (!FOR_KEYS.includes(key)) this.problem(`${at}.for`, `unknown key "${key}"`);
    }
    if (typeof loop.value !== 'string') this.problem(at, 'for needs a value name');
    if ((loop.in === undefined) === (loop.range === undefined)) this.problem(at, 'for needs "in" or "range"');
    this.value(loop.in ?? loop.range, `${at}.for`, scope);
    const inner = new Scope(scope);
    if (typeof loop.value === 'string') inner.declare(loop.value);
    if (typeof loop.index === 'string') inner.declare(loop.index);
    this.steps(loop.steps, `${at}.for.steps`, inner);
    inner.close(`the for loop of ${at}`);
  }

  private tryStep(body: Record<string, unknown>, at: string, scope: Scope): void {
    const attempt = body.try;
    if (attempt === null || typeof attempt !== 'object' || Array.isArray(attempt)) {
      this.problem(at, 'try must be a map');
      return;
    }
    const a = attempt as Record<string, unknown>;
    if ('for' in a) {
      // Workflows known issues: deploy fails with "loop step name should not be empty".
      this.problem(
        at,
        'loop step name should not be empty: a for directly under try does not deploy; put it in a named step under try: steps:',
      );
    } else if (!('call' in a) && !('steps' in a)) {
      this.problem(at, 'try wraps a call or steps');
    } else {
      this.step(a, `${at}.try`, scope, []);
    }
    const retry = body.retry;
    if (retry !== undefined) {
      if (retry === null || typeof retry !== 'object') this.problem(at, 'retry must be a map');
      else {
        const r = retry as Record<string, unknown>;
        for (const key of Object.keys(r)) {
          if (!RETRY_KEYS.includes(key)) this.problem(`${at}.retry`, `unknown key "${key}"`);
        }
        const predicate = expressionOf(r.predicate)?.trim();
        if (!predicate || !(predicate in this.workflow))
          this.problem(at, 'retry predicate must name a subworkflow');
        if (typeof r.max_retries !== 'number' || !Number.isInteger(r.max_retries) || r.max_retries < 0) {
          this.problem(at, 'retry needs max_retries, a whole number');
        }
        const backoff = r.backoff as Record<string, unknown> | undefined;
        if (backoff !== undefined) {
          for (const key of Object.keys(backoff ?? {})) {
            if (!BACKOFF_KEYS.includes(key)) this.problem(`${at}.retry.backoff`, `unknown key "${key}"`);
            else if (typeof backoff[key] !== 'number' || (backoff[key] as number) <= 0) {
              this.problem(`${at}.retry.backoff`, `${key} must be a positive number`);
            }
          }
        }
      }
    }
    const handler = body.except;
    if (handler !== undefined) {
      if (handler === null || typeof handler !== 'object') this.problem(at, 'except must be a map');
      else {
        const h = handler as Record<string, unknown>;
        for (const key of Object.keys(h)) {
          if (!EXCEPT_KEYS.includes(key)) this.problem(`${at}.except`, `unknown key "${key}"`);
        }
        const inner = new Scope(scope);
        if (typeof h.as !== 'string') this.problem(at, 'except needs "as"');
        else inner.declare(h.as);
        this.steps(h.steps, `${at}.except.steps`, inner);
        inner.close(`the except block of ${at}`);
      }
    }
  }

  /** A value: an expression, a plain string, or a list or map of values. */
  private value(raw: unknown, where: string, scope: Scope): void {
    const source = expressionOf(raw);
    if (source !== undefined) this.expression(source, where, scope);
    else if (typeof raw === 'string') {
      const problem = this.context.reference?.(raw);
      if (problem) this.problem(where, problem);
    } else if (Array.isArray(raw)) {
      for (const [i, r] of raw.entries()) this.value(r, `${where}[${i}]`, scope);
    } else if (raw !== null && typeof raw === 'object') {
      for (const [k, v] of Object.entries(raw)) this.value(v, `${where}.${k}`, scope);
    }
  }

  /** Parses and checks an expression: known functions, defined variables or subworkflows. */
  private expression(source: string | Expr, where: string, scope: Scope): Expr | undefined {
    let expr: Expr;
    try {
      expr = typeof source === 'string' ? parseExpression(source) : source;
    } catch (error) {
      this.problem(where, (error as Error).message);
      return undefined;
    }
    const walk = (e: Expr): void => {
      switch (e.kind) {
        case 'name':
          if (!scope.has(e.name) && !this.subworkflows.includes(e.name)) {
            const inside = scope.closed.get(e.name);
            this.problem(
              where,
              inside
                ? `symbol '${e.name}' is neither a variable nor a sub-workflow name (it exists only inside ${inside})`
                : `symbol '${e.name}' is neither a variable nor a sub-workflow name`,
            );
          }
          return;
        case 'call':
          if (!this.context.functions.includes(e.callee)) this.problem(where, `unknown function ${e.callee}`);
          for (const arg of e.args) walk(arg);
          return;
        case 'member':
          walk(e.object);
          return;
        case 'index':
          walk(e.object);
          walk(e.index);
          return;
        case 'list':
          for (const item of e.items) walk(item);
          return;
        case 'map':
          for (const [k, v] of e.entries) {
            walk(k);
            walk(v);
          }
          return;
        case 'unary':
          walk(e.operand);
          return;
        case 'binary':
          walk(e.left);
          walk(e.right);
          return;
        case 'literal':
          return;
      }
    };
    walk(expr);
    return expr;
  }
}
