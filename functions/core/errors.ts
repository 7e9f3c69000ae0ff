/**
 * Every failure the pipeline can name. `retryable` tells callers whether trying again can help:
 * the connector retries transient API faults, Eventarc redelivers when the loader throws a
 * transient error, and the CLI maps the class to an exit code.
 */
export abstract class PipelineError extends Error {
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Trying again later may succeed (429, 5xx, network reset, truncated body, timeout). */
export class TransientError extends PipelineError {
  readonly retryable = true;
  /** How long the other side asked us to wait (Retry-After), when it said. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number | undefined }) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * Another delivery (or the reconciler) holds the claim on this file and may still be working on
 * it: not an error of this delivery, which Eventarc delivers again later.
 */
export class ClaimHeldError extends TransientError {}

/** Trying again cannot help (401, 400, a malformed file, a bug). */
export class TerminalError extends PipelineError {
  readonly retryable = false;
}

/** A required setting is missing or malformed; the message names it. Exit code 2. */
export class ConfigError extends TerminalError {}

/** The command line is wrong. Exit code 2. */
export class UsageError extends TerminalError {}

/**
 * The command was asked to stop (SIGINT, SIGTERM) and stopped at a safe point: everything
 * written so far is durable and the next run resumes from it.
 */
export class StoppedError extends PipelineError {
  readonly retryable = false;
  constructor(readonly signalName: string) {
    super(`stopped by ${signalName}`);
  }
}

/** Throws StoppedError if `signal` asks to stop; the abort reason names the signal. */
export function throwIfStopped(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new StoppedError(String(signal.reason ?? 'a stop request'));
}

/** An object-store write or move lost a precondition race (object exists / generation moved on). */
export class PreconditionFailedError extends PipelineError {
  readonly retryable = false;
}

/** Another process holds the lease this work needs. */
export class LeaseHeldError extends TerminalError {}

/** The retries of one request are exhausted; carries the last transient cause. */
export class RetriesExhaustedError extends TerminalError {}

export function isRetryable(error: unknown): boolean {
  return error instanceof PipelineError ? error.retryable : false;
}

/** One line, for people: the message of the error and of its causes, never a stack. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    const text = current instanceof Error ? current.message : textOf(current);
    if (text && !parts.some((p) => p.includes(text))) parts.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': ').replace(/\s*\n\s*/g, ' ');
}

/** A thrown value that is not an Error (some clients reject with plain objects): its message, or its JSON. */
function textOf(value: unknown): string {
  if (typeof value !== 'object' || value === null) return String(value);
  const message = (value as { message?: unknown }).message;
  if (typeof message === 'string') return message;
  try {
    return JSON.stringify(value).slice(0, 300);
  } catch {
    return String(value);
  }
}

/** The object named does not exist (any more). */
export class ObjectNotFoundError extends TerminalError {}

/** A landed file cannot be loaded (malformed, empty, not UTF-8, too large): it goes to failed/. */
export class FileRejectedError extends TerminalError {
  constructor(
    message: string,
    readonly line?: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
