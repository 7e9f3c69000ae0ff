import { type ParseArgsConfig, parseArgs } from 'node:util';
import { ENTITIES, type Entity, isEntity } from './entities.js';
import { ConfigError, UsageError } from './errors.js';
import { MAX_PAGE_SIZE } from './pagination.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
import { Secret } from './secret.js';

/**
 * The command line and environment, parsed in one place into frozen typed values. Nothing else
 * reads process.env. A missing or malformed value is a ConfigError or UsageError naming it.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export const COMMANDS = [
  'run',
  'extract',
  'process',
  'replay',
  'status',
  'rejects',
  'orphans',
  'sql',
  'reconcile',
  'sandbox',
  'demo',
  'help',
  'version',
] as const;
export type Command = (typeof COMMANDS)[number];

/** How long work in progress is shown: one updating line (tty), JSON lines (json), or not at all. */
export type ProgressMode = 'auto' | 'tty' | 'json' | 'off';

export interface ConnectorSettings {
  readonly concurrency: number;
  readonly pageSize: number;
  readonly targetFileBytes: number;
  readonly requestTimeoutMs: number;
  readonly retry: RetryPolicy;
  readonly leaseTtlMs: number;
}

export interface ApiSettings {
  readonly apiUrl: string;
  readonly apiKey: Secret;
}

export interface LoaderSettings {
  readonly maxFileBytes: number;
  /**
   * Folder bucket only: a file in `in/` that this process did not write is taken (by process, run
   * and the local reconciler) once it has not changed for this long, so that a copy still running
   * is not loaded in part. A copy that stalls for longer than this is not detected.
   */
  readonly quietMs: number;
}

interface Logged {
  readonly logFormat: 'json' | 'text' | undefined;
  readonly logLevel: 'INFO' | 'WARNING' | 'ERROR';
  readonly progress: ProgressMode;
}

export interface ExtractConfig extends Logged {
  readonly command: 'extract';
  readonly entity: Entity;
  readonly startSalesId: bigint | undefined;
  readonly home: string;
  readonly api: ApiSettings;
  readonly connector: ConnectorSettings;
}

export interface RunConfig extends Logged {
  readonly command: 'run';
  readonly entities: readonly Entity[];
  readonly home: string;
  readonly api: ApiSettings;
  readonly connector: ConnectorSettings;
  readonly loader: LoaderSettings;
}

export interface ProcessConfig extends Logged {
  readonly command: 'process';
  readonly home: string;
  readonly loader: LoaderSettings;
}

export interface ReplayConfig extends Logged {
  readonly command: 'replay';
  readonly object: string;
  /** Set for `gs://BUCKET/KEY`: the deployed pipeline's bucket. */
  readonly gcsBucket: string | undefined;
  readonly home: string;
  readonly loader: LoaderSettings;
}

export interface StatusConfig {
  readonly command: 'status';
  readonly home: string;
  readonly json: boolean;
  /** Read the deployed pipeline (GCS and BigQuery, settings from the environment). */
  readonly gcp: boolean;
}

/** `rejects` and `orphans`: rows of ods.rejects / dmt.sales_items_orphans, filtered. */
export interface ListConfig {
  readonly command: 'rejects' | 'orphans';
  readonly home: string;
  readonly json: boolean;
  readonly entity: Entity | undefined;
  readonly reason: string | undefined;
  readonly file: string | undefined;
  readonly limit: number;
}

export interface SqlConfig {
  readonly command: 'sql';
  readonly home: string;
  readonly json: boolean;
  readonly query: string;
}

export interface ReconcileConfig extends Logged {
  readonly command: 'reconcile';
  readonly home: string;
  /** Heal the deployed pipeline (GCS, BigQuery, Pub/Sub, Workflows; settings from the environment). */
  readonly gcp: boolean;
  readonly json: boolean;
  readonly loader: LoaderSettings;
}

export interface SandboxConfig {
  readonly command: 'sandbox';
  readonly port: number;
  readonly apiKey: Secret;
  readonly seed: number;
  readonly sales: number;
  readonly products: number;
  readonly customers: number;
  readonly faultRate: number;
}

export interface DemoConfig extends Logged {
  readonly command: 'demo';
  readonly home: string;
  readonly connector: ConnectorSettings;
  readonly loader: LoaderSettings;
}

export interface HelpConfig {
  readonly command: 'help';
  readonly topic: Command | undefined;
}

export interface VersionConfig {
  readonly command: 'version';
}

export type CliConfig =
  | RunConfig
  | ExtractConfig
  | ProcessConfig
  | ReplayConfig
  | StatusConfig
  | ListConfig
  | SqlConfig
  | ReconcileConfig
  | SandboxConfig
  | DemoConfig
  | HelpConfig
  | VersionConfig;

export const DEFAULT_HOME = './.pipeline';
export const DEFAULT_SANDBOX_KEY = 'sandbox-key';

/**
 * One option: its flag, the environment variable that sets it when the flag is absent, its
 * default, its validator and its help. Parsing, `help COMMAND` and the README's table of options
 * are all derived from these declarations (see renderOptionsMarkdown).
 */
interface OptionSpec<T> {
  /** Placeholder of the value in help (`N`, `DIR`); absent for a boolean flag. */
  readonly value?: string;
  readonly env?: string;
  /** Used when neither the flag nor the environment variable is given. */
  readonly fallback?: T;
  /** The default as help shows it, when `fallback` alone would not read well. */
  readonly shown?: string;
  readonly help: string;
  /** Validates a given value; `label` names where it came from (`--page-size` or `CONNECTOR_PAGE_SIZE`). */
  readonly parse: (raw: string, label: string) => T;
}

const text = (raw: string): string => raw;

function integerIn(min: number, max: number) {
  return (raw: string, label: string): number => {
    const value = Number(raw);
    if (!/^\s*-?\d+\s*$/.test(raw) || value < min || value > max) {
      throw new UsageError(`${label} must be an integer from ${min} to ${max}, not "${raw}"`);
    }
    return value;
  };
}

function option<T>(spec: OptionSpec<T>): OptionSpec<T> {
  return spec;
}

function flag(help: string): OptionSpec<boolean> {
  return { help, fallback: false, parse: () => true };
}

const oneOf =
  <T extends string>(values: readonly T[]) =>
  (raw: string, label: string): T => {
    if (!(values as readonly string[]).includes(raw))
      throw new UsageError(`${label} must be ${values.join(', ')}, not "${raw}"`);
    return raw as T;
  };

export const OPTIONS = {
  home: option({
    value: 'DIR',
    env: 'PIPELINE_HOME',
    fallback: DEFAULT_HOME,
    help: "the local pipeline's folder: its bucket, work area, warehouse and event log",
    parse: text,
  }),
  'api-url': option({
    value: 'URL',
    env: 'RETAIL_API_URL',
    help: 'base URL of the Retail API',
    parse: text,
  }),
  'api-key': option({
    value: 'KEY',
    env: 'RETAIL_API_KEY',
    help: 'the Retail API key (prefer the variable: other users can read a flag in ps)',
    parse: text,
  }),
  entities: option({
    value: 'LIST',
    fallback: [...ENTITIES] as readonly Entity[],
    shown: ENTITIES.join(','),
    help: 'comma-separated entities, run in the order products, customers, sales',
    parse: (raw, label) => {
      const listed = raw
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean);
      const unknown = listed.filter((e) => !isEntity(e));
      if (unknown.length || listed.length === 0) {
        throw new UsageError(
          `${label} takes a comma-separated list of ${ENTITIES.join(', ')}; not "${unknown.join(',')}"`,
        );
      }
      return ENTITIES.filter((e) => listed.includes(e));
    },
  }),
  entity: option({
    value: ENTITIES.join('|'),
    help: 'the entity',
    parse: (raw, label) => {
      if (!isEntity(raw))
        throw new UsageError(`${label} must be one of ${ENTITIES.join(', ')}, not "${raw}"`);
      return raw;
    },
  }),
  'start-sales-id': option({
    value: 'N',
    help: 'sales only: start at this sale id instead of after the largest one ingested',
    parse: (raw, label) => {
      if (!/^\d{1,30}$/.test(raw) || BigInt(raw) < 1n)
        throw new UsageError(`${label} must be a positive integer, not "${raw}"`);
      return BigInt(raw);
    },
  }),
  concurrency: option({
    value: 'N',
    env: 'CONNECTOR_CONCURRENCY',
    fallback: 4,
    help: 'pages in flight at once',
    parse: integerIn(1, 64),
  }),
  'page-size': option({
    value: 'N',
    env: 'CONNECTOR_PAGE_SIZE',
    fallback: MAX_PAGE_SIZE,
    help: 'records per page',
    parse: integerIn(1, MAX_PAGE_SIZE),
  }),
  'file-bytes': option({
    value: 'SIZE',
    env: 'CONNECTOR_FILE_BYTES',
    fallback: 128 * 2 ** 20,
    shown: '128MiB',
    help: 'pages are joined into files of about this size',
    parse: byteSize,
  }),
  'timeout-ms': option({
    value: 'N',
    env: 'RETAIL_API_TIMEOUT_MS',
    fallback: 30_000,
    help: 'timeout of one API request, in milliseconds',
    parse: integerIn(100, 600_000),
  }),
  'max-attempts': option({
    value: 'N',
    env: 'CONNECTOR_MAX_ATTEMPTS',
    fallback: DEFAULT_RETRY_POLICY.maxAttempts,
    help: 'tries of one request (429, 5xx, network errors) before the run fails',
    parse: integerIn(1, 100),
  }),
  'max-file-bytes': option({
    value: 'SIZE',
    env: 'LOADER_MAX_FILE_BYTES',
    fallback: 2 ** 30,
    shown: '1GiB',
    help: 'a larger file goes to failed/ unread',
    parse: byteSize,
  }),
  'quiet-ms': option({
    value: 'N',
    env: 'LOADER_QUIET_MS',
    fallback: 2000,
    help: 'a file copied into in/ by hand is loaded once unchanged for this long (milliseconds)',
    parse: integerIn(0, 600_000),
  }),
  'log-format': option({
    value: 'json|text',
    env: 'LOG_FORMAT',
    shown: 'text at a terminal, else json',
    help: 'format of the log lines on stderr',
    parse: oneOf(['json', 'text'] as const),
  }),
  'log-level': option({
    value: 'INFO|WARNING|ERROR',
    env: 'LOG_LEVEL',
    fallback: 'WARNING' as 'INFO' | 'WARNING' | 'ERROR',
    help: 'least severe log line shown; INFO adds a line per step, which progress and the summary already show',
    parse: oneOf(['INFO', 'WARNING', 'ERROR'] as const),
  }),
  progress: option({
    value: 'auto|tty|json|off',
    env: 'PROGRESS',
    fallback: 'auto' as ProgressMode,
    help: 'progress on stderr: one updating line at a terminal, JSON lines elsewhere (auto)',
    parse: oneOf(['auto', 'tty', 'json', 'off'] as const),
  }),
  json: flag('print JSON instead of a table'),
  gcp: flag('the deployed pipeline (settings from the environment, see below)'),
  reason: option({ value: 'TEXT', help: 'only rows whose reason contains TEXT', parse: text }),
  file: option({ value: 'TEXT', help: 'only rows whose file name contains TEXT', parse: text }),
  limit: option({
    value: 'N',
    fallback: 100,
    help: 'at most N rows (0: all)',
    parse: integerIn(0, 10_000_000),
  }),
  port: option({
    value: 'N',
    fallback: 8080,
    help: 'port to listen on (0: any)',
    parse: integerIn(0, 65535),
  }),
  seed: option({
    value: 'N',
    fallback: 1,
    help: 'seed of the generated data',
    parse: integerIn(0, 2 ** 32 - 1),
  }),
  sales: option({ value: 'N', fallback: 5000, help: 'sales served', parse: integerIn(0, 10_000_000) }),
  products: option({ value: 'N', fallback: 500, help: 'products served', parse: integerIn(0, 1_000_000) }),
  customers: option({ value: 'N', fallback: 1000, help: 'customers served', parse: integerIn(0, 1_000_000) }),
  'fault-rate': option({
    value: 'F',
    fallback: 0,
    help: 'share of requests that fail on purpose (429, 500, cut bodies)',
    parse: (raw, label) => {
      const value = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1)
        throw new UsageError(`${label} must be a number from 0 to 1, not "${raw}"`);
      return value;
    },
  }),
} as const;

export type OptionName = keyof typeof OPTIONS;
type ValueOf<N extends OptionName> = ReturnType<(typeof OPTIONS)[N]['parse']>;

const CONNECTOR = ['concurrency', 'page-size', 'file-bytes', 'timeout-ms', 'max-attempts'] as const;
const LOADER = ['max-file-bytes', 'quiet-ms'] as const;
const LOGGED = ['log-format', 'log-level', 'progress'] as const;

export interface CommandSpec {
  /** What follows the command name in its usage line. */
  readonly args: string;
  readonly summary: string;
  /** More, for `help COMMAND`. */
  readonly detail?: string;
  readonly options: readonly OptionName[];
  /** Positional arguments it takes (their names, for help). */
  readonly positionals?: readonly string[];
}

export const COMMAND_SPECS: Record<Command, CommandSpec> = {
  run: {
    args: '[--entities products,customers,sales] [options]',
    summary: 'extract the entities (in that order), load every file that lands, merge; ends when all settled',
    detail:
      'Progress goes to stderr; the summary per entity to stdout. Ctrl-C (or SIGTERM) stops at the next safe point: pages already written and files already loaded stay, and the next run resumes from there.',
    options: ['entities', 'api-url', 'api-key', 'home', ...CONNECTOR, ...LOADER, ...LOGGED],
  },
  extract: {
    args: '--entity sales|products|customers [--start-sales-id N] [options]',
    summary: 'the connector alone (what the Cloud Run Job runs): files into {entity}/in/',
    options: ['entity', 'start-sales-id', 'api-url', 'api-key', 'home', ...CONNECTOR, ...LOGGED],
  },
  process: {
    args: '[--home DIR]',
    summary: 'load every file waiting in {entity}/in/, then merge',
    detail:
      'Write a file elsewhere and move it into {entity}/in/ when complete; a file still changing is left for the next process.',
    options: ['home', ...LOADER, ...LOGGED],
  },
  replay: {
    args: 'OBJECT [--home DIR]',
    summary:
      'move a failed/ (or archive/) object, e.g. sales/failed/2025/07/19/10h/x.json, back to in/ and process it',
    detail:
      'With gs://BUCKET/OBJECT, moves it back to in/ of the deployed bucket; its arrival event loads it (watch file.loaded / file.failed). A file set aside under a shortened name (ending .name-too-long) is refused: rename it shorter and upload it to in/.',
    options: ['home', 'max-file-bytes', 'log-format', 'log-level'],
    positionals: ['OBJECT'],
  },
  status: {
    args: '[--home DIR] [--json] [--gcp]',
    summary: 'files per state, rows per table, orphans, rejects, last runs (works while a run is going)',
    detail:
      'Reads only: it never creates or changes anything. While a run holds the local warehouse, the figures are those the run last wrote, and the header (with --json, `live`) says when they were read and what the run is doing.',
    options: ['home', 'json', 'gcp'],
  },
  rejects: {
    args: '[--entity E] [--reason TEXT] [--file TEXT] [--limit N] [--json]',
    summary: 'list the records ods.rejects holds: what did not reach ods, and why',
    options: ['home', 'entity', 'reason', 'file', 'limit', 'json'],
  },
  orphans: {
    args: '[--reason TEXT] [--file TEXT] [--limit N] [--json]',
    summary: 'list the sale lines waiting for their product or customer (dmt.sales_items_orphans)',
    detail: '--file matches the file that brought the sale.',
    options: ['home', 'reason', 'file', 'limit', 'json'],
  },
  sql: {
    args: '"SELECT ..." [--home DIR] [--json]',
    summary: 'run one read-only query against the local warehouse',
    detail:
      'The warehouse is opened read-only, so the query cannot change it. Tables: raw.*, ods.*, dmt.*, ops.* (see the README).',
    options: ['home', 'json'],
    positionals: ['QUERY'],
  },
  reconcile: {
    args: '[--home DIR] [--json] [--gcp]',
    summary:
      'heal what events missed: finish stale claims, load files whose event was lost, merge unmerged loads and mart changes not carried yet',
    detail: '--gcp: the deployed pipeline (what its scheduled reconciler job runs).',
    options: ['home', 'gcp', 'json', ...LOADER, 'log-format', 'log-level'],
  },
  sandbox: {
    args: '[--port N] [--api-key KEY] [--seed N] [--sales N] [--products N] [--customers N] [--fault-rate F]',
    summary: 'serve the built-in Retail API simulator',
    detail: `It accepts the key --api-key (or RETAIL_API_KEY) gives, else "${DEFAULT_SANDBOX_KEY}". Ctrl-C stops it.`,
    options: ['port', 'api-key', 'seed', 'sales', 'products', 'customers', 'fault-rate'],
  },
  demo: {
    args: '[--home DIR]',
    summary:
      'start the sandbox in-process, run the whole pipeline against it, print the status (`npm start`)',
    options: ['home', ...CONNECTOR, ...LOADER, ...LOGGED],
  },
  help: {
    args: '[COMMAND]',
    summary: 'this help, or the options of one command',
    options: [],
    positionals: ['COMMAND'],
  },
  version: { args: '', summary: 'print the version', options: [] },
};

/** The connector job's own settings, from the environment (besides GCP_SETTINGS and the connector options' variables). */
export const CONNECTOR_JOB_SETTINGS = [
  ['RETAIL_API_KEY_SECRET', 'the Secret Manager secret holding the API key (else RETAIL_API_KEY)'],
  ['RETAIL_API_URL', 'base URL of the Retail API'],
] as const;

/** Settings of the deployed pipeline, read from the environment only (status --gcp, reconcile --gcp, the jobs). */
export const GCP_SETTINGS = [
  ['GOOGLE_CLOUD_PROJECT', 'the Google Cloud project id'],
  ['PIPELINE_BUCKET', 'the bucket name, without gs://'],
  [
    'PIPELINE_WORK_BUCKET',
    "the connector's work bucket (staged pages); the connector job needs it, status shows them",
  ],
  ['BIGQUERY_LOCATION', 'the location of the BigQuery datasets'],
  ['EVENTS_TOPIC', 'the Pub/Sub topic id of the pipeline events'],
  ['MERGE_WORKFLOW', 'the merge workflow, projects/P/locations/L/workflows/W'],
] as const;

export const EXIT_CODES = `Exit codes: 0 all done; 2 usage or configuration error (a wrong API key included); 3 finished, but this
  invocation sent at least one file to failed/; 130 stopped by Ctrl-C (SIGINT), 143 by SIGTERM (resumable;
  sandbox, which runs until stopped, exits 0); 1 any other failure.`;

export const USAGE = `Usage: retail-pipeline <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.padEnd(9)} ${COMMAND_SPECS[c].summary}`).join('\n')}

Run "retail-pipeline help COMMAND" (or COMMAND --help) for its options and environment variables.

${EXIT_CODES}`;

function optionLine(name: OptionName): [string, string] {
  const spec: OptionSpec<unknown> = OPTIONS[name];
  const flagText = `--${name}${spec.value ? ` ${spec.value}` : ''}`;
  const notes = [
    spec.env ? `env ${spec.env}` : '',
    spec.shown !== undefined
      ? `default ${spec.shown}`
      : spec.fallback !== undefined && spec.value
        ? `default ${String(spec.fallback)}`
        : '',
  ].filter(Boolean);
  return [flagText, `${spec.help}${notes.length ? ` (${notes.join('; ')})` : ''}`];
}

/** `help COMMAND`: its usage, what it does, every option with its variable and default. */
export function commandHelp(command: Command): string {
  const spec = COMMAND_SPECS[command];
  const lines = spec.options.map(optionLine);
  const width = Math.max(0, ...lines.map(([f]) => f.length));
  const options = lines.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`).join('\n');
  const gcp = spec.options.includes('gcp')
    ? `\n\nWith --gcp, from the environment:\n${GCP_SETTINGS.map(([n, h]) => `  ${n.padEnd(20)}  ${h}`).join('\n')}`
    : '';
  return `Usage: retail-pipeline ${command} ${spec.args}\n\n${spec.summary}.${spec.detail ? `\n${spec.detail}` : ''}${
    options ? `\n\nOptions:\n${options}` : ''
  }${gcp}\n`;
}

/** The README's table of options, generated from the same declarations (npm run docs:options). */
export function renderOptionsMarkdown(): string {
  const rows = (Object.keys(OPTIONS) as OptionName[]).map((name) => {
    const spec: OptionSpec<unknown> = OPTIONS[name];
    const commands = COMMANDS.filter((c) => COMMAND_SPECS[c].options.includes(name)).join(', ');
    const fallback =
      spec.shown ?? (spec.fallback !== undefined && spec.value ? `\`${String(spec.fallback)}\`` : '—');
    const flagText = `--${name}${spec.value ? ` ${spec.value}` : ''}`.replaceAll('|', '\\|');
    return `| \`${flagText}\` | ${spec.env ? `\`${spec.env}\`` : '—'} | ${fallback} | ${commands} | ${spec.help} |`;
  });
  const gcp = GCP_SETTINGS.map(
    ([n, h]) => `| — | \`${n}\` | — | status --gcp, reconcile --gcp, the jobs | ${h} |`,
  );
  const job = CONNECTOR_JOB_SETTINGS.map(([n, h]) => `| — | \`${n}\` | — | the connector job | ${h} |`);
  return [
    '| option | environment | default | commands | what it sets |',
    '|---|---|---|---|---|',
    ...rows,
    ...gcp,
    ...job,
  ].join('\n');
}

type Values = Record<string, string | boolean | undefined>;

/** The value of an option: the flag, else its environment variable, else its default. */
function get<N extends OptionName>(values: Values, env: Env, name: N): ValueOf<N> | undefined {
  const spec = OPTIONS[name] as OptionSpec<ValueOf<N>>;
  const given = values[name];
  if (typeof given === 'boolean') return given as ValueOf<N>;
  if (typeof given === 'string') return spec.parse(given, `--${name}`);
  const fromEnv = spec.env ? env[spec.env] : undefined;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return spec.parse(fromEnv.trim(), spec.env ?? name);
  return spec.fallback;
}

/** As get, for an option that has a default. */
function must<N extends OptionName>(values: Values, env: Env, name: N): ValueOf<N> {
  const value = get(values, env, name);
  if (value === undefined) throw new Error(`option --${name} has no default`);
  return value;
}

export function parseCli(argv: readonly string[], env: Env): CliConfig {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0];
    if (topic !== undefined && !(COMMANDS as readonly string[]).includes(topic)) {
      throw new UsageError(`no help on "${topic}"; commands: ${COMMANDS.join(', ')}`);
    }
    return Object.freeze({ command: 'help', topic: topic as Command | undefined });
  }
  if (command === '--version' || command === '-V' || command === 'version') return { command: 'version' };
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command "${command}"; expected one of ${COMMANDS.join(', ')}`);
  }
  const known = command as Exclude<Command, 'help' | 'version'>;
  const positionals: string[] = [];
  const values = parse(known, rest, positionals);
  if (!values) return Object.freeze({ command: 'help', topic: known });
  return PARSERS[known](values, env, positionals);
}

/**
 * Parses a command's arguments against its declared options. `--sales -5` is read as the value
 * -5 (and refused by the validator with a clear message), not as an unknown option.
 */
function parse(command: Command, args: readonly string[], positionals: string[]): Values | undefined {
  if (args.includes('--help') || args.includes('-h')) return undefined;
  const spec = COMMAND_SPECS[command];
  const options = Object.fromEntries(
    spec.options.map((name) => [name, { type: OPTIONS[name].value ? 'string' : 'boolean' }]),
  ) as NonNullable<ParseArgsConfig['options']>;
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const next = args[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : '';
    if (options[name]?.type === 'string' && next !== undefined && /^-[\d.]/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else joined.push(arg);
  }
  try {
    const parsed = parseArgs({ args: joined, options, strict: true, allowPositionals: true });
    const allowed = spec.positionals?.length ?? 0;
    if (parsed.positionals.length > allowed) {
      throw new Error(`Unexpected argument '${parsed.positionals[allowed]}'`);
    }
    positionals.push(...parsed.positionals);
    return parsed.values as Values;
  } catch (error) {
    const message =
      (error as Error).message.split('\n')[0]?.replace(/\. To specify.*$/, '') ?? 'invalid arguments';
    // Node's own text is reduced to its first sentence above; it is not repeated as a cause.
    throw new UsageError(`${command}: ${message}`);
  }
}

function logged(values: Values, env: Env): Logged {
  return {
    logFormat: get(values, env, 'log-format'),
    logLevel: must(values, env, 'log-level'),
    progress: must(values, env, 'progress'),
  };
}

function loaderSettings(values: Values, env: Env): LoaderSettings {
  return Object.freeze({
    maxFileBytes: must(values, env, 'max-file-bytes'),
    quietMs: must(values, env, 'quiet-ms'),
  });
}

const PARSERS: Record<
  Exclude<Command, 'help' | 'version'>,
  (values: Values, env: Env, positionals: readonly string[]) => CliConfig
> = {
  extract: (values, env) => {
    const entity = get(values, env, 'entity');
    if (entity === undefined) throw new UsageError(`extract: --entity is required (${ENTITIES.join(', ')})`);
    const startSalesId = get(values, env, 'start-sales-id');
    if (startSalesId !== undefined && entity !== 'sales')
      throw new UsageError('extract: --start-sales-id applies to --entity sales only');
    return Object.freeze({
      command: 'extract',
      entity,
      startSalesId,
      home: must(values, env, 'home'),
      api: apiSettings(values, env),
      connector: connectorSettings(values, env),
      ...logged(values, env),
    });
  },
  run: (values, env) =>
    Object.freeze({
      command: 'run',
      entities: must(values, env, 'entities'),
      home: must(values, env, 'home'),
      api: apiSettings(values, env),
      connector: connectorSettings(values, env),
      loader: loaderSettings(values, env),
      ...logged(values, env),
    }),
  process: (values, env) =>
    Object.freeze({
      command: 'process',
      home: must(values, env, 'home'),
      loader: loaderSettings(values, env),
      ...logged(values, env),
    }),
  replay: (values, env, positionals) => {
    const object = positionals[0];
    if (!object)
      throw new UsageError('replay: name the object to replay, e.g. sales/failed/2025/07/19/10h/x.json');
    const gcs = /^gs:\/\/([^/]+)\/(.+)$/.exec(object);
    if (object.startsWith('gs://') && !gcs)
      throw new UsageError(`replay: "${object}" is not gs://BUCKET/OBJECT`);
    return Object.freeze({
      command: 'replay',
      object: gcs?.[2] ?? object,
      gcsBucket: gcs?.[1],
      home: must(values, env, 'home'),
      loader: loaderSettings(values, env),
      ...logged(values, env),
    });
  },
  status: (values, env) =>
    Object.freeze({
      command: 'status',
      home: must(values, env, 'home'),
      json: must(values, env, 'json'),
      gcp: must(values, env, 'gcp'),
    }),
  rejects: (values, env) => list('rejects', values, env),
  orphans: (values, env) => list('orphans', values, env),
  sql: (values, env, positionals) => {
    const query = positionals[0]?.trim();
    if (!query)
      throw new UsageError('sql: give one query, e.g. retail-pipeline sql "SELECT count(*) FROM ods.sales"');
    return Object.freeze({
      command: 'sql',
      home: must(values, env, 'home'),
      json: must(values, env, 'json'),
      query,
    });
  },
  reconcile: (values, env) =>
    Object.freeze({
      command: 'reconcile',
      home: must(values, env, 'home'),
      gcp: must(values, env, 'gcp'),
      json: must(values, env, 'json'),
      loader: loaderSettings(values, env),
      ...logged(values, env),
    }),
  sandbox: (values, env) =>
    Object.freeze({
      command: 'sandbox',
      port: must(values, env, 'port'),
      apiKey: new Secret(get(values, env, 'api-key') ?? DEFAULT_SANDBOX_KEY),
      seed: must(values, env, 'seed'),
      sales: must(values, env, 'sales'),
      products: must(values, env, 'products'),
      customers: must(values, env, 'customers'),
      faultRate: must(values, env, 'fault-rate'),
    }),
  demo: (values, env) =>
    Object.freeze({
      command: 'demo',
      home: must(values, env, 'home'),
      connector: connectorSettings(values, env),
      loader: loaderSettings(values, env),
      ...logged(values, env),
    }),
};

function list(command: 'rejects' | 'orphans', values: Values, env: Env): ListConfig {
  return Object.freeze({
    command,
    home: must(values, env, 'home'),
    json: must(values, env, 'json'),
    entity: get(values, env, 'entity'),
    reason: get(values, env, 'reason'),
    file: get(values, env, 'file'),
    limit: must(values, env, 'limit'),
  });
}

function apiUrl(values: Values, env: Env): string {
  const url = get(values, env, 'api-url');
  if (!url) throw new ConfigError('missing Retail API URL: pass --api-url or set RETAIL_API_URL');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`the Retail API URL is not a URL: "${url}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`the Retail API URL must be http or https: "${url}"`);
  }
  if (parsed.username || parsed.password)
    throw new ConfigError('the Retail API URL must not carry credentials');
  return url;
}

function apiSettings(values: Values, env: Env): ApiSettings {
  const url = apiUrl(values, env);
  const apiKey = get(values, env, 'api-key');
  if (!apiKey) throw new ConfigError('missing Retail API key: pass --api-key or set RETAIL_API_KEY');
  return Object.freeze({ apiUrl: url, apiKey: new Secret(apiKey) });
}

export function connectorSettings(values: Values, env: Env): ConnectorSettings {
  return Object.freeze({
    concurrency: must(values, env, 'concurrency'),
    pageSize: must(values, env, 'page-size'),
    targetFileBytes: must(values, env, 'file-bytes'),
    requestTimeoutMs: must(values, env, 'timeout-ms'),
    retry: Object.freeze({ ...DEFAULT_RETRY_POLICY, maxAttempts: must(values, env, 'max-attempts') }),
    leaseTtlMs: 5 * 60_000,
  });
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
};

/** `1048576`, `512KiB`, `64MiB`, `1GB`. */
export function byteSize(raw: string, label: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(raw);
  const unit = UNITS[(m?.[2] ?? '').toLowerCase()];
  const value = m && unit ? Math.floor(Number(m[1]) * unit) : Number.NaN;
  if (!Number.isFinite(value) || value < 1) {
    throw new UsageError(`${label} must be a size such as 1048576, 512KiB or 64MiB, not "${raw}"`);
  }
  return value;
}

/** The deployed pipeline's settings, from the environment the infrastructure sets. */
export interface GcpConfig {
  readonly projectId: string;
  readonly bucket: string;
  /** The connector's work bucket (PIPELINE_WORK_BUCKET); required by the connector job only. */
  readonly workBucket: string | undefined;
  /** BigQuery location of the datasets (EU, US, europe-west1 ...). */
  readonly bigqueryLocation: string;
  /** Pub/Sub topic id of the pipeline events. */
  readonly eventsTopic: string;
  /** `projects/P/locations/L/workflows/W` of the merge workflow. */
  readonly mergeWorkflow: string;
  /** For local emulators and HTTP-level tests; absent in production. */
  readonly endpoints: {
    readonly storage: string | undefined;
    readonly bigquery: string | undefined;
    readonly pubsubEmulator: string | undefined;
  };
  readonly loader: LoaderSettings;
}

export interface ConnectorJobConfig {
  readonly gcp: GcpConfig;
  readonly apiUrl: string;
  /**
   * The Retail API key: from RETAIL_API_KEY (Cloud Run sets it from Secret Manager, the way the
   * infrastructure deploys the job) or read at start from the secret RETAIL_API_KEY_SECRET.
   */
  readonly apiKey: { readonly value: Secret } | { readonly secret: string };
  readonly connector: ConnectorSettings;
  readonly entity: Entity;
  readonly startSalesId: bigint | undefined;
}

function required(env: Env, name: string, what: string): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError(`missing ${name} (${what})`);
  return value;
}

export function parseGcpConfig(env: Env): GcpConfig {
  const projectId = required(env, 'GOOGLE_CLOUD_PROJECT', 'the Google Cloud project id');
  const workflow = required(env, 'MERGE_WORKFLOW', 'the merge workflow, projects/P/locations/L/workflows/W');
  if (!/^projects\/[^/]+\/locations\/[^/]+\/workflows\/[^/]+$/.test(workflow)) {
    throw new ConfigError(`MERGE_WORKFLOW must be projects/P/locations/L/workflows/W, not "${workflow}"`);
  }
  return Object.freeze({
    projectId,
    bucket: required(env, 'PIPELINE_BUCKET', 'the bucket name, without gs://').replace(/^gs:\/\//, ''),
    workBucket: env.PIPELINE_WORK_BUCKET?.trim().replace(/^gs:\/\//, '') || undefined,
    bigqueryLocation: required(env, 'BIGQUERY_LOCATION', 'the location of the BigQuery datasets'),
    eventsTopic: required(env, 'EVENTS_TOPIC', 'the Pub/Sub topic id of the pipeline events'),
    mergeWorkflow: workflow,
    endpoints: Object.freeze({
      storage: env.STORAGE_EMULATOR_HOST?.trim() || undefined,
      bigquery: env.BIGQUERY_API_ENDPOINT?.trim() || undefined,
      pubsubEmulator: env.PUBSUB_EMULATOR_HOST?.trim() || undefined,
    }),
    loader: loaderSettings({}, env),
  });
}

/** The Cloud Run Job's arguments (`--endpoint`, `--start_sales_id`, as the scheduler passes them) and environment. */
export function parseConnectorJob(argv: readonly string[], env: Env): ConnectorJobConfig {
  let values: Values;
  try {
    values = parseArgs({
      args: [...argv],
      options: { endpoint: { type: 'string' }, start_sales_id: { type: 'string' } },
      strict: true,
    }).values;
  } catch (error) {
    const message = (error as Error).message.split('\n')[0] ?? 'invalid arguments';
    throw new UsageError(
      `connector-job: ${message}; usage: --endpoint sales|products|customers [--start_sales_id N]`,
      {
        cause: error,
      },
    );
  }
  const entity = typeof values.endpoint === 'string' ? values.endpoint : undefined;
  if (!entity || !isEntity(entity)) {
    throw new UsageError(
      `--endpoint must be one of ${ENTITIES.join(', ')}${entity ? `, not "${entity}"` : ''}`,
    );
  }
  const start = typeof values.start_sales_id === 'string' ? values.start_sales_id : undefined;
  if (start !== undefined && (!/^\d{1,30}$/.test(start) || BigInt(start) < 1n || entity !== 'sales')) {
    throw new UsageError(
      `--start_sales_id takes a positive integer, with --endpoint sales only; not "${start}"`,
    );
  }
  const key = env.RETAIL_API_KEY?.trim();
  const secret = env.RETAIL_API_KEY_SECRET?.trim();
  if (!key && !secret) {
    throw new ConfigError(
      'missing RETAIL_API_KEY or RETAIL_API_KEY_SECRET (the Secret Manager secret holding the API key)',
    );
  }
  const gcp = parseGcpConfig(env);
  if (!gcp.workBucket) {
    throw new ConfigError(
      "missing PIPELINE_WORK_BUCKET (the connector's work bucket for staged pages, without gs://)",
    );
  }
  return Object.freeze({
    gcp,
    apiUrl: apiUrl({}, env),
    apiKey: key
      ? { value: new Secret(key) }
      : { secret: secret?.includes('/versions/') ? secret : `${secret}/versions/latest` },
    connector: connectorSettings({}, env),
    entity,
    startSalesId: start === undefined ? undefined : BigInt(start),
  });
}
