const REDACTED = '[redacted]';

/**
 * A value that must never reach a log, an error, a file or an event. Every way of turning it
 * into text yields `[redacted]`; only `reveal()` gives the value, at the one place that sends it.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }
}
