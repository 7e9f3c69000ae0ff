export interface Clock {
  now(): Date;
  sleep(ms: number): Promise<void>;
}

/** Randomness the domain needs, passed in so tests can pin it. */
export interface Randomness {
  /** Uniform in [0, 1). */
  random(): number;
  uuid(): string;
}
