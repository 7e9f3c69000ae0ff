import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Clock, Randomness } from '../../ports/clock.js';

export class SystemClock implements Clock {
  now(): Date {
    return new Date();
  }
  async sleep(ms: number): Promise<void> {
    if (ms > 0) await delay(ms);
  }
}

export class CryptoRandomness implements Randomness {
  random(): number {
    return Math.random();
  }
  uuid(): string {
    return randomUUID();
  }
}
