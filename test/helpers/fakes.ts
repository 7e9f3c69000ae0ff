import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Holder } from '../../functions/app/lease.js';
import type { Clock, Randomness } from '../../functions/ports/clock.js';
import type { LogContext, Logger, Severity } from '../../functions/ports/logger.js';
import type { ObjectStore } from '../../functions/ports/object-store.js';

export async function tempDir(
  prefix = 'retail-pipeline-',
): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

/** A clock whose sleeps return at once but are recorded. */
export class FakeClock implements Clock {
  readonly sleeps: number[] = [];
  constructor(private current = new Date('2025-07-19T10:15:00Z')) {}
  now(): Date {
    return new Date(this.current);
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.current = new Date(this.current.getTime() + ms);
  }
}

/** Ids stay unique across instances, as real UUIDs are. */
let uuidCounter = 0;

export class SeqRandomness implements Randomness {
  constructor(private readonly value = 0.5) {}
  random(): number {
    return this.value;
  }
  uuid(): string {
    uuidCounter++;
    return `00000000-0000-4000-8000-${String(uuidCounter).padStart(12, '0')}`;
  }
}

export interface LogEntry {
  severity: Severity;
  message: string;
  context: LogContext;
}

export class MemoryLogger implements Logger {
  constructor(
    readonly entries: LogEntry[] = [],
    private readonly context: LogContext = {},
  ) {}
  log(severity: Severity, message: string, context?: LogContext): void {
    this.entries.push({ severity, message, context: { ...this.context, ...context } });
  }
  child(context: LogContext): Logger {
    return new MemoryLogger(this.entries, { ...this.context, ...context });
  }
}

export const localHolderFake: Holder = {
  owner: 'test',
  host: 'test-host',
  pid: 1,
  isAlive: () => false,
};

/** Every record line in the files under `{entity}/in/`, in key order. */
export async function recordsIn(store: ObjectStore, prefix: string): Promise<string[]> {
  const lines: string[] = [];
  for (const o of await store.list(prefix)) {
    const text = (await store.read(o.key)).toString('utf8');
    for (const line of text.split('\n')) if (line) lines.push(line);
  }
  return lines;
}

/** The local event log of a pipeline home (`events.ndjson`), one event per line; none yet: []. */
export async function readEvents(
  home: string,
): Promise<{ type: string; object?: string; data: Record<string, unknown> }[]> {
  return (await readFile(join(home, 'events.ndjson'), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
