import type { Entity } from '../core/entities.js';
import {
  ClaimHeldError,
  describeError,
  FileRejectedError,
  ObjectNotFoundError,
  PipelineError,
  PreconditionFailedError,
  TransientError,
} from '../core/errors.js';
import {
  CLAIM_STALE_AFTER_MS,
  driftFieldPath,
  LOADER_MAX_LINE_CHARS,
  MAX_DRIFT_FIELDS,
  ROWS_BATCH_CHARS,
} from '../core/loader-limits.js';
import {
  archiveKey,
  baseName,
  claimKey,
  claimsAmong,
  errorSidecarKey,
  failedKey,
  inKey,
  isArrival,
  isLoadable,
  isShortenedName,
  isWaiting,
  NAME_TOO_LONG,
  nameTooLong,
  parseClaimKey,
  parseObjectKey,
  rowsKeyOf,
  shortenedName,
} from '../core/object-keys.js';
import { RecordShapeError, toRawRow } from '../core/raw-records.js';
import type { Clock, Randomness } from '../ports/clock.js';
import type { EventPublisher } from '../ports/events.js';
import type { Logger } from '../ports/logger.js';
import type { ObjectInfo, ObjectStore } from '../ports/object-store.js';
import type { Warehouse } from '../ports/warehouse.js';
import type { WorkflowStarter } from '../ports/workflows.js';
import { LineTooLongError, NotUtf8Error, objectLines } from './object-lines.js';
import { publish } from './publish.js';

/** The object-finalize event, as plain values (bucket, object name, generation). */
export interface FinalizeEvent {
  readonly bucket: string;
  readonly name: string;
  readonly generation: string;
}

export interface IngestPorts {
  readonly store: ObjectStore;
  readonly warehouse: Warehouse;
  readonly events: EventPublisher;
  readonly workflows: WorkflowStarter;
  readonly clock: Clock;
  readonly randomness: Randomness;
  readonly logger: Logger;
}

export interface IngestSettings {
  /** Larger files are rejected (and go to failed/). */
  readonly maxFileBytes: number;
  /**
   * A claim older than this was left by a delivery that is no longer running (default: the
   * loader's timeout plus a minute, see core/loader-limits.ts).
   */
  readonly claimStaleAfterMs?: number;
  /**
   * For those who take files from a folder bucket's `in/` (process, the local reconciler): a
   * file this process did not write is taken once unchanged this long (see settledFor).
   */
  readonly quietMs?: number;
}

export type IngestOutcome =
  | { readonly status: 'ignored'; readonly object: string; readonly reason: string }
  | { readonly status: 'duplicate'; readonly object: string }
  | {
      readonly status: 'loaded';
      readonly object: string;
      readonly archivedObject: string;
      readonly rows: number;
      readonly alreadyLoaded: boolean;
      /** Set when the file is loaded and archived but its merge could not run now (a later merge catches up). */
      readonly mergeError?: string;
    }
  | {
      readonly status: 'failed';
      readonly object: string;
      readonly failedObject: string;
      readonly reason: string;
    };

interface Claim {
  readonly entity: Entity;
  /** Its path under `{entity}/in/` (see claimKey); archive/ and failed/ take only its last part. */
  readonly name: string;
  readonly generation: string;
  /** The name it arrived under in `{entity}/in/` (raw SYS_FILE_NAME). */
  readonly objectName: string;
  readonly key: string;
}

/**
 * The loader: one function of (finalize event, ports), called by the Cloud Function and by the
 * local runtime alike. Claims the object (a generation-pinned move into processing/, so two
 * deliveries of one event cannot both proceed), loads it into raw all-or-nothing, settles it in
 * archive/ or failed/ (with a sidecar saying why), publishes the outcome and starts the merge.
 * Transient errors propagate (the platform retries; the claim is recovered); the same object and
 * generation is never appended to raw twice.
 */
export async function ingestObject(
  event: FinalizeEvent,
  ports: IngestPorts,
  settings: IngestSettings,
): Promise<IngestOutcome> {
  const parsed = parseObjectKey(event.name);
  // A file in a subfolder of in/ (its finalize event fires too: the trigger is on the whole
  // bucket, https://cloud.google.com/functions/docs/calling/storage) is not loaded, but not left
  // there either: it is claimed with its path, and goes to failed/ saying why, where replay puts
  // it back directly in in/.
  if (!parsed || !isWaiting(event.name))
    return { status: 'ignored', object: event.name, reason: 'not a file in {entity}/in/' };
  const pathInIn = event.name.slice(inKey(parsed.entity, '').length);
  // A name too long to be carried through processing/ and failed/ is claimed under a shortened
  // one, which settling always fails (see settleClaim): it is never stranded in in/.
  const claimName = nameTooLong(pathInIn) ? shortenedName(pathInIn) : pathInIn;
  const claim: Claim = {
    entity: parsed.entity,
    name: claimName,
    generation: event.generation,
    objectName: event.name,
    key: claimKey(parsed.entity, event.generation, claimName),
  };
  try {
    await ports.store.move(event.name, claim.key, {
      ifSourceGenerationMatch: event.generation,
      ifDestinationAbsent: true,
    });
  } catch (error) {
    if (error instanceof PreconditionFailedError || error instanceof ObjectNotFoundError) {
      return resumeOrDuplicate(event, claim, ports, settings);
    }
    throw error;
  }
  return settleClaim(claim, ports, settings);
}

/**
 * The object could not be claimed: it was claimed before. A claim of this very generation still
 * in processing/ means an earlier delivery did not finish it (a crash, a timeout, a transient
 * error after the claim): once it is older than any running delivery can be, this delivery takes
 * it over and finishes it — the same path as the reconciler — and removes the arrival a crash may
 * have left between the copy and the delete of the claim. A younger claim may still be in
 * progress: the delivery fails transiently (ClaimHeldError) so the platform delivers it again
 * later. No claim at all: the file was settled, and this delivery is a duplicate.
 */
async function resumeOrDuplicate(
  event: FinalizeEvent,
  claim: Claim,
  ports: IngestPorts,
  settings: IngestSettings,
): Promise<IngestOutcome> {
  const context = { object: event.name, generation: event.generation };
  const held = await ports.store.stat(claim.key);
  if (!held) {
    ports.logger.log('INFO', 'already settled by another delivery', { ...context, event: 'file.duplicate' });
    return { status: 'duplicate', object: event.name };
  }
  return finishHeldClaim(claim, held, ports, settings);
}

/**
 * Takes over a claim an earlier delivery left: only once it is stale, and atomically — the claim
 * is rewritten onto itself pinned to the generation found, so of two deliveries (or a delivery
 * and the reconciler) racing for it, exactly one wins; the other gets ClaimHeldError. The rewrite
 * also restarts the claim's age, so nobody else takes it over while the winner works. On GCS the
 * rewrite carries ifSourceGenerationMatch and ifGenerationMatch, and a request whose precondition
 * does not hold fails with 412 and changes nothing
 * (https://cloud.google.com/storage/docs/request-preconditions).
 */
async function takeOver(claim: Claim, held: ObjectInfo, ports: IngestPorts, settings: IngestSettings) {
  const age = ports.clock.now().getTime() - held.updated.getTime();
  const staleAfter = settings.claimStaleAfterMs ?? CLAIM_STALE_AFTER_MS;
  if (age < staleAfter) {
    throw new ClaimHeldError(
      `${claim.objectName} (generation ${claim.generation}) was claimed ${Math.round(age / 1000)} s ago by another delivery; trying again later`,
    );
  }
  try {
    await ports.store.copyTo(claim.key, ports.store, claim.key, { ifSourceGenerationMatch: held.generation });
  } catch (error) {
    if (error instanceof PreconditionFailedError || error instanceof ObjectNotFoundError) {
      throw new ClaimHeldError(
        `${claim.objectName} (generation ${claim.generation}) was taken over by another delivery`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  ports.logger.log('WARNING', 'resuming a claim an earlier delivery did not finish', {
    object: claim.objectName,
    generation: claim.generation,
    event: 'claim.resumed',
    claimAgeSeconds: Math.round(age / 1000),
  });
}

/**
 * Finishes a claim left in processing/ (the reconciler): takes it over once stale, then settles
 * it as if just claimed. Undefined when the key is not a claim.
 */
export async function finishClaim(
  key: string,
  ports: IngestPorts,
  settings: IngestSettings,
): Promise<IngestOutcome | undefined> {
  const parsed = parseClaimKey(key);
  if (!parsed) return undefined;
  const claim: Claim = { ...parsed, objectName: inKey(parsed.entity, parsed.name), key };
  const held = await ports.store.stat(key);
  if (!held) return { status: 'duplicate', object: claim.objectName };
  return finishHeldClaim(claim, held, ports, settings);
}

async function finishHeldClaim(
  claim: Claim,
  held: ObjectInfo,
  ports: IngestPorts,
  settings: IngestSettings,
): Promise<IngestOutcome> {
  await takeOver(claim, held, ports, settings);
  // A crash between the claim's copy and its delete left the arrival too: it goes with its claim.
  await ports.store
    .delete(claim.objectName, { ifGenerationMatch: claim.generation })
    .catch((error: unknown) => {
      if (!(error instanceof PreconditionFailedError)) throw error;
    });
  return settleClaim(claim, ports, settings);
}

/**
 * Claims left in processing/ by a loader that crashed; each is finished as if just claimed.
 * Only call it where no other loader can be working (locally: the warehouse is held by this process).
 */
export async function recoverClaims(
  ports: IngestPorts,
  settings: IngestSettings,
  entities: readonly Entity[],
) {
  const outcomes: IngestOutcome[] = [];
  for (const entity of entities) {
    for (const { object, claim: parsed } of claimsAmong(await ports.store.list(`${entity}/processing/`))) {
      ports.logger.log('WARNING', 'recovering a claim left by an interrupted load', { object: object.key });
      outcomes.push(
        await settleClaim(
          { ...parsed, objectName: inKey(entity, parsed.name), key: object.key },
          ports,
          settings,
        ),
      );
    }
  }
  return outcomes;
}

/**
 * Loads a claimed file and settles it. The order makes every step safe to repeat after a crash:
 * the bookkeeping (ops.files, the event, the merge start) comes before the claim leaves
 * processing/, so a crash anywhere leaves the claim, and finishing it again repeats idempotent
 * steps (the load job id and the ledger key are the object's name and generation; ops.files is
 * keyed on them; events are at least once). The move out of processing/ is the last step.
 */
async function settleClaim(
  claim: Claim,
  ports: IngestPorts,
  settings: IngestSettings,
): Promise<IngestOutcome> {
  const logger = ports.logger.child({
    entity: claim.entity,
    object: claim.objectName,
    generation: claim.generation,
  });
  // The claim's time stands for the load: a retry derives the very same rows (SYS_DATE_CREATE),
  // ledger entry and archive or failed/ folder, whatever the clock says then.
  const claimed = await ports.store.stat(claim.key);
  if (!claimed) throw new ClaimHeldError(`${claim.key} was settled by another delivery meanwhile`);
  const claimedAt = claimed.updated;
  if (isShortenedName(claim.name)) {
    // A claim finished after a crash knows only the shortened name, not the one it came from.
    const reason = nameTooLong(claim.objectName.slice(inKey(claim.entity, '').length)) ?? NAME_TOO_LONG;
    return fail(claim, claimed, ports, logger, new FileRejectedError(reason));
  }
  if (!isArrival(claim.objectName)) {
    return fail(
      claim,
      claimed,
      ports,
      logger,
      new FileRejectedError(
        `in a subfolder of ${claim.entity}/in/: only files directly in it are loaded; replay this file to load it`,
      ),
    );
  }
  if (!isLoadable(claim.objectName)) {
    return fail(claim, claimed, ports, logger, new FileRejectedError('only files ending .json are loaded'));
  }
  const rowsKey = rowsKeyOf(claim.key);
  let load: { rows: number; alreadyLoaded: boolean; loadedAt: Date };
  let extraFields: ReadonlySet<string> = new Set();
  try {
    const rows = await normalise(ports.store, claim, claimed, rowsKey, settings.maxFileBytes, claimedAt);
    extraFields = rows.extraFields;
    load = await ports.warehouse.loadRaw({
      entity: claim.entity,
      loadId: `${claim.objectName}#${claim.generation}`,
      objectName: claim.objectName,
      generation: claim.generation,
      rowsKey,
      rowCount: rows.count,
      loadedAt: claimedAt,
      maxSaleId: rows.maxSaleId,
    });
  } catch (error) {
    if (error instanceof PipelineError && !error.retryable) return fail(claim, claimed, ports, logger, error);
    throw error; // transient: the claim stays in processing/ and is finished by a retry or recovery
  }

  // The rows file goes before the claim does: a crash in between leaves the claim, whose recovery
  // derives the rows again and finds the load in the ledger; the other order would strand the
  // rows file in processing/ with no claim to lead anyone to it.
  await ports.store.delete(rowsKey);
  if (extraFields.size) await reportDrift(claim, [...extraFields], load.loadedAt, ports, logger);
  const archivedObject = await destinationFor(
    ports.store,
    claim,
    archiveKey(claim.entity, baseName(claim.name), load.loadedAt),
  );
  await ports.warehouse.recordFile({
    objectName: claim.objectName,
    generation: claim.generation,
    entity: claim.entity,
    state: 'archived',
    settledObject: archivedObject,
    rowCount: load.rows,
    reason: undefined,
    settledAt: ports.clock.now(),
  });
  await publish(ports, {
    type: 'file.loaded',
    entity: claim.entity,
    object: claim.objectName,
    data: {
      generation: claim.generation,
      rows: load.rows,
      archivedObject,
      alreadyLoaded: load.alreadyLoaded,
    },
  });
  let mergeError: string | undefined;
  try {
    await ports.workflows.start({
      entity: claim.entity,
      object: claim.objectName,
      generation: claim.generation,
      runId: ports.randomness.uuid(),
    });
  } catch (error) {
    // The rows are in raw and recorded as not merged: the next merge of this entity (or the
    // reconciler's) takes them.
    mergeError = describeError(error);
  }
  await moveOut(ports.store, claim, claimed, archivedObject);
  logger.log('INFO', 'file loaded', {
    event: 'file.loaded',
    rows: load.rows,
    archivedObject,
    alreadyLoaded: load.alreadyLoaded,
  });
  return {
    status: 'loaded',
    object: claim.objectName,
    archivedObject,
    rows: load.rows,
    alreadyLoaded: load.alreadyLoaded,
    ...(mergeError !== undefined ? { mergeError } : {}),
  };
}

/**
 * Fields the raw schema does not name are kept in raw's extras; the first file that carries one
 * announces it (schema.drift), so that someone extends the schema. The event goes before the
 * record: a crash in between announces it again (at least once), never not at all.
 */
async function reportDrift(
  claim: Claim,
  fields: readonly string[],
  loadedAt: Date,
  ports: IngestPorts,
  logger: Logger,
): Promise<void> {
  const unseen = await ports.warehouse.unseenFields(claim.entity, fields);
  if (!unseen.length) return;
  await publish(ports, {
    type: 'schema.drift',
    entity: claim.entity,
    object: claim.objectName,
    data: { generation: claim.generation, fields: unseen },
  });
  await ports.warehouse.recordFields(claim.entity, unseen, claim.objectName, loadedAt);
  logger.log('WARNING', `new fields kept in raw.${claim.entity}.extras: ${unseen.join(', ')}`, {
    event: 'schema.drift',
    fields: unseen,
  });
}

/**
 * Reads the claimed file, checks every line, and writes the raw rows next to it: exactly the raw
 * table's columns, SYS_DATE_CREATE and SYS_FILE_NAME included, so that BigQuery (a load job) and
 * DuckDB (read_json) append the same file as it is.
 */
async function normalise(
  store: ObjectStore,
  claim: Claim,
  info: ObjectInfo,
  rowsKey: string,
  maxFileBytes: number,
  loadedAt: Date,
): Promise<{ count: number; maxSaleId: bigint | undefined; extraFields: ReadonlySet<string> }> {
  const sys = { SYS_DATE_CREATE: loadedAt.toISOString(), SYS_FILE_NAME: claim.objectName };
  if (info.size > maxFileBytes) {
    throw new FileRejectedError(`the file is ${info.size} bytes, over the limit of ${maxFileBytes} bytes`);
  }
  let count = 0;
  let maxSaleId: bigint | undefined;
  const extraFields = new Set<string>();
  // The rows stream out as they are made, in batches of about 64 KiB: memory holds a batch and one
  // line, never the file. A rejection ends the stream early, so no rows object is left.
  async function* rows(): AsyncGenerator<Uint8Array> {
    let batch: string[] = [];
    let batched = 0;
    let lineNumber = 0;
    try {
      for await (const line of objectLines(store, claim.key, {
        strict: true,
        maxLineChars: LOADER_MAX_LINE_CHARS,
      })) {
        lineNumber++;
        if (!line.trim()) continue;
        const row = toRawRow(claim.entity, line.endsWith('\r') ? line.slice(0, -1) : line, lineNumber, sys);
        batch.push(row.json, '\n');
        batched += row.json.length + 1;
        count++;
        if (row.saleId !== undefined && (maxSaleId === undefined || row.saleId > maxSaleId))
          maxSaleId = row.saleId;
        // Bounded: a file of ever-new field names (a map sent as an object) names a few hundred.
        for (const field of row.extraFields)
          if (extraFields.size < MAX_DRIFT_FIELDS) extraFields.add(driftFieldPath(field));
        if (batched >= ROWS_BATCH_CHARS) {
          yield Buffer.from(batch.join(''));
          batch = [];
          batched = 0;
        }
      }
    } catch (error) {
      if (error instanceof RecordShapeError)
        throw new FileRejectedError(error.message, error.line, { cause: error });
      if (error instanceof NotUtf8Error)
        throw new FileRejectedError(`the file is ${error.message}`, error.line, { cause: error });
      if (error instanceof LineTooLongError) {
        throw new FileRejectedError(
          `line ${error.line} is longer than ${error.limit} characters, the loader's limit for one record`,
          error.line,
          { cause: error },
        );
      }
      throw error;
    }
    if (count === 0) throw new FileRejectedError('the file holds no records');
    if (batch.length) yield Buffer.from(batch.join(''));
  }
  await store.writeStream(rowsKey, rows());
  return { count, maxSaleId, extraFields };
}

/**
 * Where a claim settles: `wanted`, or `{generation}-{name}` beside it when `wanted` holds another
 * file (two files of one name settled in the same folder both stay). A destination that already
 * holds this claim's bytes is this claim's own copy, left by a move a crash cut short.
 */
async function destinationFor(store: ObjectStore, claim: Claim, wanted: string): Promise<string> {
  const cut = wanted.lastIndexOf('/') + 1;
  const alternative = `${wanted.slice(0, cut)}${claim.generation}-${wanted.slice(cut)}`;
  for (const candidate of [wanted, alternative]) {
    if (!(await store.stat(candidate)) || (await sameContent(store, claim.key, candidate))) return candidate;
  }
  throw new TransientError(`${wanted} and ${alternative} both hold other files; trying again later`);
}

/**
 * The last step of settling: the claim, at the generation this settle started from, moves to its
 * destination, create-only. A destination that exists already holds this claim's copy (see
 * destinationFor) when the bytes match: the claim only has to go. Otherwise another file took
 * the name meanwhile (or another delivery took the claim over), and a retry chooses again.
 */
async function moveOut(
  store: ObjectStore,
  claim: Claim,
  held: ObjectInfo,
  destination: string,
): Promise<void> {
  try {
    await store.move(claim.key, destination, {
      ifSourceGenerationMatch: held.generation,
      ifDestinationAbsent: true,
    });
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return; // moved by an earlier try whose answer was lost
    if (!(error instanceof PreconditionFailedError)) throw error;
    if (!(await sameContent(store, claim.key, destination))) {
      throw new TransientError(`${destination} was taken by another file meanwhile; trying again`, {
        cause: error,
      });
    }
    await store.delete(claim.key, { ifGenerationMatch: held.generation }).catch((e: unknown) => {
      if (!(e instanceof PreconditionFailedError)) throw e;
    });
  }
}

/** Whether two objects hold the same bytes (streamed; only on the rare path of a name taken). */
async function sameContent(store: ObjectStore, a: string, b: string): Promise<boolean> {
  const [infoA, infoB] = await Promise.all([store.stat(a), store.stat(b)]);
  if (!infoA || !infoB || infoA.size !== infoB.size) return false;
  const left = store.readStream(a)[Symbol.asyncIterator]();
  const right = store.readStream(b)[Symbol.asyncIterator]();
  let bufA: Buffer = Buffer.alloc(0);
  let bufB: Buffer = Buffer.alloc(0);
  try {
    for (;;) {
      if (bufA.length === 0) {
        const next = await left.next();
        if (!next.done) bufA = next.value;
      }
      if (bufB.length === 0) {
        const next = await right.next();
        if (!next.done) bufB = next.value;
      }
      if (bufA.length === 0 || bufB.length === 0) return bufA.length === bufB.length;
      const n = Math.min(bufA.length, bufB.length);
      if (!bufA.subarray(0, n).equals(bufB.subarray(0, n))) return false;
      bufA = bufA.subarray(n);
      bufB = bufB.subarray(n);
    }
  } finally {
    await left.return?.();
    await right.return?.();
  }
}

async function fail(
  claim: Claim,
  claimed: ObjectInfo,
  ports: IngestPorts,
  logger: Logger,
  error: unknown,
): Promise<IngestOutcome> {
  const reason = describeError(error);
  const line = error instanceof FileRejectedError ? error.line : undefined;
  const now = ports.clock.now();
  // The folder follows the claim's time, so a retry after a crash settles in the same place.
  const target = await destinationFor(
    ports.store,
    claim,
    failedKey(claim.entity, baseName(claim.name), claimed.updated),
  );
  await ports.store.write(
    errorSidecarKey(target),
    `${JSON.stringify(
      {
        object: claim.objectName,
        generation: claim.generation,
        entity: claim.entity,
        failedAt: now.toISOString(),
        reason,
        ...(line !== undefined ? { line } : {}),
        // A shortened name cannot be replayed into a load: the file needs a shorter name.
        ...(isShortenedName(claim.name) ? {} : { replay: `retail-pipeline replay ${target}` }),
      },
      null,
      2,
    )}\n`,
  );
  await ports.store.delete(rowsKeyOf(claim.key)); // before the claim moves (see settleClaim)
  await ports.warehouse.recordFile({
    objectName: claim.objectName,
    generation: claim.generation,
    entity: claim.entity,
    state: 'failed',
    settledObject: target,
    rowCount: undefined,
    reason,
    settledAt: now,
  });
  await publish(ports, {
    type: 'file.failed',
    entity: claim.entity,
    object: claim.objectName,
    data: {
      generation: claim.generation,
      failedObject: target,
      reason,
      ...(line !== undefined ? { line } : {}),
    },
  });
  await moveOut(ports.store, claim, claimed, target);
  logger.log('WARNING', 'file failed', { event: 'file.failed', failedObject: target, reason });
  return { status: 'failed', object: claim.objectName, failedObject: target, reason };
}
