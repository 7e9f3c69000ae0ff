import { ALL_TABLES, googleSqlType } from '../../functions/core/schema.js';
import { type ScriptStatement, scriptStatements } from '../../functions/core/sql-script.js';
import { analyze, evaluate, type ZetaParams, type ZetaTable } from './zetasql.mjs';

/**
 * Runs a GoogleSQL script of sql/bigquery/ statement by statement on the ZetaSQL reference
 * evaluator, which runs queries but not scripts or MERGE. The evaluator computes every SELECT —
 * the query of each CREATE TEMP TABLE and INSERT, the USING source of each MERGE with its ON and
 * WHEN conditions and SET/VALUES expressions, the rows an UPDATE or DELETE touches (with their
 * new values) — and this harness only applies those results to its tables. DECLARE variables
 * become query parameters. BEGIN/COMMIT TRANSACTION need no evaluation (one script at a time).
 */

export type Parsed =
  | { kind: 'declare'; name: string; type: string; expr: string | undefined }
  | { kind: 'set'; name: string; expr: string }
  | { kind: 'function'; name: string; param: string; type: string; body: string }
  | { kind: 'transaction' }
  | { kind: 'create_temp'; table: string; query: string }
  | { kind: 'insert'; table: string; columns: string[]; query: string }
  | {
      kind: 'merge';
      table: string;
      target: string;
      using: string;
      source: string;
      on: string;
      matched: string;
      sets: [string, string][];
      insertColumns: string[];
      values: string[];
    }
  | {
      kind: 'update';
      table: string;
      alias: string;
      sets: [string, string][];
      from: string | undefined;
      where: string;
    }
  | { kind: 'delete'; table: string; alias: string; where: string }
  | { kind: 'select'; query: string };

/** Splits at commas outside parentheses and quotes. */
function topLevelCommas(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter(Boolean);
}

const DECLARE = /^DECLARE (\w+) ([\w<>]+)(?: DEFAULT \(([\s\S]*)\))?$/;
const SET = /^SET (\w+) = ([\s\S]*)$/;
const FUNCTION = /^CREATE TEMP FUNCTION (\w+)\((\w+) (\w+)\) AS \(([\s\S]*)\)$/;
const CREATE_TEMP = /^CREATE TEMP TABLE (\w+) AS\s+([\s\S]*)$/;
const INSERT = /^INSERT INTO ([\w.]+)\s*\(([^)]*)\)\s*([\s\S]*)$/;
const MERGE =
  /^MERGE INTO ([\w.]+) AS (\w+)\s+USING \(([\s\S]*)\) AS (\w+)\s+ON ([\s\S]*?)\s+WHEN MATCHED AND \(([\s\S]*?)\) THEN\s+UPDATE SET ([\s\S]*?)\s+WHEN NOT MATCHED THEN\s+INSERT \(([^)]*)\)\s+VALUES \(([\s\S]*)\)$/;
const UPDATE = /^UPDATE ([\w.]+)(?: AS (\w+))?\s+SET\s+([\s\S]*?)(?:\s+FROM ([\s\S]*?))?\s+WHERE ([\s\S]*)$/;
const DELETE = /^DELETE FROM ([\w.]+) AS (\w+)\s+WHERE ([\s\S]*)$/;

export function parseStatement(text: string): Parsed {
  const g = (re: RegExp): string[] | undefined =>
    re
      .exec(text)
      ?.slice(1)
      .map((x) => x ?? '');
  const declare = g(DECLARE);
  if (declare)
    return { kind: 'declare', name: declare[0] ?? '', type: declare[1] ?? '', expr: declare[2] || undefined };
  const set = g(SET);
  if (set) return { kind: 'set', name: set[0] ?? '', expr: set[1] ?? '' };
  const fn = g(FUNCTION);
  if (fn)
    return { kind: 'function', name: fn[0] ?? '', param: fn[1] ?? '', type: fn[2] ?? '', body: fn[3] ?? '' };
  if (/^(BEGIN|COMMIT) TRANSACTION$/.test(text)) return { kind: 'transaction' };
  const create = g(CREATE_TEMP);
  if (create) return { kind: 'create_temp', table: create[0] ?? '', query: create[1] ?? '' };
  const insert = g(INSERT);
  if (insert) {
    const rest = (insert[2] ?? '').trim();
    const values = /^VALUES \(([\s\S]*)\)$/.exec(rest);
    return {
      kind: 'insert',
      table: insert[0] ?? '',
      columns: topLevelCommas(insert[1] ?? ''),
      query: values ? `SELECT ${values[1]}` : rest,
    };
  }
  const merge = g(MERGE);
  if (merge) {
    const [table, target, using, source, on, matched, sets, columns, values] = merge as [string, ...string[]];
    return {
      kind: 'merge',
      table,
      target: target ?? '',
      using: using ?? '',
      source: source ?? '',
      on: on ?? '',
      matched: matched ?? '',
      sets: topLevelCommas(sets ?? '').map((a) => {
        const [column, ...expr] = a.split('=');
        return [(column ?? '').trim(), expr.join('=').trim()];
      }),
      insertColumns: topLevelCommas(columns ?? ''),
      values: topLevelCommas(values ?? ''),
    };
  }
  const update = g(UPDATE);
  if (update)
    return {
      kind: 'update',
      table: update[0] ?? '',
      alias: update[1] || '__target',
      sets: topLevelCommas(update[2] ?? '').map((a) => {
        const [column, ...expr] = a.split('=');
        return [(column ?? '').trim(), expr.join('=').trim()];
      }),
      from: update[3] || undefined,
      where: update[4] ?? '',
    };
  const del = g(DELETE);
  if (del) return { kind: 'delete', table: del[0] ?? '', alias: del[1] ?? '', where: del[2] ?? '' };
  if (/^SELECT\b/.test(text)) return { kind: 'select', query: text };
  throw new Error(`the parity harness does not know this statement: ${text.slice(0, 60)}`);
}

/**
 * A script's temporary SQL functions, applied the way BigQuery defines them: each call is the
 * function's body with its parameter bound to the argument (the evaluator and the single-statement
 * analyzer take no CREATE TEMP FUNCTION; the body itself is analyzed on its own).
 */
function withFunctions(sql: string, functions: ReadonlyMap<string, { param: string; body: string }>): string {
  let out = sql;
  for (const [name, fn] of functions) {
    const call = new RegExp(`(?<![\\w.])${name}\\(`, 'g');
    let done = '';
    let rest = out;
    for (let match = call.exec(rest); match !== null; match = call.exec(rest)) {
      let depth = 1;
      let i = match.index + match[0].length;
      for (; i < rest.length && depth > 0; i++) {
        if (rest[i] === '(') depth++;
        else if (rest[i] === ')') depth--;
      }
      const argument = rest.slice(match.index + match[0].length, i - 1);
      const body = fn.body.replace(new RegExp(`(?<![\\w.'])${fn.param}(?![\\w'])`, 'g'), `(${argument})`);
      done += `${rest.slice(0, match.index)}(${body})`;
      rest = rest.slice(i);
      call.lastIndex = 0;
    }
    out = done + rest;
  }
  return out;
}

/** Script variables are read as query parameters of the same name. */
function withVariables(sql: string, variables: readonly string[]): string {
  return variables.reduce((s, v) => s.replace(new RegExp(`(?<![@\\w.])${v}\\b`, 'g'), `@${v}`), sql);
}

export type Tables = Map<string, ZetaTable & { rows: Record<string, unknown>[] }>;

/** Every table of the schema, empty, typed as BigQuery types it. */
export function schemaTables(): Tables {
  const tables: Tables = new Map();
  for (const t of ALL_TABLES) {
    tables.set(`${t.dataset}.${t.name}`, {
      columns: Object.fromEntries(t.fields.map((f) => [f.name, googleSqlType(f)])),
      rows: [],
    });
  }
  return tables;
}

const ROWID = '__rowid';

/**
 * BigQuery's runtime error when an UPDATE ... FROM joins a target row to several source rows, or
 * a MERGE updates one target row from several: the statement fails, nothing is applied
 * (https://cloud.google.com/bigquery/docs/reference/standard-sql/dml-syntax, UPDATE and MERGE).
 */
const ONE_SOURCE_ROW = 'UPDATE/MERGE must match at most one source row for each target row';

/** The schema's tables as an analyzer catalog: columns only, no rows. */
export function schemaCatalog(): Record<string, ZetaTable> {
  return Object.fromEntries([...schemaTables()].map(([name, t]) => [name, { columns: t.columns }]));
}

function asObject(tables: Tables, withRowId?: string): Record<string, ZetaTable> {
  const out: Record<string, ZetaTable> = {};
  for (const [name, t] of tables) {
    out[name] =
      name === withRowId
        ? { columns: { ...t.columns, [ROWID]: 'INT64' }, rows: t.rows.map((r, i) => ({ ...r, [ROWID]: i })) }
        : t;
  }
  return out;
}

/**
 * What BigQuery refuses in a script's shape, checked before a statement runs: a variable declared
 * after any other statement ("Variable declarations must appear before other procedural
 * statements, or at the start of a BEGIN block", and a name declared twice is an error:
 * https://cloud.google.com/bigquery/docs/reference/standard-sql/procedural-language#declare), and a
 * temporary function or table created again under a name the script already made (CREATE without
 * OR REPLACE refuses an existing name: data-definition-language#create_function_statement,
 * #create_table_statement). The harness takes no BEGIN block, so a declaration is allowed only
 * at the top of the script.
 */
class ScriptShape {
  private started = false;
  private readonly names = new Set<string>();

  check(parsed: Parsed, line: number): void {
    const made =
      parsed.kind === 'declare'
        ? `variable ${parsed.name.toLowerCase()}`
        : parsed.kind === 'function'
          ? `function ${parsed.name}`
          : parsed.kind === 'create_temp'
            ? `table ${parsed.table}`
            : undefined;
    if (parsed.kind === 'declare' && this.started)
      throw new Error(
        `line ${line}: DECLARE after another statement; BigQuery takes declarations only at the start`,
      );
    if (parsed.kind !== 'declare') this.started = true;
    if (made && this.names.has(made)) throw new Error(`line ${line}: ${made} exists already in this script`);
    if (made) this.names.add(made);
  }
}

export interface ScriptRun {
  statements: { line: number; kind: Parsed['kind'] }[];
  finalCounts: Record<string, unknown> | undefined;
}

/** Evaluates a script, statement by statement, changing `tables` as BigQuery would. */
export async function evaluateScript(sql: string, tables: Tables, params: ZetaParams): Promise<ScriptRun> {
  const variables: string[] = [];
  const all: ZetaParams = { ...params };
  const run: ScriptRun = { statements: [], finalCounts: undefined };
  const functions = new Map<string, { param: string; body: string }>();
  const shape = new ScriptShape();
  for (const statement of scriptStatements(sql)) {
    const parsed = parseStatement(statement.text);
    shape.check(parsed, statement.line);
    const q = (s: string) => withVariables(withFunctions(s, functions), variables);
    const where = (e: unknown) => {
      throw new Error(`line ${statement.line}: ${(e as Error).message}`);
    };
    run.statements.push({ line: statement.line, kind: parsed.kind });
    switch (parsed.kind) {
      case 'transaction':
        break;
      case 'function':
        functions.set(parsed.name, { param: parsed.param, body: parsed.body });
        break;
      case 'declare': {
        const [row] =
          parsed.expr === undefined
            ? [undefined]
            : await evaluate(`SELECT (${q(parsed.expr)}) AS v`, asObject(tables), all).catch(where);
        all[parsed.name] = { type: parsed.type, value: row?.v ?? null };
        variables.push(parsed.name);
        break;
      }
      case 'set': {
        const [row] = await evaluate(`SELECT (${q(parsed.expr)}) AS v`, asObject(tables), all).catch(where);
        const declared = all[parsed.name];
        if (!declared)
          throw new Error(`line ${statement.line}: SET of an undeclared variable ${parsed.name}`);
        all[parsed.name] = { type: declared.type, value: row?.v ?? null };
        break;
      }
      case 'create_temp': {
        const rows = await evaluate(q(parsed.query), asObject(tables), all).catch(where);
        tables.set(parsed.table, {
          columns: Object.fromEntries(
            rows.columns.filter((c) => c.name !== ROWID).map((c) => [c.name, c.type]),
          ),
          rows: rows.map(({ [ROWID]: _, ...rest }) => rest),
        });
        break;
      }
      case 'insert': {
        const rows = await evaluate(q(parsed.query), asObject(tables), all).catch(where);
        const target = tables.get(parsed.table);
        if (!target) throw new Error(`line ${statement.line}: no table ${parsed.table}`);
        for (const row of rows) {
          const values = rows.columns.map((c) => row[c.name]);
          target.rows.push(Object.fromEntries(parsed.columns.map((c, i) => [c, values[i] ?? null])));
        }
        break;
      }
      case 'merge': {
        const target = tables.get(parsed.table);
        if (!target) throw new Error(`line ${statement.line}: no table ${parsed.table}`);
        const select = [
          `${parsed.target}.${ROWID} AS ${ROWID}`,
          `IFNULL((${parsed.matched}), FALSE) AS __update`,
          ...parsed.sets.map(([, e], i) => `${e} AS __set${i}`),
          ...parsed.values.map((e, i) => `${e} AS __ins${i}`),
        ].join(', ');
        const rows = await evaluate(
          q(
            `SELECT ${select} FROM (${parsed.using}) AS ${parsed.source} LEFT JOIN ${parsed.table} AS ${parsed.target} ON ${parsed.on}`,
          ),
          asObject(tables, parsed.table),
          all,
        ).catch(where);
        const inserts: Record<string, unknown>[] = [];
        const updated = new Set<number>();
        for (const row of rows) {
          const id = row[ROWID];
          if (id === null || id === undefined) {
            inserts.push(
              Object.fromEntries(parsed.insertColumns.map((c, i) => [c, row[`__ins${i}`] ?? null])),
            );
          } else if (row.__update === true) {
            if (updated.has(Number(id))) throw new Error(`line ${statement.line}: ${ONE_SOURCE_ROW}`);
            updated.add(Number(id));
            const current = target.rows[Number(id)] as Record<string, unknown>;
            parsed.sets.forEach(([c], i) => {
              current[c] = row[`__set${i}`] ?? null;
            });
          }
        }
        target.rows.push(...inserts);
        break;
      }
      case 'update': {
        const target = tables.get(parsed.table);
        if (!target) throw new Error(`line ${statement.line}: no table ${parsed.table}`);
        const values = parsed.sets.map(([, e], i) => `(${e}) AS __v${i}`).join(', ');
        const from = parsed.from ? `, ${parsed.from}` : '';
        const rows = await evaluate(
          q(
            `SELECT ${parsed.alias}.${ROWID} AS ${ROWID}, ${values} FROM ${parsed.table} AS ${parsed.alias}${from} WHERE ${parsed.where}`,
          ),
          asObject(tables, parsed.table),
          all,
        ).catch(where);
        const seen = new Set<number>();
        for (const row of rows) {
          const id = Number(row[ROWID]);
          if (seen.has(id)) throw new Error(`line ${statement.line}: ${ONE_SOURCE_ROW}`);
          seen.add(id);
          parsed.sets.forEach(([c], i) => {
            (target.rows[id] as Record<string, unknown>)[c] = row[`__v${i}`] ?? null;
          });
        }
        break;
      }
      case 'delete': {
        const target = tables.get(parsed.table);
        if (!target) throw new Error(`line ${statement.line}: no table ${parsed.table}`);
        const rows = await evaluate(
          q(
            `SELECT ${parsed.alias}.${ROWID} AS ${ROWID} FROM ${parsed.table} AS ${parsed.alias} WHERE ${parsed.where}`,
          ),
          asObject(tables, parsed.table),
          all,
        ).catch(where);
        const gone = new Set(rows.map((r) => Number(r[ROWID])));
        target.rows = target.rows.filter((_, i) => !gone.has(i));
        break;
      }
      case 'select': {
        const [row] = await evaluate(q(parsed.query), asObject(tables), all).catch(where);
        run.finalCounts = row;
        break;
      }
    }
  }
  return run;
}

export interface Analysis {
  statement: ScriptStatement;
  kind: Parsed['kind'];
  error?: string;
  mismatches: string[];
}

/**
 * Analyzes every statement of a script with the ZetaSQL analyzer against the schema's catalog
 * (temp tables added as the script creates them), and checks that what each INSERT and MERGE
 * writes has exactly the target columns' types.
 */
export async function analyzeScript(sql: string, params: ZetaParams): Promise<Analysis[]> {
  const tables = schemaTables();
  const variables: string[] = [];
  const all: ZetaParams = { ...params };
  const out: Analysis[] = [];
  const functions = new Map<string, { param: string; body: string }>();
  const shape = new ScriptShape();
  for (const statement of scriptStatements(sql)) {
    const parsed = parseStatement(statement.text);
    const q = (s: string) => withVariables(withFunctions(s, functions), variables);
    const result: Analysis = { statement, kind: parsed.kind, mismatches: [] };
    out.push(result);
    try {
      shape.check(parsed, statement.line);
    } catch (error) {
      result.error = (error as Error).message;
      continue;
    }
    // Script syntax the single-statement analyzer does not take: DECLARE's default and SET's value
    // are analyzed as queries, a temporary function's body with its parameter as a query parameter.
    let text = statement.text;
    let scope = all;
    if (parsed.kind === 'declare') text = `SELECT (${parsed.expr ?? 'NULL'}) AS v`;
    else if (parsed.kind === 'set') text = `SELECT (${parsed.expr}) AS v`;
    else if (parsed.kind === 'function') {
      text = `SELECT (${parsed.body.replace(new RegExp(`(?<![\\w.'])${parsed.param}(?![\\w'])`, 'g'), `@${parsed.param}`)}) AS v`;
      scope = { ...all, [parsed.param]: { type: parsed.type } };
      functions.set(parsed.name, { param: parsed.param, body: parsed.body });
    }
    const check = await analyze(q(text), asObject(tables), scope);
    if (check.error) {
      result.error = `line ${statement.line + (check.error.line ?? 1) - 1}, column ${check.error.column}: ${check.error.message}`;
      continue;
    }
    const typesOf = async (query: string) => (await analyze(q(query), asObject(tables), all)).columns ?? [];
    if (parsed.kind === 'declare') {
      const type = check.columns?.[0]?.type;
      if (parsed.expr !== undefined && type !== parsed.type)
        result.mismatches.push(`${parsed.name} is ${parsed.type}, its default gives ${type}`);
      all[parsed.name] = { type: parsed.type };
      variables.push(parsed.name);
    } else if (parsed.kind === 'set') {
      const type = check.columns?.[0]?.type;
      const declared = all[parsed.name]?.type;
      if (type !== declared) result.mismatches.push(`${parsed.name} is ${declared}, the SET gives ${type}`);
    } else if (parsed.kind === 'create_temp') {
      tables.set(parsed.table, {
        columns: Object.fromEntries((await typesOf(parsed.query)).map((c) => [c.name, c.type])),
        rows: [],
      });
    } else if (parsed.kind === 'insert') {
      const target = tables.get(parsed.table)?.columns ?? {};
      (await typesOf(parsed.query)).forEach((c, i) => {
        const column = parsed.columns[i] ?? '?';
        if (target[column] !== c.type)
          result.mismatches.push(`${parsed.table}.${column} is ${target[column]}, the query gives ${c.type}`);
      });
    } else if (parsed.kind === 'merge') {
      const target = tables.get(parsed.table)?.columns ?? {};
      for (const c of await typesOf(`SELECT * FROM (${parsed.using})`)) {
        if (c.name in target && target[c.name] !== c.type) {
          result.mismatches.push(
            `${parsed.table}.${c.name} is ${target[c.name]}, the MERGE source gives ${c.type}`,
          );
        }
      }
    }
  }
  return out;
}
