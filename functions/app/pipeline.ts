import { ENTITIES, type Entity } from '../core/entities.js';
import { ObjectNotFoundError, PreconditionFailedError, TerminalError, UsageError } from '../core/errors.js';
import {
  errorSidecarKey,
  inKey,
  isArrival,
  OBJECT_STATES,
  type ObjectState,
  parseObjectKey,
} from '../core/object-keys.js';
import type { ObjectStore } from '../ports/object-store.js';
import type { WarehouseStatus } from '../ports/warehouse.js';
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
  /** Merges run to catch up with loads a crash left unmerged. */
  readonly catchUpMerges: readonly Entity[];
}

/**
 * Loads every file waiting in `{entity}/in/` (first finishing claims an interrupted run left in
 * processing/), each through the same loader the Cloud Function runs, then merges whatever a
 * crash left unmerged. Call it only where no other loader runs (locally the warehouse lock holds).
 */
export async function processWaiting(
  ports: IngestPorts,
  settings: IngestSettings,
  entities: readonly Entity[] = ENTITIES,
): Promise<ProcessReport> {
  const outcomes: IngestOutcome[] = [...(await recoverClaims(ports, settings, entities))];
  for (const entity of entities) {
    for (const object of await ports.store.list(`${entity}/in/`)) {
      if (!isArrival(object.key)) continue;
      outcomes.push(
        await ingestObject(
          { bucket: ports.store.location, name: object.key, generation: object.generation },
          ports,
          settings,
        ),
      );
    }
  }
  const catchUpMerges: Entity[] = [];
  for (const entity of await ports.warehouse.unmergedEntities()) {
    if (!entities.includes(entity)) continue;
    catchUpMerges.push(entity);
    await ports.workflows.start({
      entity,
      object: `${entity}/in/`,
      generation: '',
      runId: ports.randomness.uuid(),
    });
  }
  return { outcomes, catchUpMerges };
}

export interface RunStep {
  readonly extract: ExtractReport;
  readonly processed: ProcessReport;
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
  for (const entity of entities) {
    const report = await extract({ entity }, ports.extract, settings.extract);
    const processed = await processWaiting(ports.ingest, settings.ingest, [entity]);
    const step = { extract: report, processed };
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
  if (
    !parsed ||
    (parsed.state !== 'failed' && parsed.state !== 'archive') ||
    object.endsWith('.error.json')
  ) {
    throw new UsageError(
      `replay takes a file under {entity}/failed/ or {entity}/archive/, e.g. sales/failed/2025/07/19/10h/x.json; not "${object}"`,
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

export type FileCounts = Record<Entity, Record<ObjectState, number>>;

export interface PipelineStatus {
  readonly files: FileCounts;
  readonly warehouse: WarehouseStatus;
}

/** Files per state (from the bucket) and rows, orphans, rejects, last runs (from the warehouse). */
export async function status(
  ports: Pick<IngestPorts, 'store' | 'warehouse'> & { readonly work?: ObjectStore | undefined },
): Promise<PipelineStatus> {
  const files = {} as FileCounts;
  for (const entity of ENTITIES) {
    const counts = Object.fromEntries(OBJECT_STATES.map((s) => [s, 0])) as Record<ObjectState, number>;
    for (const object of await ports.store.list(`${entity}/`)) {
      const key = parseObjectKey(object.key);
      if (!key || key.state === 'staging') continue; // staging lives in the work area, not here
      if (object.key.endsWith('.error.json') || object.key.endsWith('.rows.ndjson')) continue;
      counts[key.state]++;
    }
    // The connector's staged pages and parts, in its work area.
    for (const object of ports.work ? await ports.work.list(`${entity}/staging/runs/`) : []) {
      if (object.key.includes('/parts/') || object.key.includes('/pages/')) counts.staging++;
    }
    files[entity] = counts;
  }
  return { files, warehouse: await ports.warehouse.status() };
}
