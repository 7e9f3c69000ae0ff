export type LogContext = Readonly<Record<string, unknown>>;

export const SEVERITIES = ['DEBUG', 'INFO', 'WARNING', 'ERROR'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface Logger {
  log(severity: Severity, message: string, context?: LogContext): void;
  /** A logger that adds `context` to every entry. */
  child(context: LogContext): Logger;
}
