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
  'reconcile',
  'sandbox',
  'demo',
  'help',
] as const;
export type Command = (typeof COMMANDS)[number];

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

export interface ExtractConfig {
  readonly command: 'extract';
  readonly entity: Entity;
  readonly startSalesId: bigint | undefined;
  readonly home: string;
  readonly api: ApiSettings;
  readonly connector: ConnectorSettings;
  readonly logFormat: 'json' | 'text' | undefined;
}

export interface LoaderSettings {
  readonly maxFileBytes: number;
}

export interface RunConfig {
  readonly command: 'run';
  readonly entities: readonly Entity[];
  readonly home: string;
  readonly api: ApiSettings;
  readonly connector: ConnectorSettings;
  readonly loader: LoaderSettings;
  readonly logFormat: 'json' | 'text' | undefined;
}

export interface ProcessConfig {
  readonly command: 'process';
  readonly home: string;
  readonly loader: LoaderSettings;
  readonly logFormat: 'json' | 'text' | undefined;
}

export interface ReplayConfig {
  readonly command: 'replay';
  readonly object: string;
  /** Set for `gs://BUCKET/KEY`: the deployed pipeline's bucket. */
  readonly gcsBucket: string | undefined;
  readonly home: string;
  readonly loader: LoaderSettings;
  readonly logFormat: 'json' | 'text' | undefined;
}

export interface StatusConfig {
  readonly command: 'status';
  readonly home: string;
  readonly json: boolean;
  /** Read the deployed pipeline (GCS and BigQuery, settings from the environment). */
  readonly gcp: boolean;
}

export interface ReconcileConfig {
  readonly command: 'reconcile';
  readonly home: string;
  /** Heal the deployed pipeline (GCS, BigQuery, Pub/Sub, Workflows; settings from the environment). */
  readonly gcp: boolean;
  readonly json: boolean;
  readonly loader: LoaderSettings;
  readonly logFormat: 'json' | 'text' | undefined;
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

export interface DemoConfig {
  readonly command: 'demo';
  readonly home: string;
  readonly connector: ConnectorSettings;
  readonly loader: LoaderSettings;
  readonly logFormat: 'json' | 'text' | undefined;
}

export interface HelpConfig {
  readonly command: 'help';
  readonly topic: string | undefined;
}

export type CliConfig =
  | RunConfig
  | ExtractConfig
  | ProcessConfig
  | ReplayConfig
  | StatusConfig
  | ReconcileConfig
  | SandboxConfig
  | DemoConfig
  | HelpConfig;

export const DEFAULT_HOME = './.pipeline';
export const DEFAULT_SANDBOX_KEY = 'sandbox-key';

const CONNECTOR_OPTIONS = {
  concurrency: { type: 'string' },
  'page-size': { type: 'string' },
  'file-bytes': { type: 'string' },
  'timeout-ms': { type: 'string' },
  'max-attempts': { type: 'string' },
  home: { type: 'string' },
  'log-format': { type: 'string' },
} as const;

const API_OPTIONS = {
  'api-url': { type: 'string' },
  'api-key': { type: 'string' },
} as const;

export const USAGE = `Usage: retail-pipeline <command> [options]

Commands:
  run     [--entities products,customers,sales] [--api-url URL] [--api-key KEY] [--home DIR]
          extract the entities (in that order), load every file that lands, merge; ends when all settled
  extract --entity sales|products|customers [--start-sales-id N] [--api-url URL] [--api-key KEY] [--home DIR]
          the connector alone (what the Cloud Run Job runs): files into {entity}/in/
  process [--home DIR]
          load every file waiting in {entity}/in/, then merge
  replay  OBJECT [--home DIR]
          move a failed/ (or archive/) object, e.g. sales/failed/2025/07/19/10h/x.json, back to in/ and process it;
          with gs://BUCKET/OBJECT, move it back to in/ of the deployed bucket (its arrival event loads it)
  status  [--home DIR] [--json] [--gcp]
          files per state, rows per table, orphans, rejects, last runs; --gcp: of the deployed pipeline
  reconcile [--home DIR] [--json] [--gcp]
          heal what events missed: finish stale claims, load files whose event was lost, merge unmerged loads
          and mart changes not carried yet;
          --gcp: the deployed pipeline (what its scheduled reconciler job runs)
  sandbox [--port N] [--api-key KEY] [--seed N] [--sales N] [--products N] [--customers N] [--fault-rate F]
          serve the built-in Retail API simulator
  demo    [--home DIR]
          start the sandbox in-process, run the whole pipeline against it, print the status (\`npm start\`)
  help    [command]

Connector tuning (run, extract, demo): --concurrency N (4), --page-size N (250), --file-bytes SIZE (128MiB),
  --timeout-ms N (30000), --max-attempts N (8); loader: --max-file-bytes SIZE (1GiB); --log-format json|text

Deployed pipeline (status --gcp, reconcile --gcp): GOOGLE_CLOUD_PROJECT, PIPELINE_BUCKET, BIGQUERY_LOCATION, EVENTS_TOPIC, MERGE_WORKFLOW,
  PIPELINE_WORK_BUCKET (optional: staged pages in the status)

Environment: RETAIL_API_URL, RETAIL_API_KEY, PIPELINE_HOME (default ./.pipeline), LOG_FORMAT,
  CONNECTOR_CONCURRENCY, CONNECTOR_PAGE_SIZE, CONNECTOR_FILE_BYTES, RETAIL_API_TIMEOUT_MS, LOADER_MAX_FILE_BYTES

Exit codes: 0 all done; 2 usage or configuration error; 3 finished, but this invocation sent at least one
  file to failed/; 1 any other failure.`;

export function parseCli(argv: readonly string[], env: Env): CliConfig {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    return Object.freeze({ command: 'help', topic: rest[0] });
  }
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command "${command}"; expected one of ${COMMANDS.join(', ')}`);
  }
  switch (command as Command) {
    case 'run':
      return parseRun(rest, env);
    case 'process':
      return parseProcess(rest, env);
    case 'replay':
      return parseReplay(rest, env);
    case 'status':
      return parseStatus(rest, env);
    case 'reconcile':
      return parseReconcile(rest, env);
    case 'extract':
      return parseExtract(rest, env);
    case 'sandbox':
      return parseSandbox(rest, env);
    case 'demo':
      return parseDemo(rest, env);
    default:
      return Object.freeze({ command: 'help', topic: undefined });
  }
}

function parse(
  command: string,
  args: readonly string[],
  options: NonNullable<ParseArgsConfig['options']>,
  positionals: string[] = [],
) {
  if (args.includes('--help') || args.includes('-h')) return undefined;
  try {
    const parsed = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals: positionals !== undefined,
    });
    if (parsed.positionals.length > positionals.length) {
      throw new Error(`Unexpected argument '${parsed.positionals[positionals.length]}'`);
    }
    positionals.splice(0, positionals.length, ...parsed.positionals);
    return parsed.values as Record<string, string | boolean | undefined>;
  } catch (error) {
    const message =
      (error as Error).message.split('\n')[0]?.replace(/\. To specify.*$/, '') ?? 'invalid arguments';
    throw new UsageError(`${command}: ${message}`, { cause: error });
  }
}

function parseExtract(args: readonly string[], env: Env): CliConfig {
  const values = parse('extract', args, {
    entity: { type: 'string' },
    'start-sales-id': { type: 'string' },
    ...API_OPTIONS,
    ...CONNECTOR_OPTIONS,
  });
  if (!values) return { command: 'help', topic: 'extract' };
  const entity = str(values.entity);
  if (entity === undefined) throw new UsageError(`extract: --entity is required (${ENTITIES.join(', ')})`);
  if (!isEntity(entity))
    throw new UsageError(`extract: --entity must be one of ${ENTITIES.join(', ')}, not "${entity}"`);
  const start = str(values['start-sales-id']);
  let startSalesId: bigint | undefined;
  if (start !== undefined) {
    if (!/^\d{1,30}$/.test(start) || BigInt(start) < 1n) {
      throw new UsageError(`extract: --start-sales-id must be a positive integer, not "${start}"`);
    }
    if (entity !== 'sales') throw new UsageError('extract: --start-sales-id applies to --entity sales only');
    startSalesId = BigInt(start);
  }
  return Object.freeze({
    command: 'extract',
    entity,
    startSalesId,
    home: home(values, env),
    api: apiSettings(values, env),
    connector: connectorSettings(values, env),
    logFormat: logFormat(values, env),
  });
}

const LOADER_OPTIONS = { 'max-file-bytes': { type: 'string' } } as const;

function loaderSettings(values: Record<string, string | boolean | undefined>, env: Env): LoaderSettings {
  return Object.freeze({
    maxFileBytes: byteSize(
      '--max-file-bytes',
      str(values['max-file-bytes']) ?? env.LOADER_MAX_FILE_BYTES,
      2 ** 30,
    ),
  });
}

function parseRun(args: readonly string[], env: Env): CliConfig {
  const values = parse('run', args, {
    entities: { type: 'string' },
    ...API_OPTIONS,
    ...CONNECTOR_OPTIONS,
    ...LOADER_OPTIONS,
  });
  if (!values) return { command: 'help', topic: 'run' };
  const listed = (str(values.entities) ?? ENTITIES.join(','))
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const unknown = listed.filter((e) => !isEntity(e));
  if (unknown.length || listed.length === 0) {
    throw new UsageError(
      `run: --entities takes a comma-separated list of ${ENTITIES.join(', ')}; not "${unknown.join(',')}"`,
    );
  }
  return Object.freeze({
    command: 'run',
    entities: ENTITIES.filter((e) => listed.includes(e)),
    home: home(values, env),
    api: apiSettings(values, env),
    connector: connectorSettings(values, env),
    loader: loaderSettings(values, env),
    logFormat: logFormat(values, env),
  });
}

function parseProcess(args: readonly string[], env: Env): CliConfig {
  const values = parse('process', args, {
    home: { type: 'string' },
    'log-format': { type: 'string' },
    ...LOADER_OPTIONS,
  });
  if (!values) return { command: 'help', topic: 'process' };
  return Object.freeze({
    command: 'process',
    home: home(values, env),
    loader: loaderSettings(values, env),
    logFormat: logFormat(values, env),
  });
}

function parseReplay(args: readonly string[], env: Env): CliConfig {
  const positionals: string[] = [''];
  const values = parse(
    'replay',
    args,
    { home: { type: 'string' }, 'log-format': { type: 'string' }, ...LOADER_OPTIONS },
    positionals,
  );
  if (!values) return { command: 'help', topic: 'replay' };
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
    home: home(values, env),
    loader: loaderSettings(values, env),
    logFormat: logFormat(values, env),
  });
}

function parseStatus(args: readonly string[], env: Env): CliConfig {
  const values = parse('status', args, {
    home: { type: 'string' },
    json: { type: 'boolean' },
    gcp: { type: 'boolean' },
  });
  if (!values) return { command: 'help', topic: 'status' };
  return Object.freeze({
    command: 'status',
    home: home(values, env),
    json: values.json === true,
    gcp: values.gcp === true,
  });
}

function parseReconcile(args: readonly string[], env: Env): CliConfig {
  const values = parse('reconcile', args, {
    home: { type: 'string' },
    gcp: { type: 'boolean' },
    json: { type: 'boolean' },
    'log-format': { type: 'string' },
    ...LOADER_OPTIONS,
  });
  if (!values) return { command: 'help', topic: 'reconcile' };
  return Object.freeze({
    command: 'reconcile',
    home: home(values, env),
    gcp: values.gcp === true,
    json: values.json === true,
    loader: loaderSettings(values, env),
    logFormat: logFormat(values, env),
  });
}

function parseSandbox(args: readonly string[], env: Env): CliConfig {
  const values = parse('sandbox', args, {
    port: { type: 'string' },
    'api-key': { type: 'string' },
    seed: { type: 'string' },
    sales: { type: 'string' },
    products: { type: 'string' },
    customers: { type: 'string' },
    'fault-rate': { type: 'string' },
  });
  if (!values) return { command: 'help', topic: 'sandbox' };
  const faultRate = Number(str(values['fault-rate']) ?? '0');
  if (!Number.isFinite(faultRate) || faultRate < 0 || faultRate > 1) {
    throw new UsageError(
      `sandbox: --fault-rate must be a number from 0 to 1, not "${str(values['fault-rate'])}"`,
    );
  }
  return Object.freeze({
    command: 'sandbox',
    port: integer('--port', str(values.port), 8080, 0, 65535),
    apiKey: new Secret(str(values['api-key']) ?? env.RETAIL_API_KEY ?? DEFAULT_SANDBOX_KEY),
    seed: integer('--seed', str(values.seed), 1, 0, 2 ** 32 - 1),
    sales: integer('--sales', str(values.sales), 5000, 0, 10_000_000),
    products: integer('--products', str(values.products), 500, 0, 1_000_000),
    customers: integer('--customers', str(values.customers), 1000, 0, 1_000_000),
    faultRate,
  });
}

function parseDemo(args: readonly string[], env: Env): CliConfig {
  const values = parse('demo', args, { ...CONNECTOR_OPTIONS, ...LOADER_OPTIONS });
  if (!values) return { command: 'help', topic: 'demo' };
  return Object.freeze({
    command: 'demo',
    home: home(values, env),
    connector: connectorSettings(values, env),
    loader: loaderSettings(values, env),
    logFormat: logFormat(values, env),
  });
}

const str = (value: string | boolean | undefined): string | undefined =>
  typeof value === 'string' ? value : undefined;

function home(values: Record<string, string | boolean | undefined>, env: Env): string {
  return str(values.home) ?? env.PIPELINE_HOME ?? DEFAULT_HOME;
}

function logFormat(
  values: Record<string, string | boolean | undefined>,
  env: Env,
): 'json' | 'text' | undefined {
  const format = str(values['log-format']) ?? env.LOG_FORMAT;
  if (format === undefined) return undefined;
  if (format !== 'json' && format !== 'text')
    throw new UsageError(`--log-format must be json or text, not "${format}"`);
  return format;
}

function apiUrl(values: Record<string, string | boolean | undefined>, env: Env): string {
  const url = str(values['api-url']) ?? env.RETAIL_API_URL;
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

function apiSettings(values: Record<string, string | boolean | undefined>, env: Env): ApiSettings {
  const url = apiUrl(values, env);
  const apiKey = str(values['api-key']) ?? env.RETAIL_API_KEY;
  if (!apiKey) throw new ConfigError('missing Retail API key: pass --api-key or set RETAIL_API_KEY');
  return Object.freeze({ apiUrl: url, apiKey: new Secret(apiKey) });
}

export function connectorSettings(
  values: Record<string, string | boolean | undefined>,
  env: Env,
): ConnectorSettings {
  const maxAttempts = integer(
    '--max-attempts',
    str(values['max-attempts']) ?? env.CONNECTOR_MAX_ATTEMPTS,
    8,
    1,
    100,
  );
  return Object.freeze({
    concurrency: integer('--concurrency', str(values.concurrency) ?? env.CONNECTOR_CONCURRENCY, 4, 1, 64),
    pageSize: integer(
      '--page-size',
      str(values['page-size']) ?? env.CONNECTOR_PAGE_SIZE,
      MAX_PAGE_SIZE,
      1,
      MAX_PAGE_SIZE,
    ),
    targetFileBytes: byteSize(
      '--file-bytes',
      str(values['file-bytes']) ?? env.CONNECTOR_FILE_BYTES,
      128 * 2 ** 20,
    ),
    requestTimeoutMs: integer(
      '--timeout-ms',
      str(values['timeout-ms']) ?? env.RETAIL_API_TIMEOUT_MS,
      30_000,
      100,
      600_000,
    ),
    retry: Object.freeze({ ...DEFAULT_RETRY_POLICY, maxAttempts }),
    leaseTtlMs: 5 * 60_000,
  });
}

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || value < min || value > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, not "${raw}"`);
  }
  return value;
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
export function byteSize(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(raw);
  const unit = UNITS[(m?.[2] ?? '').toLowerCase()];
  const value = m && unit ? Math.floor(Number(m[1]) * unit) : Number.NaN;
  if (!Number.isFinite(value) || value < 1) {
    throw new UsageError(`${name} must be a size such as 1048576, 512KiB or 64MiB, not "${raw}"`);
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
  const projectId =
    env.PROJECT_ID?.trim() || required(env, 'GOOGLE_CLOUD_PROJECT', 'the Google Cloud project id');
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
  const values = parse('connector-job', argv, {
    endpoint: { type: 'string' },
    start_sales_id: { type: 'string' },
  });
  if (!values) throw new UsageError('connector-job --endpoint sales|products|customers [--start_sales_id N]');
  const entity = str(values.endpoint);
  if (!entity || !isEntity(entity)) {
    throw new UsageError(
      `--endpoint must be one of ${ENTITIES.join(', ')}${entity ? `, not "${entity}"` : ''}`,
    );
  }
  const start = str(values.start_sales_id);
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
