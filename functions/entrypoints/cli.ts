#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { relative, resolve, sep } from 'node:path';
import { SystemClock } from '../adapters/common/system-clock.js';
import { type ExtractReport, extract } from '../app/extract.js';
import type { IngestOutcome } from '../app/ingest-object.js';
import {
  type PipelineStatus,
  processWaiting,
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
} from '../compose.js';
import { type LocalRuntime, localExtractPorts, localPaths, openLocalRuntime } from '../compose-local.js';
import {
  type ApiSettings,
  type CliConfig,
  type ConnectorSettings,
  type Env,
  parseCli,
  parseGcpConfig,
  USAGE,
} from '../core/config.js';
import { ENTITIES, type Entity } from '../core/entities.js';
import { ConfigError, describeError, UsageError } from '../core/errors.js';
import { OBJECT_STATES } from '../core/object-keys.js';
import { Secret } from '../core/secret.js';
import type { Logger } from '../ports/logger.js';
import { startSandbox } from '../sandbox/server.js';
import { isMainModule } from './main-module.js';

export interface CliIo {
  readonly stdout: Output;
  readonly stderr: Output;
  /** Resolves when the user asks a long-running command (sandbox) to stop. */
  readonly stopSignal: Promise<void>;
}

export const EXIT = { ok: 0, failure: 1, usage: 2, filesFailed: 3 } as const;

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

async function runPipeline(
  options: {
    entities: readonly Entity[];
    home: string;
    api: ApiSettings;
    connector: ConnectorSettings;
    maxFileBytes: number;
  },
  runtime: LocalRuntime,
  io: CliIo,
): Promise<IngestOutcome[]> {
  const steps = await runEntities(
    options.entities,
    { extract: localExtractPorts({ ...options, logger: runtime.logger, runtime }), ingest: runtime },
    { extract: extractSettings(options.connector), ingest: { maxFileBytes: options.maxFileBytes } },
    (step) => io.stdout.write(formatExtract(step.extract) + formatOutcomes(step.processed.outcomes)),
  );
  return steps.flatMap((s) => s.processed.outcomes);
}

async function execute(config: CliConfig, io: CliIo, env: Env): Promise<number> {
  switch (config.command) {
    case 'help':
      io.stdout.write(`${USAGE}\n`);
      return EXIT.ok;
    case 'extract': {
      const logger = buildLogger(config.logFormat, io.stderr);
      return withRuntime(config.home, logger, async (runtime) => {
        const ports = localExtractPorts({ ...config, logger, runtime });
        const report = await extract(
          { entity: config.entity, startSalesId: config.startSalesId },
          ports,
          extractSettings(config.connector),
        );
        io.stdout.write(formatExtract(report));
        return EXIT.ok;
      });
    }
    case 'run': {
      const logger = buildLogger(config.logFormat, io.stderr);
      return withRuntime(config.home, logger, async (runtime) => {
        const outcomes = await runPipeline(
          { ...config, maxFileBytes: config.loader.maxFileBytes },
          runtime,
          io,
        );
        return exitFor(outcomes);
      });
    }
    case 'process': {
      const logger = buildLogger(config.logFormat, io.stderr);
      return withRuntime(config.home, logger, async (runtime) => {
        const report = await processWaiting(runtime, config.loader);
        io.stdout.write(
          report.outcomes.length ? formatOutcomes(report.outcomes) : 'No file waiting in {entity}/in/.\n',
        );
        return exitFor(report.outcomes);
      });
    }
    case 'replay': {
      const logger = buildLogger(config.logFormat, io.stderr);
      if (config.gcsBucket) {
        const store = await gcsStore(config.gcsBucket, env);
        const requeued = await requeue(config.object, { store, logger });
        io.stdout.write(
          `moved to gs://${config.gcsBucket}/${requeued.key}; its arrival event loads it (watch file.loaded / file.failed)\n`,
        );
        return EXIT.ok;
      }
      const object = objectName(config.object, config.home);
      return withRuntime(config.home, logger, async (runtime) => {
        const outcome = await replay(object, runtime, config.loader);
        io.stdout.write(formatOutcomes([outcome]));
        return exitFor([outcome]);
      });
    }
    case 'status': {
      const logger = buildLogger(undefined, io.stderr);
      if (config.gcp) {
        const gcp = parseGcpConfig(env);
        const report = await status(await gcpCore(gcp, new SystemClock()));
        io.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
        return EXIT.ok;
      }
      return withRuntime(config.home, logger, async (runtime) => {
        const report = await status(runtime);
        io.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
        return EXIT.ok;
      });
    }
    case 'reconcile': {
      const logger = buildLogger(config.logFormat, io.stderr);
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
      await io.stopSignal;
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
        const logger = buildLogger(config.logFormat, io.stderr);
        io.stdout.write(`Sandbox Retail API on ${sandbox.url} (5% of requests fail on purpose).\n`);
        return await withRuntime(config.home, logger, async (runtime) => {
          const outcomes = await runPipeline(
            {
              entities: ENTITIES,
              home: config.home,
              api: { apiUrl: sandbox.url, apiKey },
              connector: config.connector,
              maxFileBytes: config.loader.maxFileBytes,
            },
            runtime,
            io,
          );
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
  return arg.replace(/^\.?\/+/, '');
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

function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [
    line(cells[0] ?? []),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.slice(1).map(line),
  ].join('\n');
}

export function formatStatus(report: PipelineStatus): string {
  const w = report.warehouse;
  const files = table(
    ['files', ...OBJECT_STATES],
    ENTITIES.map((e) => [e, ...OBJECT_STATES.map((s) => report.files[e][s])]),
  );
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
  const failed = w.lastFiles.filter((f) => f.state === 'failed');
  const failures = failed.length
    ? `Recent failures:\n${failed.map((f) => `  ${f.settledObject}: ${f.reason}`).join('\n')}\n`
    : '';
  return `${files}\n\n${tables}\n\nOrphans: ${orphans}\nRejects: ${rejects}\n\n${runs}\n${failures}`;
}

if (isMainModule(import.meta.url)) {
  const stopSignal = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  const io: CliIo = {
    stdout: { write: (text) => void process.stdout.write(text), isTTY: Boolean(process.stdout.isTTY) },
    stderr: { write: (text) => void process.stderr.write(text), isTTY: Boolean(process.stderr.isTTY) },
    stopSignal,
  };
  const command = process.argv[2];
  main(process.argv.slice(2), process.env, io).then(
    (code) => {
      process.exitCode = code;
      // Open handles (sockets, timers) must not keep a finished command alive.
      if (command !== 'sandbox') process.stdout.write('', () => process.exit(code));
    },
    (error: unknown) => {
      process.stderr.write(`retail-pipeline: ${describeError(error)}\n`);
      process.exit(EXIT.failure);
    },
  );
}
