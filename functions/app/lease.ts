import { describeError, LeaseHeldError, PreconditionFailedError } from '../core/errors.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { ObjectStore } from '../ports/object-store.js';

/** Who is running: enough to tell a crashed holder from a live one. */
export interface Holder {
  readonly owner: string;
  readonly host: string;
  readonly pid: number;
  /** When the process started, as the host tells it (pid numbers are reused; a start time is not). */
  readonly started?: string | undefined;
  /**
   * `false` when the holder is known dead (same host: no such process, a zombie, or another
   * process that reused its pid since `started`); `undefined` when unknowable.
   */
  isAlive(host: string, pid: number, started: string | undefined): boolean | undefined;
}

interface LeaseRecord {
  owner: string;
  host: string;
  pid: number;
  started?: string | undefined;
  acquiredAt: string;
  expiresAt: string;
}

/**
 * A lease kept as an object with generation preconditions, so that two connector runs of the
 * same entity (an overlapping schedule, a manual run) never work on the same staging area. A
 * holder that crashed is recognised at once on the same host and after `ttlMs` elsewhere.
 */
export class Lease {
  /** Leases this process holds now, for a process that must exit before its work ends. */
  private static readonly held = new Set<Lease>();

  /** Releases every lease this process holds, waiting at most `withinMs`. */
  static async releaseAll(withinMs: number): Promise<void> {
    const all = Promise.all([...Lease.held].map((lease) => lease.release()));
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, withinMs).unref())]);
  }

  private generation: string;
  private timer: NodeJS.Timeout | undefined;
  private lostError: Error | undefined;

  private constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    private readonly record: LeaseRecord,
    generation: string,
    private readonly ttlMs: number,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.generation = generation;
  }

  static async acquire(options: {
    store: ObjectStore;
    key: string;
    what: string;
    holder: Holder;
    ttlMs: number;
    clock: Clock;
    logger: Logger;
  }): Promise<Lease> {
    const { store, key, holder, ttlMs, clock } = options;
    for (let attempt = 0; attempt < 3; attempt++) {
      const now = clock.now();
      const record: LeaseRecord = {
        owner: holder.owner,
        host: holder.host,
        pid: holder.pid,
        ...(holder.started ? { started: holder.started } : {}),
        acquiredAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
      };
      try {
        const info = await store.write(key, JSON.stringify(record), { ifGenerationMatch: '0' });
        const lease = new Lease(store, key, record, info.generation, ttlMs, clock, options.logger);
        lease.startRenewing();
        Lease.held.add(lease);
        return lease;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
      }
      const existing = await store.stat(key);
      if (!existing) continue;
      let current: LeaseRecord;
      try {
        current = JSON.parse((await store.read(key)).toString('utf8')) as LeaseRecord;
      } catch {
        continue; // released between stat and read
      }
      const expired = Date.parse(current.expiresAt) <= now.getTime();
      const dead = holder.isAlive(current.host, current.pid, current.started) === false;
      if (!expired && !dead) {
        throw new LeaseHeldError(
          `${options.what} is already running (${current.owner} on ${current.host}, pid ${current.pid}, since ${current.acquiredAt}); try again when it ends or after ${current.expiresAt}`,
        );
      }
      options.logger.log('WARNING', `taking over the lease of a stopped ${options.what}`, {
        previousOwner: current.owner,
        previousHost: current.host,
        reason: dead ? 'process gone' : 'lease expired',
      });
      await store.delete(key, { ifGenerationMatch: existing.generation }).catch((error: unknown) => {
        if (!(error instanceof PreconditionFailedError)) throw error;
      });
    }
    throw new LeaseHeldError(`could not take the lease ${key}: it keeps changing hands`);
  }

  /** Throws if the lease was lost (renewal failed): the holder must stop writing. */
  assertHeld(): void {
    if (this.lostError) throw this.lostError;
  }

  async release(): Promise<void> {
    Lease.held.delete(this);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.lostError) return;
    await this.store.delete(this.key, { ifGenerationMatch: this.generation }).catch((error: unknown) => {
      this.logger.log('WARNING', 'could not release the lease', { reason: describeError(error) });
    });
  }

  private startRenewing(): void {
    this.timer = setInterval(() => void this.renew(), Math.max(1000, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    const expiresAt = new Date(this.clock.now().getTime() + this.ttlMs).toISOString();
    try {
      const info = await this.store.write(this.key, JSON.stringify({ ...this.record, expiresAt }), {
        ifGenerationMatch: this.generation,
      });
      this.generation = info.generation;
    } catch (error) {
      if (error instanceof PreconditionFailedError) {
        this.lostError = new LeaseHeldError(`lost the lease ${this.key} to another run`, { cause: error });
        if (this.timer) clearInterval(this.timer);
      } else {
        this.logger.log('WARNING', 'lease renewal failed; will try again', { reason: describeError(error) });
      }
    }
  }
}
