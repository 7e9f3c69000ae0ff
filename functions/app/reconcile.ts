import { ENTITIES, type Entity } from '../core/entities.js';
import { ClaimHeldError, describeError } from '../core/errors.js';
import { CLAIM_STALE_AFTER_MS } from '../core/loader-limits.js';
import { claimsAmong, isWaiting } from '../core/object-keys.js';
import { settledFor } from '../ports/object-store.js';
import {
  finishClaim,
  type IngestOutcome,
  type IngestPorts,
  type IngestSettings,
  ingestObject,
} from './ingest-object.js';
import { publish } from './publish.js';

/**
 * How old a piece of work must be before the reconciler calls it lost. Each threshold is longer
 * than the normal path can take, so the reconciler never competes with a delivery that is still
 * working (and when it does, the claim's generation precondition lets only one of them proceed).
 */
export interface ReconcileSettings {
  /** A claim in processing/ older than this was left by a delivery that stopped (the loader's timeout plus a margin). */
  readonly claimStaleAfterMs: number;
  /** A load still unmerged this long after it was loaded lost its merge start. */
  readonly unmergedAfterMs: number;
  /**
   * A file waiting in `{entity}/in/` this long lost its event. Eventarc redelivers a failing event
   * with a backoff of 10 s growing to 600 s and discards it after the 24-hour message retention
   * (https://cloud.google.com/eventarc/docs/retry-events); a file that waits this long while its
   * deliveries fail is taken here too, and whichever claims it first loads it.
   */
  readonly arrivalLostAfterMs: number;
}

export const DEFAULT_RECONCILE_SETTINGS: ReconcileSettings = Object.freeze({
  claimStaleAfterMs: CLAIM_STALE_AFTER_MS,
  unmergedAfterMs: 15 * 60_000,
  arrivalLostAfterMs: 30 * 60_000,
});

/**
 * Where no other loader can run (the local runtime holds the warehouse for the whole command),
 * nothing is too young to heal.
 */
export const EXCLUSIVE_RECONCILE_SETTINGS: ReconcileSettings = Object.freeze({
  claimStaleAfterMs: 0,
  unmergedAfterMs: 0,
  arrivalLostAfterMs: 0,
});

export const HEAL_ACTIONS = ['claim.finished', 'arrival.loaded', 'merge.started'] as const;
export type HealAction = (typeof HEAL_ACTIONS)[number];

export interface HealedItem {
  readonly action: HealAction;
  readonly entity: Entity;
  /** The file (as it arrived in in/), or `{entity}/in/` for a merge. */
  readonly object: string;
  /** How long it had waited. */
  readonly ageSeconds: number;
  /** loaded, failed (settled in failed/), or started (a merge). */
  readonly outcome: 'loaded' | 'failed' | 'started';
  readonly settledObject?: string | undefined;
}

export interface StuckItem {
  readonly action: HealAction;
  readonly entity: Entity;
  readonly object: string;
  readonly ageSeconds: number;
  readonly reason: string;
}

export interface ReconcileReport {
  readonly healed: readonly HealedItem[];
  readonly stuck: readonly StuckItem[];
  /** Items found in progress elsewhere (a younger claim, or one another reconciler took over). */
  readonly busy: number;
  /** Every outcome of the files it loaded or settled (for exit codes: a file sent to failed/). */
  readonly outcomes: readonly IngestOutcome[];
}

/**
 * The reconciler: one pass that converges whatever events missed, the same use case on both
 * runtimes (a Cloud Run Job on a schedule in production, `retail-pipeline reconcile` locally).
 *   1. finishes claims left in processing/ longer than a delivery can run;
 *   2. loads files waiting in in/ longer than their event should take (a lost event, a trigger
 *      misconfigured, Eventarc's 24 hours of retries over);
 *   3. starts the merge of entities whose loads stayed unmerged.
 * Each healed item is published (`reconcile.healed`) and logged once with `event:
 * reconcile.healed`; what it could not heal is logged with `event: reconcile.stuck` (an alert
 * watches it) and tried again by the next pass. Two reconcilers, or a reconciler and a loader,
 * never load a file twice: a file is claimed by a generation-pinned move, a stale claim taken
 * over by a generation-pinned rewrite, and the load job's id is the file's name and generation.
 */
export async function reconcile(
  ports: IngestPorts,
  ingest: IngestSettings,
  settings: ReconcileSettings,
  entities: readonly Entity[] = ENTITIES,
): Promise<ReconcileReport> {
  const healed: HealedItem[] = [];
  const stuck: StuckItem[] = [];
  const outcomes: IngestOutcome[] = [];
  let busy = 0;
  const now = () => ports.clock.now().getTime();
  const ingestSettings = { ...ingest, claimStaleAfterMs: settings.claimStaleAfterMs };

  async function heal(
    action: HealAction,
    entity: Entity,
    object: string,
    ageMs: number,
    work: () => Promise<IngestOutcome | 'started' | undefined>,
  ): Promise<void> {
    const ageSeconds = Math.round(ageMs / 1000);
    let result: IngestOutcome | 'started' | undefined;
    try {
      result = await work();
    } catch (error) {
      if (error instanceof ClaimHeldError) {
        busy++;
        return;
      }
      const item: StuckItem = { action, entity, object, ageSeconds, reason: describeError(error) };
      stuck.push(item);
      ports.logger.log('ERROR', `could not heal: ${action}`, { event: 'reconcile.stuck', ...item, error });
      return;
    }
    if (
      result === undefined ||
      (result !== 'started' && (result.status === 'duplicate' || result.status === 'ignored'))
    ) {
      busy++; // finished by someone else meanwhile
      return;
    }
    if (result !== 'started') outcomes.push(result);
    const item: HealedItem =
      result === 'started'
        ? { action, entity, object, ageSeconds, outcome: 'started' }
        : result.status === 'loaded'
          ? { action, entity, object, ageSeconds, outcome: 'loaded', settledObject: result.archivedObject }
          : {
              action,
              entity,
              object,
              ageSeconds,
              outcome: 'failed',
              settledObject: result.status === 'failed' ? result.failedObject : undefined,
            };
    healed.push(item);
    await publish(ports, { type: 'reconcile.healed', entity, object, data: { ...item } });
    ports.logger.log('WARNING', `healed: ${action}`, { event: 'reconcile.healed', ...item });
  }

  for (const entity of entities) {
    for (const { object, claim } of claimsAmong(await ports.store.list(`${entity}/processing/`))) {
      const age = now() - object.updated.getTime();
      if (age < settings.claimStaleAfterMs) continue;
      await heal('claim.finished', entity, `${entity}/in/${claim.name}`, age, () =>
        finishClaim(object.key, ports, ingestSettings),
      );
    }
    for (const object of await ports.store.list(`${entity}/in/`)) {
      const age = now() - object.updated.getTime();
      if (!isWaiting(object.key) || age < settings.arrivalLostAfterMs) continue;
      if (!settledFor(ports.store, object, ingest.quietMs ?? 0, ports.clock.now())) {
        busy++; // still being copied into a folder bucket: the next pass takes it
        continue;
      }
      await heal('arrival.loaded', entity, object.key, age, () =>
        ingestObject(
          { bucket: ports.store.location, name: object.key, generation: object.generation },
          ports,
          ingestSettings,
        ),
      );
    }
  }
  const loadedBefore = new Date(now() - settings.unmergedAfterMs);
  for (const entity of await ports.warehouse.unmergedEntities(loadedBefore)) {
    if (!entities.includes(entity)) continue;
    await heal('merge.started', entity, `${entity}/in/`, settings.unmergedAfterMs, async () => {
      await ports.workflows.start({
        entity,
        object: `${entity}/in/`,
        generation: '',
        runId: ports.randomness.uuid(),
      });
      return 'started';
    });
  }
  ports.logger.log(stuck.length ? 'ERROR' : 'INFO', 'reconcile finished', {
    event: 'reconcile.finished',
    healed: healed.length,
    stuck: stuck.length,
    busy,
  });
  return { healed, stuck, busy, outcomes };
}
