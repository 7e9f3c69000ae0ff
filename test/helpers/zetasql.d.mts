export interface ZetaTable {
  columns: Record<string, string>;
  rows?: Record<string, unknown>[];
}
export type ZetaParams = Record<string, { type: string; value?: unknown }>;
export interface ZetaError {
  message: string;
  line?: number;
  column?: number;
}
export function startServer(options?: { port?: number }): Promise<{ pid: number; port: number }>;
export function stopServer(): Promise<void>;
export function analyze(
  sql: string,
  tables?: Record<string, ZetaTable>,
  params?: ZetaParams,
): Promise<{ statementKind?: string; columns?: { name: string; type: string }[]; error?: ZetaError }>;
export function evaluate(
  sql: string,
  tables?: Record<string, ZetaTable>,
  params?: ZetaParams,
): Promise<Record<string, unknown>[] & { columns: { name: string; type: string }[] }>;
