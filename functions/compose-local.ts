import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { HttpRetailApi } from './adapters/common/http-retail-api.js';
import { CryptoRandomness, SystemClock } from './adapters/common/system-clock.js';
import { DuckDbWarehouse } from './adapters/local/duckdb-warehouse.js';
import { EventLogPublisher } from './adapters/local/event-log-publisher.js';
import { FsObjectStore } from './adapters/local/fs-object-store.js';
import { LocalWorkflowRunner, loadWorkflow } from './adapters/local/local-workflow-runner.js';
import type { ExtractPorts } from './app/extract.js';
import type { IngestPorts } from './app/ingest-object.js';
import type { Holder } from './app/lease.js';
import { repositoryPath } from './compose.js';
import type { ApiSettings, ConnectorSettings } from './core/config.js';
import type { Logger } from './ports/logger.js';

/**
 * Where the local runtime's adapters are built and wired (compose.ts does the same for the
 * deployed runtime). Kept apart so that the Cloud Function and the connector image never import
 * DuckDB or the local Workflows interpreter: the loader's bundle holds what it runs and no more.
 */

export interface LocalPaths {
  readonly home: string;
  readonly bucket: string;
  /** The connector's work area (staged pages, cursors, leases), beside the bucket. */
  readonly work: string;
  readonly warehouse: string;
  readonly events: string;
}

export function localPaths(home: string): LocalPaths {
  const root = resolve(home);
  return {
    home: root,
    bucket: join(root, 'bucket'),
    work: join(root, 'work'),
    warehouse: join(root, 'warehouse.duckdb'),
    events: join(root, 'events.ndjson'),
  };
}

export interface LocalRuntime extends IngestPorts {
  readonly store: FsObjectStore;
  /** The connector's work area (not an ingest port: the loader never reads it). */
  readonly work: FsObjectStore;
  readonly warehouse: DuckDbWarehouse;
  close(): void;
}

/** The whole pipeline on one machine: a folder as the bucket, DuckDB, the event log, in-process merges. */
export async function openLocalRuntime(home: string, logger: Logger): Promise<LocalRuntime> {
  const paths = localPaths(home);
  await mkdir(paths.home, { recursive: true });
  const store = new FsObjectStore(paths.bucket);
  const warehouse = await DuckDbWarehouse.open({
    path: paths.warehouse,
    sqlDir: repositoryPath('sql/duckdb/'),
    rowsFile: async (key) => ({ path: store.pathOf(key), release: async () => undefined }),
  });
  const events = new EventLogPublisher(paths.events);
  const clock = new SystemClock();
  const randomness = new CryptoRandomness();
  const workflows = new LocalWorkflowRunner(
    loadWorkflow(repositoryPath('workflows/merge.yaml'), repositoryPath('sql/')),
    {
      warehouse,
      events,
      clock,
      randomness,
      logger,
    },
  );
  const work = new FsObjectStore(paths.work);
  return {
    store,
    work,
    warehouse,
    events,
    workflows,
    clock,
    randomness,
    logger,
    close: () => warehouse.close(),
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function localHolder(owner: string): Holder {
  const host = hostname();
  return {
    owner,
    host,
    pid: process.pid,
    isAlive: (otherHost, pid) => (otherHost === host ? processAlive(pid) : undefined),
  };
}

/**
 * The connector on the local runtime: the Retail API over HTTP, a folder as the bucket, and
 * (when the runtime is open) the warehouse's ledger and the event log.
 */
export function localExtractPorts(options: {
  home: string;
  api: ApiSettings;
  connector: ConnectorSettings;
  logger: Logger;
  runtime?: LocalRuntime;
}): ExtractPorts {
  const clock = new SystemClock();
  const runtime = options.runtime;
  return {
    ingested: runtime?.warehouse,
    events: runtime?.events,
    runLog: runtime?.warehouse,
    api: new HttpRetailApi({
      baseUrl: options.api.apiUrl,
      apiKey: options.api.apiKey,
      timeoutMs: options.connector.requestTimeoutMs,
      clock,
    }),
    store: runtime?.store ?? new FsObjectStore(localPaths(options.home).bucket),
    work: runtime?.work ?? new FsObjectStore(localPaths(options.home).work),
    clock,
    randomness: new CryptoRandomness(),
    logger: options.logger,
    holder: localHolder('retail-pipeline extract'),
  };
}
