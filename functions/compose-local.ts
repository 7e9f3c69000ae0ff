import { constants, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
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
import { ConfigError } from './core/errors.js';
import type { Logger } from './ports/logger.js';
import type { ProgressEvent, ProgressListener } from './ports/progress.js';
import type { WarehouseStatus } from './ports/warehouse.js';

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
  /** What a running process last knew (see StatusSnapshot); removed when it closes. */
  readonly snapshot: string;
}

export function localPaths(home: string): LocalPaths {
  const root = resolve(home);
  return {
    home: root,
    bucket: join(root, 'bucket'),
    work: join(root, 'work'),
    warehouse: join(root, 'warehouse.duckdb'),
    events: join(root, 'events.ndjson'),
    snapshot: join(root, 'status.json'),
  };
}

export interface LocalRuntime extends IngestPorts {
  readonly store: FsObjectStore;
  /** The connector's work area (not an ingest port: the loader never reads it). */
  readonly work: FsObjectStore;
  readonly warehouse: DuckDbWarehouse;
  /** Listens to the work's progress: keeps the status snapshot current (see StatusSnapshot). */
  progress: ProgressListener;
  /** Where the merges report their steps to (the CLI's progress display); set by the caller. */
  onProgress: ProgressListener | undefined;
  /** Writes the status snapshot now (after a step the CLI reports). */
  snapshot(): Promise<void>;
  close(): void;
}

/**
 * What a running process last knew, for `status` while it holds the warehouse (DuckDB lets no
 * other process open it then): the warehouse figures, and what the work is doing now.
 */
export interface StatusSnapshot {
  readonly pid: number;
  /** The writer's start time (see processAlive): a snapshot left by a killed run is not shown. */
  readonly started: string | undefined;
  readonly writtenAt: string;
  /** When `warehouse` was read (the progress is newer). */
  readonly figuresAt: string;
  readonly warehouse: WarehouseStatus;
  readonly progress: ProgressEvent | undefined;
}

const SNAPSHOT_EVERY_MS = 250;
/**
 * The warehouse figures are read again at most this often as the work moves on (and once more
 * after its last step): reading them takes some 25 ms in the warehouse's queue, and a run that
 * read them before every file and merge step spent 0.4 s of a 1.5 s hourly run on it.
 */
const FIGURES_EVERY_MS = 1000;

/** A home that cannot be created or written: one clear line, not a raw EACCES. */
async function ensureHome(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
    await access(path, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (
      code === 'EACCES' ||
      code === 'EROFS' ||
      code === 'EPERM' ||
      code === 'ENOTDIR' ||
      code === 'EEXIST'
    ) {
      throw new ConfigError(
        `cannot write to the pipeline home ${path} (${code}); pass --home DIR or set PIPELINE_HOME to a folder you can write`,
      );
    }
    throw error;
  }
}

/** The whole pipeline on one machine: a folder as the bucket, DuckDB, the event log, in-process merges. */
export async function openLocalRuntime(home: string, logger: Logger): Promise<LocalRuntime> {
  const paths = localPaths(home);
  await ensureHome(paths.home);
  const store = new FsObjectStore(paths.bucket);
  const warehouse = await DuckDbWarehouse.open({
    path: paths.warehouse,
    sqlDir: repositoryPath('sql/duckdb/'),
    rowsFile: async (key) => ({ path: store.pathOf(key), release: async () => undefined }),
  });
  const work = new FsObjectStore(paths.work);
  // This process holds the warehouse, so no other writes the folders: what a killed run left in
  // their temporary folders is nobody's.
  await store.sweepTemporaryFiles();
  await work.sweepTemporaryFiles();
  const events = new EventLogPublisher(paths.events);
  const clock = new SystemClock();
  const randomness = new CryptoRandomness();
  const self = thisProcess();
  let latest: ProgressEvent | undefined;
  let figures: WarehouseStatus | undefined;
  let figuresAt = '';
  let lastWrite = 0;
  let lastRefresh = 0;
  let trailing: NodeJS.Timeout | undefined;
  let refreshing: Promise<void> | undefined;
  const writeSnapshot = () => {
    if (!figures) return;
    const snapshot: StatusSnapshot = {
      pid: self.pid,
      started: self.started,
      writtenAt: new Date().toISOString(),
      figuresAt,
      warehouse: figures,
      progress: latest,
    };
    const tmp = `${paths.snapshot}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(snapshot));
    renameSync(tmp, paths.snapshot);
    lastWrite = Date.now();
  };
  let closed = false;
  /** A read asked for while one was under way: it runs once that one ends (the work moved on). */
  let again = false;
  const refresh = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (refreshing) {
      again = true;
      return refreshing;
    }
    lastRefresh = Date.now();
    refreshing = warehouse
      .status()
      .then((current) => {
        if (closed) return; // the snapshot went with the warehouse
        figures = current;
        figuresAt = new Date().toISOString();
        writeSnapshot();
      })
      .catch((error: unknown) => {
        // A read queued before close finds the connection gone: nothing to report then.
        if (!closed) logger.log('WARNING', 'could not write the status snapshot', { reason: String(error) });
      })
      .finally(() => {
        refreshing = undefined;
        if (again && !closed) {
          again = false;
          refreshSoon();
        }
      });
    return refreshing;
  };
  /** refresh, at most every FIGURES_EVERY_MS; a request within that time is served at its end. */
  const refreshSoon = () => {
    const wait = lastRefresh + FIGURES_EVERY_MS - Date.now();
    if (wait <= 0) void refresh();
    else if (!trailing) {
      trailing = setTimeout(() => {
        trailing = undefined;
        void refresh();
      }, wait);
      trailing.unref();
    }
  };
  let runtime: LocalRuntime | undefined;
  const workflows = new LocalWorkflowRunner(
    loadWorkflow(repositoryPath('workflows/merge.yaml'), repositoryPath('sql/')),
    // The merges report each script they start, as the rest of the work does.
    { warehouse, events, clock, randomness, logger, progress: (event) => runtime?.progress(event) },
  );
  runtime = {
    store,
    work,
    warehouse,
    events,
    workflows,
    clock,
    randomness,
    logger,
    onProgress: undefined,
    progress: (event) => {
      const moved = latest?.entity !== event.entity || latest?.stage !== event.stage;
      latest = event;
      runtime?.onProgress?.(event);
      // A file about to load or a merge step about to run: the steps before it changed the
      // warehouse, so its figures are read again (at most every FIGURES_EVERY_MS). Pages fetched
      // change only the progress. The figures are read in the warehouse's queue; the progress is
      // written now.
      if (moved || event.stage !== 'extract' || Date.now() - lastWrite >= SNAPSHOT_EVERY_MS) writeSnapshot();
      if (event.stage !== 'extract') refreshSoon();
    },
    snapshot: refresh,
    close: () => {
      closed = true;
      clearTimeout(trailing);
      rmSync(paths.snapshot, { force: true });
      warehouse.close();
    },
  };
  await refresh();
  return runtime;
}

/**
 * The local warehouse opened for reading only, for status, rejects, orphans and sql: nothing is
 * created or changed, and it fails with WarehouseBusyError while a run holds it. Undefined when
 * there is no warehouse yet.
 */
export async function openLocalReader(home: string): Promise<DuckDbWarehouse | undefined> {
  const paths = localPaths(home);
  if (!existsSync(paths.warehouse)) return undefined;
  return DuckDbWarehouse.open({
    path: paths.warehouse,
    sqlDir: repositoryPath('sql/duckdb/'),
    rowsFile: async () => {
      throw new ConfigError('a read-only warehouse loads nothing');
    },
    readOnly: true,
  });
}

/** The snapshot a running process keeps, if it is still running. */
export function readSnapshot(home: string): StatusSnapshot | undefined {
  const path = localPaths(home).snapshot;
  let snapshot: StatusSnapshot;
  try {
    snapshot = JSON.parse(readFileSync(path, 'utf8')) as StatusSnapshot;
  } catch {
    return undefined;
  }
  if (!processAlive(snapshot.pid, snapshot.started)) return undefined;
  const w = snapshot.warehouse;
  return {
    ...snapshot,
    warehouse: {
      ...w,
      lastRuns: w.lastRuns.map((r) => ({ ...r, finishedAt: new Date(String(r.finishedAt)) })),
      lastFiles: w.lastFiles.map((f) => ({ ...f, settledAt: new Date(String(f.settledAt)) })),
    },
  };
}

/**
 * A process's state and start time from /proc/PID/stat (Linux, proc(5)): the state is the field
 * after the command name, the start time (clock ticks since boot) the 22nd field. `undefined`
 * where there is no /proc.
 */
function procStat(pid: number): { state: string; started: string } | 'gone' | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return existsSync('/proc/self/stat') ? 'gone' : undefined;
    return undefined;
  }
  // The command name is in parentheses and may itself hold spaces or parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const started = fields[19];
  return state && started ? { state, started } : undefined;
}

/**
 * Whether the process that wrote a lease still runs. A killed process not yet reaped (a zombie,
 * state Z) is dead, and so is a live process that only reuses its pid (another start time).
 */
export function processAlive(pid: number, started: string | undefined): boolean {
  const proc = procStat(pid);
  if (proc === 'gone') return false;
  if (proc) {
    if (proc.state === 'Z' || proc.state === 'X') return false;
    return started === undefined || proc.started === started;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This process's pid and start time, as processAlive checks them. */
function thisProcess(): { pid: number; started: string | undefined } {
  const proc = procStat(process.pid);
  return { pid: process.pid, started: typeof proc === 'object' ? proc.started : undefined };
}

export function localHolder(owner: string): Holder {
  const host = hostname();
  const self = thisProcess();
  return {
    owner,
    host,
    pid: self.pid,
    started: self.started,
    isAlive: (otherHost, pid, started) => (otherHost === host ? processAlive(pid, started) : undefined),
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
