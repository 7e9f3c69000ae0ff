#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ExtractReport, extract } from '../app/extract.js';
import { buildLogger, extractSettings, localExtractPorts, localPaths, type Output } from '../compose.js';
import { type CliConfig, type Env, parseCli, USAGE } from '../core/config.js';
import { ENTITIES } from '../core/entities.js';
import { ConfigError, describeError, UsageError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { startSandbox } from '../sandbox/server.js';

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
    return await execute(config, env, io);
  } catch (error) {
    io.stderr.write(`retail-pipeline: ${describeError(error)}\n`);
    return error instanceof UsageError || error instanceof ConfigError ? EXIT.usage : EXIT.failure;
  }
}

async function execute(config: CliConfig, _env: Env, io: CliIo): Promise<number> {
  switch (config.command) {
    case 'help':
      io.stdout.write(`${USAGE}\n`);
      return EXIT.ok;
    case 'extract': {
      const logger = buildLogger(config.logFormat, io.stderr);
      const ports = localExtractPorts({
        home: config.home,
        api: config.api,
        connector: config.connector,
        logger,
      });
      const report = await extract(
        { entity: config.entity, startSalesId: config.startSalesId },
        ports,
        extractSettings(config.connector),
      );
      io.stdout.write(formatExtract(report));
      return EXIT.ok;
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
        const ports = localExtractPorts({
          home: config.home,
          api: { apiUrl: sandbox.url, apiKey },
          connector: config.connector,
          logger,
        });
        io.stdout.write(`Sandbox Retail API on ${sandbox.url} (5% of requests fail on purpose).\n`);
        for (const entity of ENTITIES) {
          const report = await extract({ entity }, ports, extractSettings(config.connector));
          io.stdout.write(formatExtract(report));
        }
        io.stdout.write(`Bucket: ${localPaths(config.home).bucket}\n`);
        return EXIT.ok;
      } finally {
        await sandbox.close();
      }
    }
  }
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

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  const stopSignal = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  const io: CliIo = {
    stdout: { write: (text) => void process.stdout.write(text), isTTY: Boolean(process.stdout.isTTY) },
    stderr: { write: (text) => void process.stderr.write(text), isTTY: Boolean(process.stderr.isTTY) },
    stopSignal,
  };
  main(process.argv.slice(2), process.env, io).then(
    (code) => {
      process.exitCode = code;
      // Open handles (sockets, timers) must not keep a finished command alive.
      if (argvCommand() !== 'sandbox') setImmediate(() => process.exit(code));
    },
    (error: unknown) => {
      process.stderr.write(`retail-pipeline: ${describeError(error)}\n`);
      process.exit(EXIT.failure);
    },
  );
}

function argvCommand(): string | undefined {
  return process.argv[2];
}
