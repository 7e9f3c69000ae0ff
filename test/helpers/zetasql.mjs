// zeta.mjs — minimal, dependency-light wrapper around the ZetaSQL "local
// service" gRPC server that ships in @fivetrandevelopers/zetasql (1.13.0).
//
//   import { startServer, stopServer, analyze, evaluate } from './zeta.mjs';
//   await startServer();                       // spawns the binary on 127.0.0.1:<free port>
//   const a = await analyze(sql, tables, params);   // -> { columns, statementKind } | { error }
//   const rows = await evaluate(sql, tables, params); // -> [{ col: value, ... }]  (throws on error)
//   await stopServer();                        // kills the child by pid
//
// `tables` (same shape for analyze and evaluate; rows are ignored by analyze):
//   { 'ods.sales': { columns: { id: 'INT64', lines: 'ARRAY<STRUCT<sku STRING, qty INT64>>', ... },
//                    rows: [ { id: 1, lines: [{ sku: 'a', qty: 2 }] }, ... ] } }
//   Column types are BigQuery-style type strings (or raw zetasql.TypeProto objects).
//   Rows are objects keyed by column name (missing key => NULL) or positional arrays.
//
// `params`: { now: { type: 'TIMESTAMP', value: '2025-07-19T10:15:00Z' } }  (analyze only
//   needs the type; `{ now: 'TIMESTAMP' }` is accepted there too).
//
// JS <-> SQL value mapping (both directions, see encodeValue/decodeValue):
//   NULL            <-> null
//   INT64           <-> number (string for |v| > 2^53 on output; input: number|bigint|string)
//   NUMERIC/BIGNUMERIC <-> exact decimal string, e.g. '12.123456789', '-0.5' (numbers accepted on input)
//   DATE            <-> 'YYYY-MM-DD'
//   DATETIME        <-> 'YYYY-MM-DDTHH:MM:SS[.fffffffff]' (input may use ' ' instead of 'T';
//                       output: fraction with trailing zeros trimmed)
//   TIME            <-> 'HH:MM:SS[.fffffffff]'
//   TIMESTAMP       <-> ISO string in UTC '...Z' (input: ISO with Z/±hh:mm/no zone(=UTC), or Date)
//   JSON            <-> any JS value (JSON.stringify / JSON.parse); rawJson('{"a":1}') for raw text
//   ARRAY<T>        <-> JS array
//   STRUCT<...>     <-> object keyed by field names (input may also be a positional array)
//   BYTES           <-> Buffer; BOOL <-> boolean; FLOAT64 <-> number; STRING <-> string
//
// ValueProto encodings (zetasql/public/value.proto) that are not obvious:
//   * NULL of any type: a ValueProto with *no* oneof field set ({}). Type comes from context.
//   * NUMERIC  numeric_value (bytes): value * 10^9 as a two's-complement integer, little-endian,
//              minimal length (trailing 0x00/0xFF sign bytes dropped but sign bit kept; 0 -> [0x00]).
//              e.g. 12.123456789 -> 12123456789 -> 15 45 9d d2 02 ; -0.5 -> 00 9b 32 e2.
//   * BIGNUMERIC bignumeric_value: same scheme, scale 10^38, up to 32 bytes.
//   * DATETIME datetime_value { bit_field_datetime_seconds: int64, nanos: int32 } where
//              bit_field = year<<26 | month<<22 | day<<17 | hour<<12 | minute<<6 | second.
//   * TIME     time_value int64 = hour<<42 | minute<<36 | second<<30 | nanos.
//   * TIMESTAMP timestamp_value google.protobuf.Timestamp { seconds (epoch, int64), nanos }.
//   * DATE     date_value int32 = days since 1970-01-01.
//   * JSON     json_value: the JSON document as a string.
//   * ARRAY    array_value { element: [ValueProto] };  STRUCT struct_value { field: [ValueProto] }
//              (positional, in the STRUCT type's field order).
//   * int64 fields travel as decimal strings here because the protos are loaded with
//     longs: String (avoids precision loss).
//
// Catalog / dataset-qualified names (what we found):
//   * A top-level table named "ods.sales" only matches the *single* identifier `ods.sales`
//     (backticked as a whole). Unquoted ods.sales is the 2-part path [ods, sales] and
//     needs a sub-catalog "ods" containing table "sales".
//   * We therefore register every dotted table twice: top-level "ods.sales" AND nested
//     catalog chain ods -> sales (full_name "ods.sales"). Both `ods.sales`, ods.sales and
//     `ods`.`sales` then analyze.
//   * EvaluateQuery's table_content map is only applied to *top-level* tables of the
//     SimpleCatalogProto (keyed by name_in_catalog or name). Tables in nested catalogs get
//     no content ("Table sales does not support the API in evaluator.h"). evaluate()
//     therefore uses the server's Parse RPC to locate multi-part table paths in FROM
//     clauses that match a dotted table and rewrites them to the single backticked
//     identifier (`ods.sales`), which resolves to the top-level table that has content,
//     adding "AS sales" when there is no alias (BigQuery's implicit alias). Error locations
//     from evaluate() refer to that rewritten SQL (attached to the error as err.sql).
//   * Caveat for analyze() (SQL is left verbatim): for `ods.sales` written as ONE backticked
//     identifier, ZetaSQL's implicit alias is "ods.sales", not "sales" as in BigQuery.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const require = createRequire(import.meta.url);
const PKG_DIR = path.dirname(require.resolve('@fivetrandevelopers/zetasql/package.json'));
const ZETA_DIR = path.join(PKG_DIR, 'lib', 'zetasql');
export const PROTO_DIR = path.join(ZETA_DIR, 'protos');

/** Path of the server binary matching this platform (same logic as the package's server.js). */
export function serverBinary() {
  const arm = process.arch.startsWith('arm');
  const ext = (arm ? '_arm' : '') + (process.platform === 'darwin' ? '' : '.so');
  return path.join(ZETA_DIR, `remote_server${ext}`);
}

// ---------------------------------------------------------------------------
// Proto / client loading
// ---------------------------------------------------------------------------
// keepCase: field names exactly as in the .proto files (snake_case), so request objects
//           can be written straight from the proto definitions.
// longs: String  -> int64 values come back as decimal strings (no precision loss).
// enums: String  -> enum values as their names ('TYPE_INT64', 'PRODUCT_EXTERNAL', ...).
// oneofs: true   -> each decoded oneof gets a virtual field naming the member that is set
//                   (ValueProto.value, AnyResolvedStatementProto.node, ...).
// defaults: false-> unset fields are absent (important: a NULL ValueProto decodes as {}).
// google/protobuf/{empty,descriptor,timestamp}.proto are bundled with protobufjs.
const packageDefinition = protoLoader.loadSync('local_service.proto', {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  oneofs: true,
  defaults: false,
});
const proto = grpc.loadPackageDefinition(packageDefinition);
const ServiceClient = proto.zetasql.local_service.ZetaSqlLocalService;

let server = null; // { proc, pid, port, client, languageOptions, log }

/** Promisified unary call on the running server, e.g. rpc('Analyze', {...}). */
export function rpc(method, request, { timeoutMs = 60000 } = {}) {
  if (!server) throw new Error('ZetaSQL server not started (call startServer first)');
  return new Promise((resolve, reject) => {
    server.client[method](request, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

// ---------------------------------------------------------------------------
// Server lifecycle
// ---------------------------------------------------------------------------
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Safety nets so the child never outlives us: kill it synchronously on process exit, and on
// SIGINT/SIGTERM (whose default action would skip 'exit' handlers) kill it, then re-raise.
const killOnExit = () => {
  if (server?.pid) {
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {}
  }
};
const onSignal = (sig) => {
  killOnExit();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.kill(process.pid, sig);
};

/**
 * Start the ZetaSQL local server on 127.0.0.1:<free port> and wait until it answers an RPC.
 * Options: { port, readyTimeoutMs=30000, extraFeatures=DEFAULT_EXTRA_FEATURES, verbose=false }
 * Returns { pid, port }.
 */
export async function startServer({
  port,
  readyTimeoutMs = 30000,
  extraFeatures = DEFAULT_EXTRA_FEATURES,
  verbose = false,
} = {}) {
  if (server) return { pid: server.pid, port: server.port };
  port ??= await freePort();
  // The binary takes "<host> <port>" and binds exactly that address (127.0.0.1 => loopback only).
  const proc = spawn(serverBinary(), ['127.0.0.1', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  const onData = (d) => {
    const s = d.toString();
    log.push(s);
    if (log.length > 50) log.shift();
    if (verbose) process.stderr.write(`[zetasql] ${s}`);
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  let exited = null;
  proc.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  proc.on('error', (e) => {
    exited = { error: e };
  });

  const client = new ServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 512 * 1024 * 1024,
    'grpc.max_receive_message_length': 512 * 1024 * 1024,
  });
  server = { proc, pid: proc.pid, port, client, log, languageOptions: null };
  process.on('exit', killOnExit); // never leave the child behind, even on crash
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // Readiness: poll a cheap RPC until it succeeds (UNAVAILABLE while the port isn't open yet).
  const deadline = Date.now() + readyTimeoutMs;
  let lastErr;
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const max = await rpc('GetLanguageOptions', { maximum_features: true }, { timeoutMs: 2000 });
      server.languageOptions = buildLanguageOptions(max, extraFeatures);
      return { pid: server.pid, port };
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const detail = exited
    ? `server exited ${JSON.stringify(exited)}`
    : `not ready after ${readyTimeoutMs}ms (${lastErr?.message})`;
  await stopServer();
  throw new Error(`ZetaSQL server failed to start: ${detail}\n${log.join('')}`);
}

/** Kill the child process by pid (SIGTERM, then SIGKILL after 3s) and close the gRPC channel. */
export async function stopServer() {
  if (!server) return;
  const { proc, pid, client } = server;
  server = null;
  process.off('exit', killOnExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  client.close();
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise((r) => proc.once('exit', r));
  try {
    process.kill(pid, 'SIGTERM');
  } catch {}
  const t = setTimeout(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }, 3000);
  await done;
  clearTimeout(t);
}

// ---------------------------------------------------------------------------
// Language / analyzer options
// ---------------------------------------------------------------------------
// GetLanguageOptions{maximum_features:true} returns every released ("ideally enabled",
// not in-development) feature (131 in this build) BUT with product_mode INTERNAL and
// supported_statement_kinds = [RESOLVED_QUERY_STMT] (=> MERGE/DDL would be rejected).
// We switch to PRODUCT_EXTERNAL (BigQuery's mode: no INT32/UINT/FLOAT/PROTO types) and
// send an *empty* supported_statement_kinds list, which means "all statement kinds".
// A few BigQuery features are not in the maximum set; they are added explicitly:
export const DEFAULT_EXTRA_FEATURES = [
  'FEATURE_INTERVAL_TYPE', // INTERVAL type / date arithmetic returning INTERVAL
  'FEATURE_V_1_4_GROUPING_SETS', // GROUP BY ROLLUP/CUBE/GROUPING SETS
  'FEATURE_V_1_4_GROUPING_BUILTIN', // GROUPING()
  'FEATURE_INVERSE_TRIG_FUNCTIONS', // ACOS/ASIN/...
];

function buildLanguageOptions(max, extra) {
  const features = new Set(max.enabled_language_features ?? []);
  for (const f of extra) features.add(f);
  return {
    name_resolution_mode: 'NAME_RESOLUTION_DEFAULT',
    product_mode: 'PRODUCT_EXTERNAL',
    enabled_language_features: [...features],
    supported_statement_kinds: [], // empty = every statement kind allowed
    // reserved_keywords from the server response is ['QUALIFY']; keep it so QUALIFY works as a keyword.
    reserved_keywords: max.reserved_keywords ?? ['QUALIFY'],
  };
}

export function languageOptions() {
  if (!server) throw new Error('ZetaSQL server not started');
  return server.languageOptions;
}

function analyzerOptions(params) {
  return {
    language_options: languageOptions(),
    // " [at line:col]" suffix in error messages (default mode would put it in a payload only).
    error_message_mode: 'ERROR_MESSAGE_ONE_LINE',
    // The server's default is America/Los_Angeles; BigQuery uses UTC.
    default_timezone: 'UTC',
    parameter_mode: 'PARAMETER_NAMED',
    // Named query parameters: [{ name, type: TypeProto }]; referenced as @name.
    query_parameters: Object.entries(params ?? {}).map(([name, p]) => ({
      name,
      type: toTypeProto(paramType(p)),
    })),
    preserve_column_aliases: true,
  };
}

const paramType = (p) => (typeof p === 'string' || p?.type_kind ? p : p.type);

// ---------------------------------------------------------------------------
// Types: BigQuery-style type strings -> zetasql.TypeProto, and back
// ---------------------------------------------------------------------------
const SCALAR = {
  INT64: 'TYPE_INT64',
  INT: 'TYPE_INT64',
  INTEGER: 'TYPE_INT64',
  BIGINT: 'TYPE_INT64',
  SMALLINT: 'TYPE_INT64',
  TINYINT: 'TYPE_INT64',
  BYTEINT: 'TYPE_INT64',
  FLOAT64: 'TYPE_DOUBLE',
  FLOAT: 'TYPE_DOUBLE',
  DOUBLE: 'TYPE_DOUBLE',
  STRING: 'TYPE_STRING',
  BYTES: 'TYPE_BYTES',
  BOOL: 'TYPE_BOOL',
  BOOLEAN: 'TYPE_BOOL',
  DATE: 'TYPE_DATE',
  DATETIME: 'TYPE_DATETIME',
  TIME: 'TYPE_TIME',
  TIMESTAMP: 'TYPE_TIMESTAMP',
  NUMERIC: 'TYPE_NUMERIC',
  DECIMAL: 'TYPE_NUMERIC',
  BIGNUMERIC: 'TYPE_BIGNUMERIC',
  BIGDECIMAL: 'TYPE_BIGNUMERIC',
  JSON: 'TYPE_JSON',
  GEOGRAPHY: 'TYPE_GEOGRAPHY',
  INTERVAL: 'TYPE_INTERVAL',
};

/** 'ARRAY<STRUCT<a STRING, b INT64>>' -> TypeProto. TypeProto objects pass through. */
export function toTypeProto(t) {
  if (t && typeof t === 'object') return t;
  const toks = String(t).match(/`[^`]+`|[A-Za-z_][A-Za-z0-9_]*|\d+|[<>(),]/g) ?? [];
  let i = 0;
  const peek = () => toks[i];
  const next = () => toks[i++];
  const expect = (s) => {
    if (next() !== s) throw new Error(`Bad type "${t}": expected ${s}`);
  };
  function type() {
    const kw = next()?.toUpperCase();
    if (kw === 'ARRAY') {
      expect('<');
      const el = type();
      expect('>');
      return { type_kind: 'TYPE_ARRAY', array_type: { element_type: el } };
    }
    if (kw === 'STRUCT') {
      expect('<');
      const field = [];
      while (peek() !== '>') {
        // "name TYPE" or just "TYPE" (anonymous field)
        let name = '';
        const a = toks[i],
          b = toks[i + 1];
        if (b && b !== ',' && b !== '>' && b !== '<' && b !== '(') {
          name = a.replace(/`/g, '');
          i++;
        }
        field.push({ field_name: name, field_type: type() });
        if (peek() === ',') next();
      }
      expect('>');
      return { type_kind: 'TYPE_STRUCT', struct_type: { field } };
    }
    const kind = SCALAR[kw];
    if (!kind) throw new Error(`Unknown type "${kw}" in "${t}"`);
    if (peek() === '(') {
      while (next() !== ')');
    } // ignore parameters: NUMERIC(10,2), STRING(20)
    return { type_kind: kind };
  }
  const r = type();
  if (i !== toks.length) throw new Error(`Trailing tokens in type "${t}"`);
  return r;
}

/** TypeProto -> 'ARRAY<STRUCT<a STRING, b INT64>>' */
export function typeToString(tp) {
  switch (tp.type_kind) {
    case 'TYPE_ARRAY':
      return `ARRAY<${typeToString(tp.array_type.element_type)}>`;
    case 'TYPE_STRUCT':
      return `STRUCT<${(tp.struct_type.field ?? [])
        .map((f) => (f.field_name ? `${f.field_name} ` : '') + typeToString(f.field_type))
        .join(', ')}>`;
    case 'TYPE_DOUBLE':
      return 'FLOAT64';
    default:
      return tp.type_kind.replace(/^TYPE_/, '');
  }
}

// ---------------------------------------------------------------------------
// Catalog
// ---------------------------------------------------------------------------
/**
 * Build a SimpleCatalogProto. Each table 'a.b.c' is registered as a top-level table named
 * 'a.b.c' (matches `a.b.c`; the only place table_content is honoured) and as nested catalogs
 * a -> b -> table c (matches a.b.c / `a`.`b`.c). Builtin functions must be requested
 * explicitly via builtin_function_options, otherwise even UPPER() is "Function not found".
 */
export function buildCatalog(tables) {
  const root = { name: 'root', table: [], catalog: [] };
  for (const [name, def] of Object.entries(tables ?? {})) {
    const column = Object.entries(def.columns).map(([cname, t]) => ({ name: cname, type: toTypeProto(t) }));
    root.table.push({ name, full_name: name, column });
    const parts = name.split('.');
    if (parts.length > 1) {
      let cat = root;
      for (const p of parts.slice(0, -1)) {
        let sub = cat.catalog.find((c) => c.name === p);
        if (!sub) {
          sub = { name: p, table: [], catalog: [] };
          cat.catalog.push(sub);
        }
        cat = sub;
      }
      cat.table.push({ name: parts.at(-1), full_name: name, column });
    }
  }
  root.builtin_function_options = { language_options: languageOptions() };
  return root;
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------
/** gRPC error -> { message, line, column, code } (ERROR_MESSAGE_ONE_LINE adds " [at L:C]"). */
export function toZetaError(e) {
  const message = e.details ?? e.message;
  // UNIMPLEMENTED errors from the reference evaluator append a resolved-AST dump: keep it
  // separately and report only the first line as the message.
  const [first, ...rest] = String(message).split('\n');
  const m = /\[at (\d+):(\d+)\]/.exec(first);
  const out = { message: first, line: m ? +m[1] : undefined, column: m ? +m[2] : undefined, code: e.code };
  if (rest.length) out.detail = rest.join('\n');
  return out;
}

const isTransportError = (e) =>
  [
    grpc.status.UNAVAILABLE,
    grpc.status.DEADLINE_EXCEEDED,
    grpc.status.CANCELLED,
    grpc.status.RESOURCE_EXHAUSTED,
  ].includes(e.code) || e.details === undefined;

// ---------------------------------------------------------------------------
// analyze
// ---------------------------------------------------------------------------
/**
 * Analyze one statement. Returns
 *   { statementKind, columns: [{ name, type, typeProto }] }   (columns only for queries)
 *   or { error: { message, line, column } }.
 */
export async function analyze(sql, catalogTables = {}, params = {}) {
  let res;
  try {
    res = await rpc('Analyze', {
      options: analyzerOptions(params),
      simple_catalog: buildCatalog(catalogTables),
      sql_statement: sql,
    });
  } catch (e) {
    if (isTransportError(e)) throw e;
    return { error: toZetaError(e) }; // INVALID_ARGUMENT (analysis), UNIMPLEMENTED, ...
  }
  // AnyResolvedStatementProto is a tree of oneofs: follow `.node` to the concrete statement.
  let node = res.resolved_statement,
    kind = 'unknown';
  while (node?.node) {
    kind = node.node;
    node = node[node.node];
  }
  const statementKind = kind
    .replace(/^resolved_/, '')
    .replace(/_node$/, '')
    .toUpperCase();
  const out = { statementKind, resolvedStatement: res.resolved_statement };
  const cols = node?.output_column_list; // ResolvedQueryStmtProto.output_column_list
  if (cols)
    out.columns = cols.map((c) => ({
      name: c.name,
      type: typeToString(c.column.type),
      typeProto: c.column.type,
    }));
  return out;
}

// ---------------------------------------------------------------------------
// evaluate
// ---------------------------------------------------------------------------
/**
 * Run a query with the reference evaluator (EvaluateQuery). Returns an array of row objects
 * (keyed by output column name; anonymous columns become $col1, $col2, ...). The array also
 * carries a non-enumerable `columns` property [{ name, type }]. Throws an Error with
 * `.zeta = { message, line, column }` on analysis/evaluation errors.
 */
export async function evaluate(sql, tables = {}, params = {}) {
  const rewritten = await quoteDottedTablePaths(sql, Object.keys(tables));
  const table_content = {};
  for (const [name, def] of Object.entries(tables)) {
    const colNames = Object.keys(def.columns);
    const colTypes = colNames.map((c) => toTypeProto(def.columns[c]));
    table_content[name] = {
      table_data: {
        row: (def.rows ?? []).map((r) => ({
          cell: colNames.map((c, i) => encodeValue(Array.isArray(r) ? r[i] : r[c], colTypes[i])),
        })),
      },
    };
  }
  const paramList = Object.entries(params ?? {}).map(([name, p]) => ({
    name,
    value: encodeValue(p.value, toTypeProto(p.type)),
  }));
  let res;
  try {
    res = await rpc('EvaluateQuery', {
      sql: rewritten,
      options: analyzerOptions(params), // parameter *types* are declared here...
      simple_catalog: buildCatalog(tables),
      table_content, // keyed by top-level table name
      params: paramList, // ...and the values here (matched by name)
    });
  } catch (e) {
    if (!isTransportError(e)) {
      // INVALID_ARGUMENT (analysis), OUT_OF_RANGE (runtime), UNIMPLEMENTED (evaluator)
      const z = toZetaError(e);
      const err = new Error(z.message);
      err.zeta = z;
      err.sql = rewritten;
      throw err;
    }
    throw e;
  }
  const columns = (res.prepared?.columns ?? []).map((c, i) => ({
    name: c.name || `$col${i + 1}`,
    type: typeToString(c.type),
    typeProto: c.type,
  }));
  const rows = (res.content?.table_data?.row ?? []).map((r) => {
    const o = {};
    (r.cell ?? []).forEach((v, i) => {
      o[columns[i].name] = decodeValue(v, columns[i].typeProto);
    });
    return o;
  });
  Object.defineProperty(rows, 'columns', {
    value: columns.map(({ name, type }) => ({ name, type })),
    enumerable: false,
  });
  return rows;
}

/**
 * Replace multi-part table paths (ods.sales, `ods`.sales) that name one of `dottedNames` by the
 * single backticked identifier `ods.sales`, using the server's parser to find exact byte ranges.
 */
export async function quoteDottedTablePaths(sql, dottedNames) {
  const wanted = new Set(dottedNames.filter((n) => n.includes('.')).map((n) => n.toLowerCase()));
  if (!wanted.size) return sql;
  let parsed;
  try {
    parsed = await rpc('Parse', { sql_statement: sql, options: languageOptions() });
  } catch {
    return sql;
  } // let the evaluator report the syntax error
  const edits = [];
  (function walk(o) {
    if (!o || typeof o !== 'object') return;
    if (Array.isArray(o)) {
      o.forEach(walk);
      return;
    }
    const tpe = o.ast_table_path_expression_node;
    const names = tpe?.path_expr?.names?.map((n) => n.id_string);
    if (names && names.length > 1 && wanted.has(names.join('.').toLowerCase())) {
      let p = tpe.path_expr;
      while (p && !p.parse_location_range) p = p.parent;
      // BigQuery's implicit alias of ods.sales is "sales"; for the single identifier
      // `ods.sales` ZetaSQL would use "ods.sales", so add "AS sales" when no alias is given.
      const alias = tpe.alias ? '' : ` AS \`${names.at(-1)}\``;
      if (p) edits.push({ ...p.parse_location_range, text: `\`${names.join('.')}\`${alias}` });
    }
    for (const v of Object.values(o)) walk(v);
  })(parsed);
  // Locations are byte offsets into the UTF-8 SQL.
  let buf = Buffer.from(sql, 'utf8');
  for (const e of edits.sort((a, b) => b.start - a.start)) {
    buf = Buffer.concat([buf.subarray(0, e.start), Buffer.from(e.text), buf.subarray(e.end)]);
  }
  return buf.toString('utf8');
}

// ---------------------------------------------------------------------------
// Value encoding: JS -> zetasql.ValueProto
// ---------------------------------------------------------------------------
export class RawJson {
  constructor(text) {
    this.text = text;
  }
}
export const rawJson = (text) => new RawJson(text);

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Decimal string/number -> scaled BigInt (value * 10^scale), rounding half away from zero. */
function decimalToScaled(v, scale) {
  const s = typeof v === 'number' ? String(v) : String(v).trim();
  const m = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m || (!m[2] && !m[3])) throw new Error(`Invalid decimal "${s}"`);
  const digits = (m[2] || '') + (m[3] || '');
  const exp = (m[4] ? +m[4] : 0) - (m[3] || '').length + scale;
  let n = BigInt(digits || '0');
  if (exp >= 0) n *= 10n ** BigInt(exp);
  else {
    const d = 10n ** BigInt(-exp);
    const q = n / d,
      r = n % d;
    n = r * 2n >= d ? q + 1n : q;
  }
  return m[1] === '-' ? -n : n;
}

/** BigInt -> minimal little-endian two's-complement bytes (NumericValue::SerializeAsProtoBytes). */
function bigIntToLeBytes(n, maxBytes) {
  const out = [];
  for (;;) {
    out.push(Number(n & 0xffn));
    n >>= 8n; // arithmetic shift (BigInt is sign-extended)
    const signBit = out[out.length - 1] & 0x80;
    if ((n === 0n && !signBit) || (n === -1n && signBit)) break;
  }
  if (out.length > maxBytes) throw new Error('Decimal value out of range');
  return Buffer.from(out);
}

function leBytesToBigInt(buf) {
  let n = 0n;
  for (let i = buf.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(buf[i]);
  if (buf.length && buf[buf.length - 1] & 0x80) n -= 1n << BigInt(8 * buf.length);
  return n;
}

function scaledToDecimal(n, scale) {
  const neg = n < 0n;
  if (neg) n = -n;
  const d = 10n ** BigInt(scale);
  const frac = (n % d).toString().padStart(scale, '0').replace(/0+$/, '');
  return (neg ? '-' : '') + (n / d).toString() + (frac ? `.${frac}` : '');
}

const NUMERIC_MAX = 10n ** 38n - 1n; // 29 integer digits + 9 fractional digits

function fracToNanos(f) {
  return f ? +`${f}000000000`.slice(0, 9) : 0;
}
function nanosToFrac(n) {
  return n ? `.${pad(n, 9).replace(/0+$/, '')}` : '';
}

function civilToDate(y, mo, d, h = 0, mi = 0, s = 0) {
  // Avoid Date.UTC's 0..99 => 1900+ year mapping.
  const dt = new Date(0);
  dt.setUTCFullYear(y, mo - 1, d);
  dt.setUTCHours(h, mi, s, 0);
  return dt;
}

const DT_RE = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?$/;
const TS_RE =
  /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|UTC|[+-]\d{1,2}(?::?\d{2})?)?$/i;

export function encodeValue(v, type) {
  const tp = toTypeProto(type);
  if (v === null || v === undefined) return {}; // NULL: no oneof member set
  switch (tp.type_kind) {
    case 'TYPE_INT64': {
      if (typeof v === 'number' && !Number.isInteger(v))
        throw new Error(`INT64 expects an integer, got ${v}`);
      return { int64_value: BigInt(v).toString() };
    }
    case 'TYPE_DOUBLE':
      return { double_value: Number(v) };
    case 'TYPE_BOOL':
      return { bool_value: Boolean(v) };
    case 'TYPE_STRING':
      return { string_value: String(v) };
    case 'TYPE_BYTES':
      return { bytes_value: Buffer.isBuffer(v) ? v : Buffer.from(String(v)) };
    case 'TYPE_NUMERIC': {
      const n = decimalToScaled(v, 9);
      if (n > NUMERIC_MAX || n < -NUMERIC_MAX) throw new Error(`NUMERIC out of range: ${v}`);
      return { numeric_value: bigIntToLeBytes(n, 16) };
    }
    case 'TYPE_BIGNUMERIC':
      return { bignumeric_value: bigIntToLeBytes(decimalToScaled(v, 38), 32) };
    case 'TYPE_DATE': {
      const m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(String(v));
      if (!m) throw new Error(`Invalid DATE "${v}"`);
      return { date_value: Math.round(civilToDate(+m[1], +m[2], +m[3]).getTime() / 86400000) };
    }
    case 'TYPE_DATETIME': {
      const m = DT_RE.exec(String(v));
      if (!m) throw new Error(`Invalid DATETIME "${v}"`);
      const [, y, mo, d, h = 0, mi = 0, s = 0, f] = m;
      const bits =
        (BigInt(y) << 26n) |
        (BigInt(mo) << 22n) |
        (BigInt(d) << 17n) |
        (BigInt(h) << 12n) |
        (BigInt(mi) << 6n) |
        BigInt(s);
      return { datetime_value: { bit_field_datetime_seconds: bits.toString(), nanos: fracToNanos(f) } };
    }
    case 'TYPE_TIME': {
      const m = /^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/.exec(String(v));
      if (!m) throw new Error(`Invalid TIME "${v}"`);
      const bits =
        (BigInt(m[1]) << 42n) |
        (BigInt(m[2]) << 36n) |
        (BigInt(m[3] ?? 0) << 30n) |
        BigInt(fracToNanos(m[4]));
      return { time_value: bits.toString() };
    }
    case 'TYPE_TIMESTAMP': {
      if (v instanceof Date) {
        const ms = v.getTime();
        return {
          timestamp_value: {
            seconds: String(Math.floor(ms / 1000)),
            nanos: (((ms % 1000) + 1000) % 1000) * 1e6,
          },
        };
      }
      const m = TS_RE.exec(String(v).trim());
      if (!m) throw new Error(`Invalid TIMESTAMP "${v}"`);
      const [, y, mo, d, h = 0, mi = 0, s = 0, f, z] = m;
      let offset = 0; // seconds east of UTC; no zone => UTC (BigQuery default)
      if (z && !/^(Z|UTC)$/i.test(z)) {
        const zm = /^([+-])(\d{1,2}):?(\d{2})?$/.exec(z);
        offset = (zm[1] === '-' ? -1 : 1) * (+zm[2] * 3600 + +(zm[3] ?? 0) * 60);
      }
      const secs = civilToDate(+y, +mo, +d, +h, +mi, +s).getTime() / 1000 - offset;
      return { timestamp_value: { seconds: String(secs), nanos: fracToNanos(f) } };
    }
    case 'TYPE_JSON':
      return { json_value: v instanceof RawJson ? v.text : JSON.stringify(v) };
    case 'TYPE_ARRAY': {
      if (!Array.isArray(v)) throw new Error('ARRAY value must be a JS array');
      return { array_value: { element: v.map((e) => encodeValue(e, tp.array_type.element_type)) } };
    }
    case 'TYPE_STRUCT': {
      const fields = tp.struct_type.field ?? [];
      return {
        struct_value: {
          field: fields.map((f, i) => encodeValue(Array.isArray(v) ? v[i] : v[f.field_name], f.field_type)),
        },
      };
    }
    default:
      throw new Error(`encodeValue: unsupported type ${tp.type_kind}`);
  }
}

// ---------------------------------------------------------------------------
// Value decoding: zetasql.ValueProto -> JS (type taken from the result schema)
// ---------------------------------------------------------------------------
export function decodeValue(v, type) {
  const tp = toTypeProto(type);
  if (!v?.value) return null; // no oneof member => NULL
  const x = v[v.value];
  switch (v.value) {
    case 'int64_value':
    case 'uint64_value': {
      const n = Number(x);
      return Number.isSafeInteger(n) ? n : String(x);
    }
    case 'int32_value':
    case 'uint32_value':
    case 'double_value':
    case 'float_value':
    case 'bool_value':
    case 'string_value':
    case 'bytes_value':
    case 'enum_value':
      return x;
    case 'numeric_value':
      return scaledToDecimal(leBytesToBigInt(x), 9);
    case 'bignumeric_value':
      return scaledToDecimal(leBytesToBigInt(x), 38);
    case 'date_value':
      return new Date(x * 86400000).toISOString().slice(0, 10);
    case 'datetime_value': {
      const b = BigInt(x.bit_field_datetime_seconds ?? 0);
      const f = (sh, mask) => Number((b >> sh) & mask);
      return (
        `${pad(f(26n, 0x3fffn), 4)}-${pad(f(22n, 0xfn))}-${pad(f(17n, 0x1fn))}T` +
        `${pad(f(12n, 0x1fn))}:${pad(f(6n, 0x3fn))}:${pad(f(0n, 0x3fn))}${nanosToFrac(x.nanos ?? 0)}`
      );
    }
    case 'time_value': {
      const b = BigInt(x);
      return (
        `${pad(Number((b >> 42n) & 0x1fn))}:${pad(Number((b >> 36n) & 0x3fn))}:${pad(Number((b >> 30n) & 0x3fn))}` +
        nanosToFrac(Number(b & 0x3fffffffn))
      );
    }
    case 'timestamp_value': {
      const secs = Number(x.seconds ?? 0);
      return `${new Date(secs * 1000).toISOString().slice(0, 19) + nanosToFrac(x.nanos ?? 0)}Z`;
    }
    case 'json_value':
      return JSON.parse(x);
    case 'array_value':
      return (x.element ?? []).map((e) => decodeValue(e, tp.array_type.element_type));
    case 'struct_value': {
      const fields = tp.struct_type.field ?? [];
      const o = {};
      (x.field ?? []).forEach((e, i) => {
        o[fields[i]?.field_name || `$field${i + 1}`] = decodeValue(e, fields[i]?.field_type);
      });
      return o;
    }
    default:
      return x; // geography/interval/range/proto: raw
  }
}
