import { ENTITIES, type Entity } from '../core/entities.js';
import {
  ObjectNotFoundError,
  PreconditionFailedError,
  TerminalError,
  throwIfStopped,
  UsageError,
} from '../core/errors.js';
import {
  companionOf,
  errorSidecarKey,
  inKey,
  isArrival,
  isCompanion,
  isShortenedName,
  OBJECT_STATES,
  type ObjectState,
  parseObjectKey,
} from '../core/object-keys.js';
import { type ObjectInfo, type ObjectStore, settledFor } from '../ports/object-store.js';
import type { ProgressListener } from '../ports/progress.js';
import type { Warehouse, WarehouseStatus } from '../ports/warehouse.js';
import { type ExtractPorts, type ExtractReport, type ExtractSettings, extract } from './extract.js';
import {
  type IngestOutcome,
  type IngestPorts,
  type IngestSettings,
  ingestObject,
  recoverClaims,
} from './ingest-object.js';

export interface ProcessReport {
  readonly outcomes: readonly IngestOutcome[];
  /** How many of the outcomes finished a claim an interrupted run had left in processing/. */
  readonly recovered: number;
  /** Merges run to catch up with loads a crash left unmerged. */
  readonly catchUpMerges: readonly Entity[];
  /** Files left in `in/` because they kept changing (still being copied in): the next process takes them. */
  readonly growing: readonly string[];
}

export interface ProcessOptions {
  /** Asks to stop between files (the file being loaded is finished or, if killed, recovered next time). */
  readonly signal?: AbortSignal | undefined;
  readonly progress?: ProgressListener | undefined;
}

/** How long processWaiting waits at most for files that keep changing before leaving them for later. */
const MAX_SETTLE_WAIT_MS = 30_000;

/**
 * Loads every file waiting in `{entity}/in/` (first finishing claims an interrupted run left in
 * processing/), each through the same loader the Cloud Function runs, then merges whatever a
 * crash left unmerged. Call it only where no other loader runs (locally the warehouse lock holds).
 *
 * A folder bucket shows a file while it is still being copied in: a file this process did not
 * write itself is taken only once it has not changed for `quietMs` (GCS lists only whole objects).
 */
export async function processWaiting(
  ports: IngestPorts,
  settings: IngestSettings,
  entities: readonly Entity[] = ENTITIES,
  options: ProcessOptions = {},
): Promise<ProcessReport> {
  const { signal, progress } = options;
  const outcomes: IngestOutcome[] = [...(await recoverClaims(ports, settings, entities))];
  const recovered = outcomes.length;
  const growing: string[] = [];
  for (const entity of entities) {
    throwIfStopped(signal);
    const waiting = await settledObjects(ports, await ports.store.list(`${entity}/in/`), {
      quietMs: settings.quietMs ?? 0,
      signal,
    });
    growing.push(...waiting.growing);
    for (const [index, object] of waiting.ready.entries()) {
      throwIfStopped(signal);
      progress?.({
        stage: 'load',
        entity,
        object: object.key,
        file: index + 1,
        files: waiting.ready.length,
        bytes: object.size,
      });
      outcomes.push(
        await ingestObject(
          { bucket: ports.store.location, name: object.key, generation: object.generation },
          ports,
          settings,
        ),
      );
    }
  }
  for (const key of growing) {
    ports.logger.log(
      'WARNING',
      'left in in/: it kept changing (still being copied in?); the next process takes it',
      {
        object: key,
      },
    );
  }
  const catchUpMerges: Entity[] = [];
  for (const entity of await ports.warehouse.unmergedEntities()) {
    if (!entities.includes(entity)) continue;
    throwIfStopped(signal);
    catchUpMerges.push(entity);
    await ports.workflows.start({
      entity,
      object: `${entity}/in/`,
      generation: '',
      runId: ports.randomness.uuid(),
    });
  }
  return { outcomes, recovered, catchUpMerges, growing };
}

/**
 * The objects ready to load: whole by construction (GCS, or written by this process), or
 * unchanged for `quietMs`. An object still changing is waited for, up to MAX_SETTLE_WAIT_MS.
 */
async function settledObjects(
  ports: Pick<IngestPorts, 'store' | 'clock'>,
  listed: readonly ObjectInfo[],
  options: { quietMs: number; signal: AbortSignal | undefined },
): Promise<{ ready: ObjectInfo[]; growing: string[] }> {
  const { store, clock } = ports;
  const quiet = (o: ObjectInfo) => settledFor(store, o, options.quietMs, clock.now());
  const ready = listed.filter(quiet);
  let pending = listed.filter((o) => !quiet(o));
  const deadline = clock.now().getTime() + MAX_SETTLE_WAIT_MS;
  while (pending.length > 0 && clock.now().getTime() < deadline) {
    throwIfStopped(options.signal);
    const youngest = Math.max(...pending.map((o) => o.updated.getTime()));
    await clock.sleep(
      Math.max(50, Math.min(options.quietMs, youngest + options.quietMs - clock.now().getTime())),
    );
    const next: ObjectInfo[] = [];
    for (const before of pending) {
      const now = await store.stat(before.key);
      if (!now) continue; // taken away meanwhile
      if (now.generation === before.generation && now.size === before.size && quiet(now)) ready.push(now);
      else next.push(now);
    }
    pending = next;
  }
  ready.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { ready, growing: pending.map((o) => o.key) };
}

export interface RunStep {
  readonly extract: ExtractReport;
  readonly processed: ProcessReport;
  /** Wall time of the entity's extract, loads and merges. */
  readonly seconds: number;
}

/**
 * `run`: for each entity in order, the connector, then every file that landed through the
 * loader and the merge. Products and customers go first so that sales find them.
 */
export async function runEntities(
  entities: readonly Entity[],
  ports: { extract: ExtractPorts; ingest: IngestPorts },
  settings: { extract: ExtractSettings; ingest: IngestSettings },
  onStep: (step: RunStep) => void = () => undefined,
): Promise<RunStep[]> {
  const steps: RunStep[] = [];
  const options = { signal: ports.extract.signal, progress: ports.extract.progress };
  for (const entity of entities) {
    const started = performance.now();
    const report = await extract({ entity }, ports.extract, settings.extract);
    const processed = await processWaiting(ports.ingest, settings.ingest, [entity], options);
    const step = { extract: report, processed, seconds: (performance.now() - started) / 1000 };
    onStep(step);
    steps.push(step);
  }
  return steps;
}

/**
 * Manual replay: moves a file from failed/ (or archive/) back into `{entity}/in/` under its own
 * name and processes it like any new arrival. A failed file's sidecar goes with it (the reason
 * stays in ops.files); if it fails again, a new sidecar is written.
 */
export async function replay(
  object: string,
  ports: IngestPorts,
  settings: IngestSettings,
): Promise<IngestOutcome> {
  const requeued = await requeue(object, ports);
  return ingestObject(
    { bucket: ports.store.location, name: requeued.key, generation: requeued.generation },
    ports,
    settings,
  );
}

/**
 * Moves a file from failed/ (or archive/) back into `{entity}/in/` under its own name; in
 * production its arrival (object finalize) does the rest. A failed file's sidecar goes with it
 * (the reason stays in ops.files); if it fails again, a new sidecar is written.
 */
export async function requeue(
  object: string,
  ports: Pick<IngestPorts, 'store' | 'logger'>,
): Promise<{ key: string; generation: string }> {
  const parsed = parseObjectKey(object);
  // A sidecar is not replayed; a data file merely named so is (see isCompanion, which needs the
  // objects beside it: only for such a name are they looked up).
  const listed = new Set<string>();
  const owner = companionOf(object);
  if (owner !== undefined)
    for (const key of [owner, errorSidecarKey(object)]) if (await ports.store.stat(key)) listed.add(key);
  if (!parsed || (parsed.state !== 'failed' && parsed.state !== 'archive') || isCompanion(object, listed)) {
    throw new UsageError(
      `replay takes a file under {entity}/failed/ or {entity}/archive/, e.g. sales/failed/2025/07/19/10h/x.json; not "${object}"`,
    );
  }
  if (isShortenedName(parsed.name)) {
    throw new UsageError(
      `${object} was set aside because its name was too long (see its .error.json for the original): rename it shorter and upload it to ${parsed.entity}/in/`,
    );
  }
  const source = await ports.store.stat(object);
  if (!source) throw new TerminalError(`no such object: ${object}`);
  const destination = inKey(parsed.entity, parsed.name);
  let moved: { generation: string };
  try {
    moved = await ports.store.move(object, destination, {
      ifSourceGenerationMatch: source.generation,
      ifDestinationAbsent: true,
    });
  } catch (error) {
    if (error instanceof PreconditionFailedError) {
      throw new TerminalError(`${destination} exists already; process it first (retail-pipeline process)`, {
        cause: error,
      });
    }
    if (error instanceof ObjectNotFoundError)
      throw new TerminalError(`no such object: ${object}`, { cause: error });
    throw error;
  }
  if (parsed.state === 'failed') await ports.store.delete(errorSidecarKey(object));
  ports.logger.log('INFO', 'replaying', { object, to: destination });
  return { key: destination, generation: moved.generation };
}

/** Files in the bucket, per entity and state (staging is the connector's, counted apart). */
export type FileCounts = Record<Entity, Record<Exclude<ObjectState, 'staging'>, number>>;

export const FILE_STATES = OBJECT_STATES.filter((s): s is Exclude<ObjectState, 'staging'> => s !== 'staging');

export interface FailedFile {
  readonly object: string;
  readonly reason: string;
  readonly failedAt: string;
}

export interface PipelineStatus {
  /** Files only: sidecars (.error.json) and the loader's work files are not counted. */
  readonly files: FileCounts;
  /** The connector's staged pages and assembled parts not yet published, per entity. */
  readonly staged: Record<Entity, number>;
  /** Files in failed/ now (a replayed one has left), newest first, with the sidecar's reason. */
  readonly failed: readonly FailedFile[];
  /** Absent when there is no warehouse yet. */
  readonly warehouse: WarehouseStatus | undefined;
}

const SHOWN_FAILURES = 10;

/**
 * Files per state (from the bucket: what is there now) and rows, orphans, rejects, last runs
 * (from the warehouse, or from what a running process last wrote of them). Reads only.
 */
export async function status(ports: {
  readonly store: ObjectStore;
  readonly work?: ObjectStore | undefined;
  readonly warehouse: Pick<Warehouse, 'status'> | WarehouseStatus | undefined;
}): Promise<PipelineStatus> {
  const files = {} as FileCounts;
  const staged = {} as Record<Entity, number>;
  const failedObjects: ObjectInfo[] = [];
  for (const entity of ENTITIES) {
    const counts = Object.fromEntries(FILE_STATES.map((s) => [s, 0])) as FileCounts[Entity];
    const listed = await ports.store.list(`${entity}/`);
    const keys = new Set(listed.map((o) => o.key));
    for (const object of listed) {
      const key = parseObjectKey(object.key);
      if (!key || key.state === 'staging') continue; // staging lives in the work area, not here
      if (isCompanion(object.key, keys)) continue; // a sidecar or rows file, beside its file
      counts[key.state]++;
      if (key.state === 'failed') failedObjects.push(object);
    }
    // The connector's staged pages and parts, in its work area.
    staged[entity] = 0;
    for (const object of ports.work ? await ports.work.list(`${entity}/staging/runs/`) : []) {
      if (object.key.includes('/parts/') || object.key.includes('/pages/')) staged[entity]++;
    }
    files[entity] = counts;
  }
  failedObjects.sort((a, b) => b.updated.getTime() - a.updated.getTime());
  const failed: FailedFile[] = [];
  for (const object of failedObjects.slice(0, SHOWN_FAILURES)) {
    let reason = 'no sidecar';
    try {
      reason = String(
        (
          JSON.parse((await ports.store.read(errorSidecarKey(object.key))).toString('utf8')) as {
            reason?: unknown;
          }
        ).reason ?? reason,
      );
    } catch {
      // no sidecar (written by hand, or removed): the file itself is still listed
    }
    failed.push({ object: object.key, reason, failedAt: object.updated.toISOString() });
  }
  const source = ports.warehouse;
  const warehouse = source === undefined ? undefined : 'status' in source ? await source.status() : source;
  return { files, staged, failed, warehouse };
}
