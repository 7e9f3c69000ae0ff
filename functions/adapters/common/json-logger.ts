import { describeError } from '../../core/errors.js';
import { type LogContext, type Logger, SEVERITIES, type Severity } from '../../ports/logger.js';

export type LogFormat = 'json' | 'text';

/**
 * One JSON object per line with `severity`, `message` and context: the shape Cloud Logging
 * parses from stdout/stderr. `text` is the same entry for a person at a terminal.
 */
export class JsonLogger implements Logger {
  constructor(
    private readonly write: (line: string) => void,
    private readonly options: { format: LogFormat; minSeverity: Severity },
    private readonly context: LogContext = {},
  ) {}

  log(severity: Severity, message: string, context?: LogContext): void {
    if (SEVERITIES.indexOf(severity) < SEVERITIES.indexOf(this.options.minSeverity)) return;
    const entry = { severity, message, time: new Date().toISOString(), ...this.context, ...context };
    if (this.options.format === 'json') {
      this.write(`${JSON.stringify(entry, bigintAsString)}\n`);
      return;
    }
    const extras = Object.entries({ ...this.context, ...context })
      .filter(([, v]) => v !== undefined)
      .map(
        ([k, v]) =>
          `${k}=${typeof v === 'string' ? v : v instanceof Error ? describeError(v) : JSON.stringify(v, bigintAsString)}`,
      )
      .join(' ');
    this.write(`${severity.padEnd(7)} ${message}${extras ? `  ${extras}` : ''}\n`);
  }

  child(context: LogContext): Logger {
    return new JsonLogger(this.write, this.options, { ...this.context, ...context });
  }
}

/**
 * Values as JSON: bigints as text, and an Error as its name, message and cause chain (never its
 * stack: one entry stays one line, and a stack says nothing to an operator).
 */
function bigintAsString(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return errorFields(value);
  return value;
}

export interface ErrorFields {
  readonly name: string;
  readonly message: string;
  readonly cause?: ErrorFields | string;
}

export function errorFields(error: Error, depth = 0): ErrorFields {
  const cause = error.cause;
  return {
    name: error.name,
    message: error.message,
    ...(cause === undefined || depth >= 5
      ? {}
      : { cause: cause instanceof Error ? errorFields(cause, depth + 1) : String(cause) }),
  };
}
