/**
 * The part of the Cloud Workflows expression language (`${...}`) the pipeline's workflow uses:
 * literals (numbers, strings, true/false/null, lists, maps), variables, `.` and `[]` access,
 * function calls, `not`, `and`, `or`, `in`, comparisons and arithmetic. A parse error says where.
 */

export type Expr =
  | { kind: 'literal'; value: unknown }
  | { kind: 'name'; name: string }
  | { kind: 'member'; object: Expr; key: string }
  | { kind: 'index'; object: Expr; index: Expr }
  | { kind: 'call'; callee: string; args: Expr[] }
  | { kind: 'list'; items: Expr[] }
  | { kind: 'map'; entries: [Expr, Expr][] }
  | { kind: 'unary'; op: 'not' | '-'; operand: Expr }
  | { kind: 'binary'; op: string; left: Expr; right: Expr };

export class ExpressionError extends Error {}

type Token = { type: 'num' | 'str' | 'id' | 'op'; value: string; at: number };

const OPERATORS = [
  '//',
  '==',
  '!=',
  '<=',
  '>=',
  '<',
  '>',
  '+',
  '-',
  '*',
  '/',
  '%',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ',',
  ':',
  '.',
];

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?/.exec(source.slice(i));
      tokens.push({ type: 'num', value: m?.[0] ?? c, at: i });
      i += m?.[0].length ?? 1;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let value = '';
      while (j < source.length && source[j] !== c) {
        if (source[j] === '\\') {
          const next = source[j + 1];
          value += next === 'n' ? '\n' : next === 't' ? '\t' : (next ?? '');
          j += 2;
        } else value += source[j++];
      }
      if (j >= source.length) throw new ExpressionError(`unterminated string at ${i}`);
      tokens.push({ type: 'str', value, at: i });
      i = j + 1;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i));
      tokens.push({ type: 'id', value: m?.[0] ?? c, at: i });
      i += m?.[0].length ?? 1;
    } else {
      const op = OPERATORS.find((o) => source.startsWith(o, i));
      if (!op) throw new ExpressionError(`unexpected "${c}" at ${i}`);
      tokens.push({ type: 'op', value: op, at: i });
      i += op.length;
    }
  }
  return tokens;
}

export function parseExpression(source: string): Expr {
  const tokens = tokenize(source);
  let p = 0;
  const peek = (): Token | undefined => tokens[p];
  const isOp = (value: string): boolean => peek()?.type === 'op' && peek()?.value === value;
  const isWord = (value: string): boolean => peek()?.type === 'id' && peek()?.value === value;
  const expect = (value: string): void => {
    if (!isOp(value))
      throw new ExpressionError(`expected "${value}" at ${peek()?.at ?? source.length} in ${source}`);
    p++;
  };

  const primary = (): Expr => {
    const t = peek();
    if (!t) throw new ExpressionError(`unexpected end of ${source}`);
    p++;
    if (t.type === 'num') return { kind: 'literal', value: Number(t.value) };
    if (t.type === 'str') return { kind: 'literal', value: t.value };
    if (t.type === 'op' && t.value === '(') {
      const inner = or();
      expect(')');
      return inner;
    }
    if (t.type === 'op' && t.value === '[') {
      const items: Expr[] = [];
      while (!isOp(']')) {
        items.push(or());
        if (!isOp(']')) expect(',');
      }
      p++;
      return { kind: 'list', items };
    }
    if (t.type === 'op' && t.value === '{') {
      const entries: [Expr, Expr][] = [];
      while (!isOp('}')) {
        const key = or();
        expect(':');
        entries.push([key, or()]);
        if (!isOp('}')) expect(',');
      }
      p++;
      return { kind: 'map', entries };
    }
    if (t.type === 'id') {
      if (t.value === 'true' || t.value === 'false') return { kind: 'literal', value: t.value === 'true' };
      if (t.value === 'null') return { kind: 'literal', value: null };
      // A dotted name followed by "(" is a function call (sys.now(), json.encode(x), default(a, b)).
      let name = t.value;
      let q = p;
      while (tokens[q]?.value === '.' && tokens[q + 1]?.type === 'id') {
        name += `.${tokens[q + 1]?.value}`;
        q += 2;
      }
      if (tokens[q]?.value === '(') {
        p = q + 1;
        const args: Expr[] = [];
        while (!isOp(')')) {
          args.push(or());
          if (!isOp(')')) expect(',');
        }
        p++;
        return { kind: 'call', callee: name, args };
      }
      return { kind: 'name', name: t.value };
    }
    throw new ExpressionError(`unexpected "${t.value}" at ${t.at} in ${source}`);
  };

  const postfix = (): Expr => {
    let e = primary();
    for (;;) {
      if (isOp('.')) {
        p++;
        const key = peek();
        if (key?.type !== 'id') throw new ExpressionError(`expected a name after "." in ${source}`);
        p++;
        e = { kind: 'member', object: e, key: key.value };
      } else if (isOp('[')) {
        p++;
        const index = or();
        expect(']');
        e = { kind: 'index', object: e, index };
      } else return e;
    }
  };
  const unary = (): Expr => {
    if (isWord('not')) {
      p++;
      return { kind: 'unary', op: 'not', operand: unary() };
    }
    if (isOp('-')) {
      p++;
      return { kind: 'unary', op: '-', operand: unary() };
    }
    return postfix();
  };
  const binary =
    (next: () => Expr, ops: string[], words: string[] = []) =>
    (): Expr => {
      let left = next();
      for (;;) {
        const t = peek();
        const op =
          t && ((t.type === 'op' && ops.includes(t.value)) || (t.type === 'id' && words.includes(t.value)))
            ? t.value
            : undefined;
        if (!op) return left;
        p++;
        left = { kind: 'binary', op, left, right: next() };
      }
    };
  const product = binary(unary, ['*', '/', '%', '//']);
  const sum = binary(product, ['+', '-']);
  const comparison = binary(sum, ['==', '!=', '<', '>', '<=', '>='], ['in']);
  const and = binary(comparison, [], ['and']);
  const or = binary(and, [], ['or']);

  const expr = or();
  if (p < tokens.length)
    throw new ExpressionError(`unexpected "${peek()?.value}" at ${peek()?.at} in ${source}`);
  return expr;
}

export type WorkflowFunction = (...args: unknown[]) => unknown;

export interface Scope {
  lookup(name: string): unknown;
  has(name: string): boolean;
  fn(name: string): WorkflowFunction | undefined;
}

function truthy(value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw new ExpressionError(`expected a boolean, got ${JSON.stringify(value)}`);
  return value;
}

export function evaluate(expr: Expr, scope: Scope): unknown {
  switch (expr.kind) {
    case 'literal':
      return expr.value;
    case 'name':
      if (!scope.has(expr.name)) throw new ExpressionError(`unknown variable ${expr.name}`);
      return scope.lookup(expr.name);
    case 'member': {
      const object = evaluate(expr.object, scope) as Record<string, unknown> | null;
      if (object === null || typeof object !== 'object' || !(expr.key in object)) {
        throw new ExpressionError(`KeyError: "${expr.key}" not found`);
      }
      return object[expr.key];
    }
    case 'index': {
      const object = evaluate(expr.object, scope) as Record<string, unknown> | unknown[];
      const index = evaluate(expr.index, scope);
      if (Array.isArray(object)) {
        if (typeof index !== 'number' || index < 0 || index >= object.length)
          throw new ExpressionError(`IndexError: ${index}`);
        return object[index];
      }
      if (object === null || typeof object !== 'object' || !(String(index) in object)) {
        throw new ExpressionError(`KeyError: "${String(index)}" not found`);
      }
      return object[String(index)];
    }
    case 'call': {
      const fn = scope.fn(expr.callee);
      if (!fn) throw new ExpressionError(`unsupported function ${expr.callee}`);
      return fn(...expr.args.map((a) => evaluate(a, scope)));
    }
    case 'list':
      return expr.items.map((i) => evaluate(i, scope));
    case 'map':
      return Object.fromEntries(
        expr.entries.map(([k, v]) => [String(evaluate(k, scope)), evaluate(v, scope)]),
      );
    case 'unary': {
      const value = evaluate(expr.operand, scope);
      return expr.op === 'not' ? !truthy(value) : -(value as number);
    }
    case 'binary': {
      if (expr.op === 'and') return truthy(evaluate(expr.left, scope)) && truthy(evaluate(expr.right, scope));
      if (expr.op === 'or') return truthy(evaluate(expr.left, scope)) || truthy(evaluate(expr.right, scope));
      const l = evaluate(expr.left, scope) as never;
      const r = evaluate(expr.right, scope) as never;
      switch (expr.op) {
        case 'in':
          return Array.isArray(r)
            ? (r as unknown[]).includes(l)
            : r !== null && typeof r === 'object' && String(l) in r;
        case '==':
          return JSON.stringify(l) === JSON.stringify(r);
        case '!=':
          return JSON.stringify(l) !== JSON.stringify(r);
        case '<':
          return l < r;
        case '>':
          return l > r;
        case '<=':
          return l <= r;
        case '>=':
          return l >= r;
        case '+':
          if (typeof l !== typeof r)
            throw new ExpressionError(`TypeError: cannot add ${typeof l} and ${typeof r}`);
          return (l as number) + (r as number);
        case '-':
          return (l as number) - (r as number);
        case '*':
          return (l as number) * (r as number);
        case '/':
          return (l as number) / (r as number);
        case '%':
          return (l as number) % (r as number);
        case '//':
          return Math.floor((l as number) / (r as number));
      }
      throw new ExpressionError(`unsupported operator ${expr.op}`);
    }
  }
}

/** The `${...}` expressions inside a YAML string value, or undefined when it holds none. */
export function expressionOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^\$\{([\s\S]*)\}$/.exec(value.trim());
  return m?.[1];
}
