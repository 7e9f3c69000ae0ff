#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { SystemClock } from '../adapters/common/system-clock.js';
import { type DuckDbWarehouse, WarehouseBusyError } from '../adapters/local/duckdb-warehouse.js';
import { FsObjectStore } from '../adapters/local/fs-object-store.js';
import { type ExtractReport, extract } from '../app/extract.js';
import type { IngestOutcome } from '../app/ingest-object.js';
import { Lease } from '../app/lease.js';
import {
  FILE_STATES,
  type PipelineStatus,
  type ProcessReport,
  processWaiting,
  type RunStep,
  replay,
  requeue,
  runEntities,
  status,
} from '../app/pipeline.js';
import {
  DEFAULT_RECONCILE_SETTINGS,
  EXCLUSIVE_RECONCILE_SETTINGS,
  type ReconcileReport,
  reconcile,
} from '../app/reconcile.js';
import {
  buildLogger,
  extractSettings,
  gcpCore,
  gcpLoaderDependencies,
  gcsStore,
  type Output,
  repositoryPath,
} from '../compose.js';
import {
  type LocalRuntime,
  localExtractPorts,
  localPaths,
  openLocalReader,
  openLocalRuntime,
  readSnapshot,
} from '../compose-local.js';
import {
  type ApiSettings,
  type CliConfig,
  type ConnectorSettings,
  commandHelp,
  type Env,
  type LoaderSettings,
  type ProgressMode,
  parseCli,
  parseGcpConfig,
  USAGE,
} from '../core/config.js';
import { ENTITIES, type Entity } from '../core/entities.js';
import { ConfigError, describeError, StoppedError, UsageError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { splitStatements } from '../core/sql-script.js';
import type { Logger, Severity } from '../ports/logger.js';
import type { ProgressEvent } from '../ports/progress.js';
import type { WarehouseStatus } from '../ports/warehouse.js';
import { startSandbox } from '../sandbox/server.js';
import { isMainModule } from './main-module.js';
import { describeProgress, ProgressDisplay } from './progress-display.js';

export interface CliIo {
  readonly stdout: Output;
  readonly stderr: Output;
  /** Aborted when the user asks the command to stop (Ctrl-C, SIGTERM); the reason names the signal. */
  readonly signal: AbortSignal;
}

export const EXIT = { ok: 0, failure: 1, usage: 2, filesFailed: 3, sigint: 130, sigterm: 143 } as const;

/** The exit code of a command stopped by a signal: 128 + its number, as shells report it. */
export function stopExit(signalName: string): number {
  return signalName === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
}

/** Runs one command; returns the exit code. Errors become one line on stderr, never a stack. */
export async function main(argv: readonly string[], env: Env, io: CliIo): Promise<number> {
  let config: CliConfig;
  try {
    config = parseCli(argv, env);
  } catch (error) {
    io.stderr.write(`retail-pipeline: ${describeError(error)}\nRun "retail-pipeline help" for usage.\n`);
    return EXIT.usage;
  }
  try {
    return await execute(config, io, env);
  } catch (error) {
    if (error instanceof StoppedError) {
      io.stderr.write(
        `retail-pipeline: ${describeError(error)}; what was written is kept: run the same command again to resume.\n`,
      );
      return stopExit(error.signalName);
    }
    io.stderr.write(`retail-pipeline: ${describeError(error)}\n`);
    return error instanceof UsageError || error instanceof ConfigError ? EXIT.usage : EXIT.failure;
  }
}

async function withRuntime<T>(
  home: string,
  logger: Logger,
  work: (runtime: LocalRuntime) => Promise<T>,
): Promise<T> {
  const runtime = await openLocalRuntime(home, logger);
  try {
    return await work(runtime);
  } finally {
    runtime.close();
  }
}

/** Exit code of a command that loaded files: 3 if any went to failed/, 1 if a merge could not run. */
function exitFor(outcomes: readonly IngestOutcome[]): number {
  if (outcomes.some((o) => o.status === 'failed')) return EXIT.filesFailed;
  if (outcomes.some((o) => o.status === 'loaded' && o.mergeError)) return EXIT.failure;
  return EXIT.ok;
}

/** A logger and a progress display sharing stderr: log lines never tear the progress line. */
function presentation(
  config: { logFormat: 'json' | 'text' | undefined; logLevel: Severity; progress: ProgressMode },
  io: CliIo,
): { logger: Logger; display: ProgressDisplay } {
  const display = ProgressDisplay.for(io.stderr, config.progress);
  const logger = buildLogger(
    config.logFormat,
    { write: display.write, isTTY: io.stderr.isTTY },
    config.logLevel,
  );
  return { logger, display };
}

async function runPipeline(
  options: {
    entities: readonly Entity[];
    home: string;
    api: ApiSettings;
    connector: ConnectorSettings;
    loader: LoaderSettings;
  },
  runtime: LocalRuntime,
  io: CliIo,
  display: ProgressDisplay,
): Promise<IngestOutcome[]> {
  const before = await runtime.warehouse.status();
  runtime.onProgress = display.update;
  const steps = await runEntities(
    options.entities,
    {
      extract: {
        ...localExtractPorts({ ...options, logger: runtime.logger, runtime }),
        signal: io.signal,
        progress: runtime.progress,
      },
      ingest: runtime,
    },
    { extract: extractSettings(options.connector), ingest: options.loader },
    (step) => {
      display.clear();
      io.stdout.write(formatExtract(step.extract) + formatProcessed(step.processed));
      void runtime.snapshot();
    },
  );
  display.clear();
  io.stdout.write(formatSummary(steps, before, await runtime.warehouse.status()));
  return steps.flatMap((s) => s.processed.outcomes);
}

/** Reads the local warehouse without touching it; says so clearly when there is none or it is busy. */
async function withReader<T>(home: string, work: (warehouse: DuckDbWarehouse) => Promise<T>): Promise<T> {
  assertHome(home);
  const warehouse = await openLocalReader(home);
  if (!warehouse)
    throw new ConfigError(`no warehouse in ${localPaths(home).home} yet: nothing has been loaded there`);
  try {
    return await work(warehouse);
  } finally {
    warehouse.close();
  }
}

/** Commands that only read must not create a home: a missing one is a wrong --home. */
function assertHome(home: string): void {
  const path = localPaths(home).home;
  if (!existsSync(path))
    throw new ConfigError(
      `no pipeline home at ${path}: nothing has run there (pass --home DIR or set PIPELINE_HOME)`,
    );
}

/** `status --json` adds `live` while a run holds the warehouse: who, when its figures were read, what it does. */
type LocalStatus = PipelineStatus & {
  readonly live?: { pid: number; figuresAt: string; progress: ProgressEvent | undefined } | undefined;
};

async function localStatus(home: string): Promise<{ report: LocalStatus; note: string }> {
  assertHome(home);
  const paths = localPaths(home);
  const ports = { store: new FsObjectStore(paths.bucket), work: new FsObjectStore(paths.work) };
  let reader: DuckDbWarehouse | undefined;
  try {
    reader = await openLocalReader(home);
  } catch (error) {
    if (!(error instanceof WarehouseBusyError)) throw error;
    const snapshot = readSnapshot(home);
    const report = await status({ ...ports, warehouse: snapshot?.warehouse });
    const doing = snapshot?.progress ? `; now: ${describeProgress(snapshot.progress)}` : '';
    return {
      report: snapshot
        ? {
            ...report,
            live: { pid: snapshot.pid, figuresAt: snapshot.figuresAt, progress: snapshot.progress },
          }
        : report,
      note: snapshot
        ? `A run is in progress (pid ${snapshot.pid}): warehouse figures as of ${snapshot.figuresAt.slice(11, 19)} UTC${doing}.\n\n`
        : 'The warehouse is in use by another process that keeps no snapshot: warehouse figures unavailable.\n\n',
    };
  }
  try {
    const report = await status({ ...ports, warehouse: reader });
    return { report, note: reader ? '' : 'No warehouse yet: nothing has been loaded.\n\n' };
  } finally {
    reader?.close();
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(repositoryPath('package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

async function execute(config: CliConfig, io: CliIo, env: Env): Promise<number> {
  switch (config.command) {
    case 'help':
      io.stdout.write(config.topic ? commandHelp(config.topic) : `${USAGE}\n`);
      return EXIT.ok;
    case 'version':
      io.stdout.write(`retail-pipeline ${version()}\n`);
      return EXIT.ok;
    case 'extract': {
      const { logger, display } = presentation(config, io);
      return withRuntime(config.home, logger, async (runtime) => {
        runtime.onProgress = display.update;
        const ports = {
          ...localExtractPorts({ ...config, logger, runtime }),
          signal: io.signal,
          progress: runtime.progress,
        };
        const report = await extract(
          { entity: config.entity, startSalesId: config.startSalesId },
          ports,
          extractSettings(config.connector),
        ).finally(() => display.clear());
        io.stdout.write(formatExtract(report));
        return EXIT.ok;
      });
    }
    case 'run': {
      const { logger, display } = presentation(config, io);
      return withRuntime(config.home, logger, async (runtime) => {
        const outcomes = await runPipeline(config, runtime, io, display).finally(() => display.clear());
        return exitFor(outcomes);
      });
    }
    case 'process': {
      const { logger, display } = presentation(config, io);
      return withRuntime(config.home, logger, async (runtime) => {
        runtime.onProgress = display.update;
        const report = await processWaiting(runtime, config.loader, undefined, {
          signal: io.signal,
          progress: runtime.progress,
        }).finally(() => display.clear());
        const nothing = report.outcomes.length === 0 && report.growing.length === 0;
        io.stdout.write(nothing ? 'No file waiting in {entity}/in/.\n' : '');
        io.stdout.write(formatProcessed(report));
        return exitFor(report.outcomes);
      });
    }
    case 'replay': {
      const { logger } = presentation(config, io);
      if (config.gcsBucket) {
        const store = await gcsStore(config.gcsBucket, env);
        const requeued = await requeue(config.object, { store, logger });
        io.stdout.write(
          `moved to gs://${config.gcsBucket}/${requeued.key}; its arrival event loads it (watch file.loaded / file.failed)\n`,
        );
        return EXIT.ok;
      }
      const object = objectName(config.object, config.home);
      assertHome(config.home);
      return withRuntime(config.home, logger, async (runtime) => {
        const outcome = await replay(object, runtime, config.loader);
        io.stdout.write(formatOutcomes([outcome]));
        return exitFor([outcome]);
      });
    }
    case 'status': {
      if (config.gcp) {
        const gcp = parseGcpConfig(env);
        const report = await status(await gcpCore(gcp, new SystemClock()));
        io.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
        return EXIT.ok;
      }
      const { report, note } = await localStatus(config.home);
      io.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : note + formatStatus(report));
      return EXIT.ok;
    }
    case 'rejects':
    case 'orphans': {
      const rows = await withReader(config.home, (warehouse) =>
        config.command === 'rejects' ? warehouse.rejects(config) : warehouse.orphans(config),
      );
      io.stdout.write(
        formatRows(rows, config.json, config.command === 'rejects' ? 'No rejected record' : 'No orphan'),
      );
      return EXIT.ok;
    }
    case 'sql': {
      const statements = splitStatements(config.query);
      if (statements.length !== 1)
        throw new UsageError(`sql: give exactly one statement, not ${statements.length}`);
      const rows = await withReader(config.home, (warehouse) =>
        warehouse.query(statements[0] as string).catch((error: unknown) => {
          throw new UsageError(`sql: ${describeError(error).split('\n')[0]}`, { cause: error });
        }),
      );
      io.stdout.write(formatRows(rows, config.json, 'No rows'));
      return EXIT.ok;
    }
    case 'reconcile': {
      const { logger } = presentation(config, io);
      const report = config.gcp
        ? await (async () => {
            // The deployed pipeline: loaders may be running, so only what is older than any
            // delivery can be is healed.
            const { ports, settings } = await gcpLoaderDependencies(env, logger);
            return reconcile(ports, { ...settings, ...config.loader }, DEFAULT_RECONCILE_SETTINGS);
          })()
        : await withRuntime(config.home, logger, (runtime) =>
            // Locally this process holds the warehouse: no loader runs, nothing is too young.
            reconcile(runtime, config.loader, EXCLUSIVE_RECONCILE_SETTINGS),
          );
      io.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : formatReconcile(report));
      if (report.stuck.length) return EXIT.failure;
      return exitFor(report.outcomes);
    }
    case 'sandbox': {
      const sandbox = await startSandbox({
        apiKey: config.apiKey.reveal(),
        faultRate: config.faultRate,
        seed: config.seed,
        sales: config.sales,
        products: config.products,
        customers: config.customers,
        port: config.port,
      });
      io.stdout.write(
        `Retail API sandbox listening on ${sandbox.url} (${config.sales} sales, ${config.products} products, ${config.customers} customers, fault rate ${config.faultRate}). Ctrl-C stops it.\n`,
      );
      await new Promise<void>((resolve) => {
        if (io.signal.aborted) resolve();
        io.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await sandbox.close();
      return EXIT.ok;
    }
    case 'demo': {
      const apiKey = new Secret(randomUUID());
      const sandbox = await startSandbox({
        apiKey: apiKey.reveal(),
        faultRate: 0.05,
        retryAfterSeconds: 0,
        slowMs: 200,
        seed: 1,
        sales: 5000,
        products: 500,
        customers: 1000,
      });
      try {
        const { logger, display } = presentation(config, io);
        io.stdout.write(`Sandbox Retail API on ${sandbox.url} (5% of requests fail on purpose).\n`);
        return await withRuntime(config.home, logger, async (runtime) => {
          const outcomes = await runPipeline(
            {
              entities: ENTITIES,
              home: config.home,
              api: { apiUrl: sandbox.url, apiKey },
              connector: config.connector,
              loader: config.loader,
            },
            runtime,
            io,
            display,
          ).finally(() => display.clear());
          io.stdout.write(`\n${formatStatus(await status(runtime))}`);
          io.stdout.write(
            `\nEverything lives in ${localPaths(config.home).home} (bucket/, work/, warehouse.duckdb, events.ndjson).\n`,
          );
          return exitFor(outcomes);
        });
      } finally {
        await sandbox.close();
      }
    }
  }
}

/** Accepts an object name, or a path to the object inside the local bucket folder. */
function objectName(arg: string, home: string): string {
  const bucket = localPaths(home).bucket;
  const absolute = resolve(arg);
  if (absolute.startsWith(`${bucket}${sep}`)) return relative(bucket, absolute).split(sep).join('/');
  if (isAbsolute(arg) || arg.startsWith('./') || arg.startsWith('../')) {
    throw new UsageError(
      `replay: ${arg} is not in the bucket ${bucket}; name an object such as sales/failed/2025/07/19/10h/x.json`,
    );
  }
  return arg;
}

export function formatExtract(report: ExtractReport): string {
  return report.runs
    .map((run) => {
      const from = run.startSalesId ? ` from sale id ${run.startSalesId}` : '';
      const resumed = run.resumed ? ` (resumed; ${run.pagesReused} pages were already durable)` : '';
      const files = run.files.map((f) => `\n  ${f}`).join('');
      return `${report.entity}: ${run.records} records${from}, ${run.pagesFetched} pages fetched, ${run.files.length} file(s)${resumed}${files}\n`;
    })
    .join('');
}

function formatOutcome(o: IngestOutcome): string {
  switch (o.status) {
    case 'loaded':
      return `loaded ${o.object}: ${o.rows} rows${o.alreadyLoaded ? ' (already in raw)' : ''} -> ${o.archivedObject}${o.mergeError ? `; merge failed: ${o.mergeError}` : ''}\n`;
    case 'failed':
      return `FAILED ${o.object}: ${o.reason} -> ${o.failedObject}\n`;
    case 'duplicate':
      return `skipped ${o.object}: claimed by another delivery\n`;
    case 'ignored':
      return `ignored ${o.object}: ${o.reason}\n`;
  }
}

export function formatReconcile(report: ReconcileReport): string {
  const healed = report.healed.map(
    (h) =>
      `healed ${h.action} ${h.object} (waited ${h.ageSeconds} s): ${h.outcome}${h.settledObject ? ` -> ${h.settledObject}` : ''}\n`,
  );
  const stuck = report.stuck.map(
    (s) => `STUCK ${s.action} ${s.object} (waited ${s.ageSeconds} s): ${s.reason}\n`,
  );
  const busy = report.busy ? `${report.busy} item(s) in progress elsewhere, left to them\n` : '';
  const summary =
    healed.length || stuck.length || busy
      ? ''
      : 'Nothing to heal: no stale claim, no lost arrival, no unmerged load.\n';
  return [...healed, ...stuck, busy, summary].join('');
}

function formatOutcomes(outcomes: readonly IngestOutcome[]): string {
  return outcomes.map(formatOutcome).join('');
}

/** The outcomes, then what was left in in/ and why. */
export function formatProcessed(report: ProcessReport): string {
  const growing = report.growing.map(
    (key) =>
      `left ${key}: it kept changing (still being copied in?); run process again once it is complete\n`,
  );
  const resumed = [
    report.recovered ? `resumed: finished ${report.recovered} file(s) an interrupted run had claimed\n` : '',
    report.catchUpMerges.length
      ? `resumed: merged what an interrupted run loaded and left unmerged (${report.catchUpMerges.join(', ')})\n`
      : '',
  ];
  return resumed.join('') + formatOutcomes(report.outcomes) + growing.join('');
}

/** The end of `run`: per entity what was fetched, loaded, rejected, left orphaned, and the time. */
export function formatSummary(
  steps: readonly RunStep[],
  before: WarehouseStatus,
  after: WarehouseStatus,
): string {
  const orphans = Object.values(after.orphans).reduce((n, c) => n + c, 0);
  const rows = steps.map((step) => {
    const entity = step.extract.entity;
    const outcomes = step.processed.outcomes;
    const loaded = outcomes.reduce((n, o) => n + (o.status === 'loaded' && !o.alreadyLoaded ? o.rows : 0), 0);
    const resumed = step.extract.runs.some((r) => r.resumed) ? ' (resumed)' : '';
    return [
      `${entity}${resumed}`,
      step.extract.runs.reduce((n, r) => n + r.records, 0),
      outcomes.filter((o) => o.status === 'loaded').length,
      outcomes.filter((o) => o.status === 'failed').length,
      loaded,
      (after.rejects[entity] ?? 0) - (before.rejects[entity] ?? 0),
      entity === 'sales' ? orphans : '',
      `${step.seconds.toFixed(1)} s`,
    ];
  });
  return `\n${table(['summary', 'fetched', 'files loaded', 'files failed', 'rows loaded', 'rejected', 'orphans now', 'time'], rows)}\n`;
}

const cell = (value: unknown): string =>
  value === null || value === undefined
    ? ''
    : typeof value === 'object'
      ? JSON.stringify(value)
      : String(value);

/** Query results: a table (long values cut at 80 characters), or one JSON array with --json. */
export function formatRows(rows: readonly Record<string, unknown>[], json: boolean, empty: string): string {
  if (json) return `${JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
  if (rows.length === 0) return `${empty}.\n`;
  const header = Object.keys(rows[0] ?? {});
  const cut = (text: string) => (text.length > 80 ? `${text.slice(0, 79)}…` : text);
  return `${table(
    header,
    rows.map((r) => header.map((h) => cut(cell(r[h]).replace(/\s+/g, ' ')))),
    'left',
  )}\n(${rows.length} row${rows.length === 1 ? '' : 's'})\n`;
}

function table(
  header: readonly string[],
  rows: readonly (readonly (string | number)[])[],
  align: 'numbers' | 'left' = 'numbers',
): string {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === 0 || align === 'left' ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [
    line(cells[0] ?? []),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.slice(1).map(line),
  ].join('\n');
}

export function formatStatus(report: PipelineStatus): string {
  const files = table(
    ['files', ...FILE_STATES],
    ENTITIES.map((e) => [e, ...FILE_STATES.map((s) => report.files[e][s])]),
  );
  const staged = ENTITIES.filter((e) => report.staged[e] > 0).map((e) => `${e} ${report.staged[e]}`);
  const stagedLine = staged.length
    ? `\nConnector staging (pages and parts of an unfinished run, resumed by the next extract): ${staged.join(', ')}\n`
    : '';
  const failures = report.failed.length
    ? `\nIn failed/ (newest first; retail-pipeline replay OBJECT):\n${report.failed.map((f) => `  ${f.object}: ${f.reason}`).join('\n')}\n`
    : '';
  const w = report.warehouse;
  if (!w) return `${files}\n${stagedLine}${failures}`;
  const tables = table(
    ['table', 'rows'],
    w.tables.map((t) => [t.table, t.rows]),
  );
  const orphans =
    Object.entries(w.orphans)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ') || 'none';
  const rejects =
    Object.entries(w.rejects)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ') || 'none';
  const runs = w.lastRuns.length
    ? table(
        ['last connector runs', 'entity', 'records', 'pages', 'files', 'finished (UTC)'],
        w.lastRuns.map((r) => [
          r.runId,
          r.entity,
          r.records,
          r.pagesFetched + r.pagesReused,
          r.files.length,
          r.finishedAt.toISOString().slice(0, 19),
        ]),
      )
    : 'last connector runs: none';
  return `${files}\n${stagedLine}\n${tables}\n\nOrphans: ${orphans} (retail-pipeline orphans)\nRejects: ${rejects} (retail-pipeline rejects)\n\n${runs}\n${failures}`;
}

/**
 * How long a stopped command may take to reach a safe point before it exits anyway. The CLI is
 * also the reconciler job's entrypoint, and Cloud Run sends SIGTERM 10 s before SIGKILL
 * (https://cloud.google.com/run/docs/container-contract#instance-shutdown; documented for
 * instances, assumed for job tasks as in connector-job.ts).
 */
const STOP_GRACE_MS = 1500;

if (isMainModule(import.meta.url)) {
  const controller = new AbortController();
  const command = process.argv[2];
  const onSignal = (name: 'SIGINT' | 'SIGTERM') => {
    if (controller.signal.aborted || command === 'sandbox') {
      controller.abort(name);
      if (command !== 'sandbox') process.exit(stopExit(name));
      return;
    }
    controller.abort(name);
    // Work stops at its next safe point; if that takes too long, leave now: everything written
    // is durable by design (a crash at any point is recovered by the next run), the lease is released.
    setTimeout(() => {
      process.stderr.write(
        `\nretail-pipeline: stopped by ${name}; what was written is kept: run the same command again to resume.\n`,
      );
      void Lease.releaseAll(500).finally(() => process.exit(stopExit(name)));
    }, STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const io: CliIo = {
    stdout: { write: (text) => void process.stdout.write(text), isTTY: Boolean(process.stdout.isTTY) },
    stderr: { write: (text) => void process.stderr.write(text), isTTY: Boolean(process.stderr.isTTY) },
    signal: controller.signal,
  };
  main(process.argv.slice(2), process.env, io).then(
    (code) => {
      process.exitCode = code;
      // Open handles (sockets, timers) must not keep a finished command alive.
      process.stdout.write('', () => process.exit(code));
    },
    (error: unknown) => {
      process.stderr.write(`retail-pipeline: ${describeError(error)}\n`);
      process.exit(EXIT.failure);
    },
  );
}
