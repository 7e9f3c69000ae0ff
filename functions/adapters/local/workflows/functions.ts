import type { WorkflowFunction } from './expressions.js';

/**
 * The standard-library functions of Cloud Workflows that workflows/merge.yaml uses, with their
 * documented behaviour (json.encode gives bytes, base64.encode takes bytes, ...). `env` and `now`
 * are the runtime's.
 */
export const WORKFLOW_FUNCTION_NAMES = [
  'sys.get_env',
  'sys.now',
  'sys.log',
  'time.format',
  'json.encode',
  'json.encode_to_string',
  'json.decode',
  'base64.encode',
  'base64.decode',
  'text.match_regex',
  'text.replace_all',
  'map.get',
  'list.concat',
  'get_type',
  'default',
  'keys',
  'len',
  'int',
  'string',
] as const;

/** The type names of Workflows' get_type. */
function typeOf(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Buffer.isBuffer(v)) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'double';
  if (typeof v === 'string') return 'string';
  return 'map';
}

/** RE2's inline `(?i)` flag, as JavaScript's `i`. */
function re2(pattern: string): RegExp {
  return pattern.startsWith('(?i)') ? new RegExp(pattern.slice(4), 'i') : new RegExp(pattern);
}

export function workflowFunctions(runtime: {
  env: Readonly<Record<string, string>>;
  nowSeconds: () => number;
  log: (text: unknown) => void;
}): Record<(typeof WORKFLOW_FUNCTION_NAMES)[number], WorkflowFunction> {
  return {
    'sys.get_env': (name) => runtime.env[String(name)] ?? null,
    'sys.now': () => runtime.nowSeconds(),
    'sys.log': (text) => {
      runtime.log(text);
      return null;
    },
    'time.format': (seconds) => new Date(Number(seconds) * 1000).toISOString(),
    'json.encode': (v) => Buffer.from(JSON.stringify(v)),
    'json.encode_to_string': (v) => JSON.stringify(v),
    'json.decode': (v) => JSON.parse(Buffer.isBuffer(v) ? v.toString('utf8') : String(v)),
    'base64.encode': (v) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v))).toString('base64'),
    'base64.decode': (v) => Buffer.from(String(v), 'base64'),
    'text.match_regex': (s, p) => re2(String(p)).test(String(s)),
    'text.replace_all': (s, a, b) => String(s).split(String(a)).join(String(b)),
    // map.get(map, keys): a key, or a list of keys for nested maps; null where any is missing.
    // A first argument that is not a map is a TypeError, as in Workflows.
    'map.get': (m, k) => {
      if (m === null || typeof m !== 'object' || Array.isArray(m)) {
        throw new TypeError(`map.get: expected a map, got ${typeOf(m)}`);
      }
      let current: unknown = m;
      for (const key of Array.isArray(k) ? k : [k]) {
        if (current === null || typeof current !== 'object' || Array.isArray(current)) return null;
        if (!(String(key) in current)) return null;
        current = (current as Record<string, unknown>)[String(key)];
      }
      return current;
    },
    get_type: (v) => typeOf(v),
    'list.concat': (l, v) => [...(l as unknown[]), v],
    default: (v, d) => (v === null || v === undefined ? d : v),
    keys: (m) => Object.keys(m as object),
    len: (v) => (typeof v === 'string' || Array.isArray(v) ? v.length : Object.keys(v as object).length),
    int: (v) => {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new Error(`ValueError: int(${JSON.stringify(v)})`);
      return Math.trunc(n);
    },
    string: (v) => (typeof v === 'string' ? v : JSON.stringify(v)),
  };
}
