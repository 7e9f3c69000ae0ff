import { type Entity, EXTRACT_MODE } from '../core/entities.js';
import {
  describeError,
  PreconditionFailedError,
  StoppedError,
  TerminalError,
  throwIfStopped,
} from '../core/errors.js';
import { integerOf, memberText } from '../core/json-text.js';
import {
  connectorFileName,
  cursorKey,
  fileStamp,
  inKey,
  leaseKey,
  manifestKey,
  newRunId,
  pageKey,
  parsePageKey,
  parsePartKey,
  partKey,
  processingKey,
  runIdOf,
  runPrefix,
  type StagedPage,
} from '../core/object-keys.js';
import { PagePlanner, planParts } from '../core/pagination.js';
import type { RetryPolicy } from '../core/retry.js';
import type { Clock, Randomness } from '../ports/clock.js';
import type { EventPublisher } from '../ports/events.js';
import type { Logger } from '../ports/logger.js';
import type { ObjectInfo, ObjectStore } from '../ports/object-store.js';
import type { ProgressListener } from '../ports/progress.js';
import type { RetailApi } from '../ports/retail-api.js';
import type { ConnectorRunRecord, Warehouse } from '../ports/warehouse.js';
import { type Holder, Lease } from './lease.js';
import { objectLines } from './object-lines.js';
import { publish } from './publish.js';
import { withRetries } from './retry.js';

/** What the connector needs from the warehouse: the largest sale id already loaded (raw or ods). */
export interface IngestedSales {
  maxSaleId(): Promise<bigint | undefined>;
}

export interface ExtractPorts {
  readonly api: RetailApi;
  /** The pipeline bucket: finished files are published into `{entity}/in/`. */
  readonly store: ObjectStore;
  /**
   * The connector's working area (staged pages, cursors, parts, the lease): the work bucket on
   * Google Cloud, `$PIPELINE_HOME/work/` locally. Nothing written here fires the loader.
   */
  readonly work: ObjectStore;
  readonly clock: Clock;
  readonly randomness: Randomness;
  readonly logger: Logger;
  readonly holder: Holder;
  /** Absent where no warehouse is wired (then only the bucket tells what was ingested). */
  readonly ingested?: IngestedSales | undefined;
  /**
   * Where runs are announced (`connector.run.finished`, or `connector.run.failed` for a run that
   * started and ended unfinished) and finished runs recorded (ops.connector_runs).
   */
  readonly events?: EventPublisher | undefined;
  readonly runLog?: Pick<Warehouse, 'recordConnectorRun'> | undefined;
  /** Pages fetched so far, for a person watching. */
  readonly progress?: ProgressListener | undefined;
  /**
   * Asks the run to stop (Ctrl-C, SIGTERM): no new page is requested, requests in flight are
   * abandoned, pages already received are staged and assembled, the lease is released, and the
   * run ends with StoppedError. The next run resumes after the last durable page.
   */
  readonly signal?: AbortSignal | undefined;
}

export interface ExtractSettings {
  /** Pages in flight at once. */
  readonly concurrency: number;
  readonly pageSize: number;
  /** Pages are joined into files of at least this many bytes (the last file of a run may be smaller). */
  readonly targetFileBytes: number;
  readonly retry: RetryPolicy;
  readonly leaseTtlMs: number;
}

export interface ExtractRequest {
  readonly entity: Entity;
  /** Sales only: start here instead of after the largest id already ingested. */
  readonly startSalesId?: bigint | undefined;
}

/** One connector run, as recorded in ops.connector_runs (without the entity and end time). */
export type RunReport = Omit<ConnectorRunRecord, 'entity' | 'finishedAt'>;

export interface ExtractReport {
  readonly entity: Entity;
  readonly runs: readonly RunReport[];
}

/** Written once when a run starts; the run's parameters survive a crash with it. */
interface Manifest {
  readonly runId: string;
  readonly entity: Entity;
  readonly startedAt: string;
  readonly fileStamp: string;
  readonly pageSize: number;
  readonly startSalesId?: string;
}

/** Pages before `nextPage` are in files already; `complete` once the last page is. */
interface Cursor {
  readonly nextPage: number;
  readonly complete: boolean;
  readonly records: number;
}

/**
 * The connector: pages through one endpoint of the Retail API into `{entity}/in/`.
 *
 * Durability: every page is written to the run's staging area as soon as it arrives, so a run
 * killed at any moment resumes after its last durable page. Pages are joined into large files
 * (by bytes) in staging and only then moved into `in/`, so a file in `in/` is always complete
 * and loading needs few jobs. The cursor is advanced before an assembled file is published and
 * a staged file names the pages it holds, so no page ends up in two files.
 */
export async function extract(
  request: ExtractRequest,
  ports: ExtractPorts,
  settings: ExtractSettings,
): Promise<ExtractReport> {
  const { entity } = request;
  if (request.startSalesId !== undefined && entity !== 'sales') {
    throw new TerminalError(`--start-sales-id applies to sales only, not ${entity}`);
  }
  const logger = ports.logger.child({ entity });
  const lease = await Lease.acquire({
    store: ports.work,
    key: leaseKey(entity),
    what: `extract of ${entity}`,
    holder: ports.holder,
    ttlMs: settings.leaseTtlMs,
    clock: ports.clock,
    logger,
  });
  const runs: RunReport[] = [];
  try {
    const unfinished = await findUnfinishedRun(ports.work, entity);
    if (unfinished) {
      logger.log('INFO', 'resuming an unfinished run', { run: unfinished.runId });
      runs.push(await new Run(unfinished, true, ports, settings, lease, logger).execute());
    }
    const explicitStartDiffers =
      request.startSalesId !== undefined && unfinished?.startSalesId !== request.startSalesId.toString();
    if (!unfinished || explicitStartDiffers) {
      const manifest = await startRun(request, ports, settings);
      runs.push(await new Run(manifest, false, ports, settings, lease, logger).execute());
    }
    return { entity, runs };
  } catch (error) {
    await announceFailure(ports, entity, error);
    throw error;
  } finally {
    await lease.release();
  }
}

/**
 * `connector.run.failed`: a run that ended without finishing, with the reason. What it wrote
 * stays staged, and the next run resumes after its last durable page (`resumable`).
 */
async function announceFailure(ports: ExtractPorts, entity: Entity, error: unknown): Promise<void> {
  const stopped = error instanceof StoppedError;
  const reason = describeError(error);
  // INFO: the error itself reaches the caller (the CLI's one line, the job's ERROR entry).
  ports.logger.log('INFO', stopped ? 'run stopped' : 'run failed', {
    entity,
    event: 'connector.run.failed',
    reason,
  });
  if (!ports.events) return;
  await publish(
    { ...ports, events: ports.events },
    {
      type: 'connector.run.failed',
      entity,
      data: { reason, stopped, resumable: true },
    },
  ).catch((publishError: unknown) => {
    ports.logger.log('WARNING', 'could not publish connector.run.failed', {
      reason: describeError(publishError),
    });
  });
}

async function findUnfinishedRun(store: ObjectStore, entity: Entity): Promise<Manifest | undefined> {
  const objects = await store.list(`${entity}/staging/runs/`);
  const runIds = [...new Set(objects.map((o) => runIdOf(o.key)).filter((id): id is string => !!id))].sort();
  for (const runId of runIds) {
    const key = manifestKey(runPrefix(entity, runId));
    if (objects.some((o) => o.key === key)) {
      return JSON.parse((await store.read(key)).toString('utf8')) as Manifest;
    }
    // A run without its manifest is the tail of a finished run's clean-up: finish it.
    for (const o of objects) if (runIdOf(o.key) === runId) await store.delete(o.key);
  }
  return undefined;
}

async function startRun(
  request: ExtractRequest,
  ports: ExtractPorts,
  settings: ExtractSettings,
): Promise<Manifest> {
  const startedAt = ports.clock.now();
  const runId = newRunId(startedAt, ports.randomness.uuid());
  let startSalesId: bigint | undefined;
  if (EXTRACT_MODE[request.entity] === 'incremental') {
    startSalesId = request.startSalesId ?? ((await largestSaleIdIngested(ports)) ?? 0n) + 1n;
  }
  const manifest: Manifest = {
    runId,
    entity: request.entity,
    startedAt: startedAt.toISOString(),
    fileStamp: fileStamp(startedAt),
    pageSize: settings.pageSize,
    ...(startSalesId !== undefined ? { startSalesId: startSalesId.toString() } : {}),
  };
  await ports.work.write(manifestKey(runPrefix(request.entity, runId)), JSON.stringify(manifest), {
    ifGenerationMatch: '0',
  });
  ports.logger.log('INFO', 'run started', {
    entity: request.entity,
    run: runId,
    startSalesId: manifest.startSalesId,
  });
  return manifest;
}

/**
 * The largest sale id anywhere downstream: in the warehouse (raw or ods), or in a file written
 * and not loaded yet (`in/`, `processing/`). The next run starts after it.
 */
export async function largestSaleIdIngested(
  ports: Pick<ExtractPorts, 'store' | 'ingested'>,
): Promise<bigint | undefined> {
  let max = await ports.ingested?.maxSaleId();
  const waiting = [
    ...(await ports.store.list(inKey('sales', ''))),
    ...(await ports.store.list(processingKey('sales', ''))),
  ];
  for (const object of waiting) {
    const fileMax = await largestIdInFile(ports.store, object.key);
    if (fileMax !== undefined && (max === undefined || fileMax > max)) max = fileMax;
  }
  return max;
}

async function largestIdInFile(store: ObjectStore, key: string): Promise<bigint | undefined> {
  let max: bigint | undefined;
  for await (const line of objectLines(store, key, { strict: false })) {
    if (!line.trim()) continue;
    let id: bigint | undefined;
    try {
      id = integerOf(memberText(line, 'id'));
    } catch {
      continue; // not a JSON object: the loader will reject this file, its ids do not count
    }
    if (id !== undefined && (max === undefined || id > max)) max = id;
  }
  return max;
}

/** Where a connector file already is past `in/` (processing, archive or failed): its name is unique. */
async function publishedElsewhere(
  store: ObjectStore,
  entity: Entity,
  fileName: string,
): Promise<string | undefined> {
  for (const state of ['processing', 'archive', 'failed'] as const) {
    const found = (await store.list(`${entity}/${state}/`)).find((o) => o.key.endsWith(`/${fileName}`));
    if (found) return found.key;
  }
  return undefined;
}

class Run {
  private readonly prefix: string;
  private readonly logger: Logger;
  private readonly pageObjects = new Map<number, ObjectInfo>();
  private cursor: Cursor = { nextPage: 1, complete: false, records: 0 };
  private pagesFetched = 0;
  private pagesReused = 0;
  private recordsReceived = 0;
  /** Pages in files or staged, counted from page 1 (a resumed run starts past 0), for progress. */
  private pagesDone = 0;
  private readonly files: string[] = [];

  constructor(
    private readonly manifest: Manifest,
    private readonly resumed: boolean,
    private readonly ports: ExtractPorts,
    private readonly settings: ExtractSettings,
    private readonly lease: Lease,
    logger: Logger,
  ) {
    this.prefix = runPrefix(manifest.entity, manifest.runId);
    this.logger = logger.child({ run: manifest.runId });
  }

  async execute(): Promise<RunReport> {
    const staged = await this.recover();
    if (!this.cursor.complete) await this.fetchAll(staged);
    await this.cleanUp();
    const report: RunReport = {
      runId: this.manifest.runId,
      resumed: this.resumed,
      startSalesId: this.manifest.startSalesId,
      pagesFetched: this.pagesFetched,
      pagesReused: this.pagesReused,
      records: this.cursor.records,
      files: this.files,
    };
    this.logger.log('INFO', 'run finished', { event: 'connector.run.finished', ...report });
    await this.ports.runLog?.recordConnectorRun({
      ...report,
      entity: this.manifest.entity,
      finishedAt: this.ports.clock.now(),
    });
    if (this.ports.events) {
      await publish(
        { ...this.ports, events: this.ports.events },
        {
          type: 'connector.run.finished',
          entity: this.manifest.entity,
          data: { ...report },
        },
      );
    }
    return report;
  }

  /** Rebuilds the run's state from its staging area; publishes files a crash left unpublished. */
  private async recover(): Promise<StagedPage[]> {
    const store = this.ports.work;
    const objects = await store.list(this.prefix);
    const cursorObject = objects.find((o) => o.key === cursorKey(this.prefix));
    if (cursorObject)
      this.cursor = JSON.parse((await store.read(cursorObject.key)).toString('utf8')) as Cursor;
    for (const o of objects) {
      const part = parsePartKey(o.key);
      if (!part) continue;
      // Assembled, maybe not recorded in the cursor yet: its pages are in it, never fetch them again.
      if (part.last + 1 > this.cursor.nextPage) {
        this.cursor = {
          ...this.cursor,
          nextPage: part.last + 1,
          records: this.cursor.records + part.records,
        };
        await this.writeCursor();
      }
      await this.publish(o.key, part.fileName, true);
    }
    const staged: StagedPage[] = [];
    for (const o of objects) {
      const page = parsePageKey(o.key);
      if (!page) continue;
      if (page.page < this.cursor.nextPage) await store.delete(o.key);
      else {
        staged.push(page);
        this.pageObjects.set(page.page, o);
      }
    }
    this.pagesReused = staged.length;
    this.recordsReceived = this.cursor.records + staged.reduce((n, p) => n + p.count, 0);
    this.pagesDone = this.cursor.nextPage - 1 + staged.length;
    return staged;
  }

  private async fetchAll(staged: StagedPage[]): Promise<void> {
    const planner = new PagePlanner({
      firstPage: this.cursor.nextPage,
      pageSize: this.manifest.pageSize,
      staged,
    });
    const pageCounts = new Map(staged.map((p) => [p.page, p.count]));
    let failure: unknown;
    let assembly: Promise<void> = this.assemble(planner, pageCounts).catch((error: unknown) => {
      failure ??= error;
    });
    const inFlight = new Set<Promise<void>>();

    const fetchOne = async (page: number): Promise<void> => {
      const result = await withRetries(
        `GET /${this.manifest.entity} page ${page}`,
        () =>
          this.ports.api.fetchPage({
            entity: this.manifest.entity,
            page,
            pageSize: this.manifest.pageSize,
            startSalesId:
              this.manifest.startSalesId === undefined ? undefined : BigInt(this.manifest.startSalesId),
            signal: this.ports.signal,
          }),
        {
          policy: this.settings.retry,
          clock: this.ports.clock,
          randomness: this.ports.randomness,
          logger: this.logger,
          signal: this.ports.signal,
        },
      );
      this.pagesFetched++;
      this.recordsReceived += result.records.length;
      const last = planner.last;
      if (last !== undefined && page > last) {
        planner.done(page, result.records.length, result.totalPages);
        return; // a probe past the end: nothing of this run
      }
      this.lease.assertHeld();
      const body = result.records.length ? `${result.records.join('\n')}\n` : '';
      const staged = { page, count: result.records.length, totalPages: result.totalPages };
      const info = await this.ports.work.write(pageKey(this.prefix, staged), body);
      this.pageObjects.set(page, info);
      pageCounts.set(page, staged.count);
      planner.done(page, staged.count, staged.totalPages);
      this.pagesDone++;
      this.ports.progress?.({
        stage: 'extract',
        entity: this.manifest.entity,
        pages: this.pagesDone,
        // Known once the last page came; until then what the API announced (total_pages).
        pagesTotal:
          planner.last ?? (result.totalPages > 0 ? Math.max(result.totalPages, this.pagesDone) : undefined),
        records: this.recordsReceived,
      });
      assembly = assembly
        .then(() => (failure === undefined ? this.assemble(planner, pageCounts) : undefined))
        .catch((error: unknown) => {
          failure ??= error;
        });
    };

    for (;;) {
      while (
        failure === undefined &&
        !this.ports.signal?.aborted &&
        inFlight.size < this.settings.concurrency
      ) {
        const page = planner.next();
        if (page === undefined) break;
        const task: Promise<void> = fetchOne(page).then(
          () => {
            inFlight.delete(task);
          },
          (error: unknown) => {
            inFlight.delete(task);
            failure ??= error;
          },
        );
        inFlight.add(task);
      }
      if (inFlight.size === 0) break;
      await Promise.race(inFlight);
    }
    // Pages already received are staged; let the assembler settle before reporting a failure.
    await assembly;
    if (failure !== undefined) throw failure;
    throwIfStopped(this.ports.signal);
    if (!planner.complete) throw new TerminalError('the run stopped before reaching the last page');
    if (!this.cursor.complete)
      throw new TerminalError('the run reached the last page but did not finish assembling');
  }

  /** Joins contiguous pages into files, writes the cursor, then publishes. */
  private async assemble(planner: PagePlanner, pageCounts: Map<number, number>): Promise<void> {
    const received = [...this.pageObjects.entries()]
      .filter(([page]) => page >= this.cursor.nextPage)
      .map(([page, info]) => ({ page, bytes: info.size }));
    const ranges = planParts({
      frontier: this.cursor.nextPage,
      pages: received,
      targetBytes: this.settings.targetFileBytes,
      lastPage: planner.last,
    });
    for (const range of ranges) {
      this.lease.assertHeld();
      const pages: ObjectInfo[] = [];
      let records = 0;
      for (let p = range.first; p <= range.last; p++) {
        const info = this.pageObjects.get(p);
        if (info) pages.push(info);
        records += pageCounts.get(p) ?? 0;
      }
      const sources = pages.filter((o) => o.size > 0).map((o) => o.key);
      let part: { key: string; fileName: string } | undefined;
      if (sources.length > 0) {
        const fileName = connectorFileName(
          this.manifest.entity,
          this.manifest.fileStamp,
          this.ports.randomness.uuid(),
        );
        const key = partKey(this.prefix, { first: range.first, last: range.last, records, fileName });
        await this.ports.work.compose(sources, key);
        part = { key, fileName };
      }
      this.cursor = {
        nextPage: range.last + 1,
        complete: range.last === planner.last,
        records: this.cursor.records + records,
      };
      await this.writeCursor();
      for (const o of pages) {
        await this.ports.work.delete(o.key);
        this.pageObjects.delete(Number(parsePageKey(o.key)?.page));
      }
      if (part) await this.publish(part.key, part.fileName);
    }
  }

  private async writeCursor(): Promise<void> {
    await this.ports.work.write(cursorKey(this.prefix), JSON.stringify(this.cursor));
  }

  /**
   * Copies an assembled file from the work area into `in/` (create-only), then drops the staged
   * copy. A destination that exists means an earlier try got that far. After a crash between the
   * copy and the drop, the loader may already have taken the file out of `in/`: a recovered part
   * whose file name is anywhere in the entity's folders is not published again.
   */
  private async publish(stagedKey: string, fileName: string, recovered = false): Promise<void> {
    const entity = this.manifest.entity;
    const destination = inKey(entity, fileName);
    const elsewhere = recovered ? await publishedElsewhere(this.ports.store, entity, fileName) : undefined;
    if (elsewhere) {
      this.logger.log('INFO', 'file was published before a crash and is loading or loaded', {
        object: elsewhere,
      });
      await this.ports.work.delete(stagedKey);
      this.files.push(destination);
      return;
    }
    try {
      await this.ports.work.copyTo(stagedKey, this.ports.store, destination, { ifDestinationAbsent: true });
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      // Published by a try that crashed before removing its staged copy, unless names collide.
      const [staged, published] = await Promise.all([
        this.ports.work.stat(stagedKey),
        this.ports.store.stat(destination),
      ]);
      if (staged && published && staged.size !== published.size) {
        throw new TerminalError(
          `${destination} exists with other content; ${stagedKey} was left in ${this.ports.work.location}`,
        );
      }
    }
    await this.ports.work.delete(stagedKey);
    this.files.push(destination);
    this.logger.log('INFO', 'file published', { object: destination });
  }

  /**
   * Removes the staging area. The manifest goes first: from then on the run counts as finished,
   * and whatever a crash leaves behind is swept by the next run (see findUnfinishedRun).
   */
  private async cleanUp(): Promise<void> {
    const objects = await this.ports.work.list(this.prefix);
    const manifest = manifestKey(this.prefix);
    await this.ports.work.delete(manifest);
    for (const o of objects) if (o.key !== manifest) await this.ports.work.delete(o.key);
  }
}
