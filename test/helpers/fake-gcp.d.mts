export interface RecordedRequest {
  seq: number;
  service: 'gcs' | 'bigquery';
  op: string;
  method: string;
  path: string;
  pathname: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: any;
  status: number;
  response: any;
}
export interface FailSpec {
  match: string | RegExp | ((r: RecordedRequest) => boolean);
  status?: number;
  reason?: string;
  message?: string;
  times?: number;
  afterHandling?: boolean;
  destroy?: boolean;
  delayMs?: number;
}
interface FakeBase {
  url: string;
  requests: RecordedRequest[];
  clientOptions(extra?: Record<string, unknown>): Record<string, any>;
  find(op: string | ((r: RecordedRequest) => boolean)): RecordedRequest[];
  last(op: string): RecordedRequest | undefined;
  clearRequests(): void;
  failNext(spec: FailSpec): void;
  stop(): Promise<void>;
}
export interface FakeGcs extends FakeBase {
  putObject(bucket: string, name: string, data: string | Buffer): any;
  getObject(bucket: string, name: string): { data: Buffer; resource: { generation: string } } | undefined;
  listObjects(bucket: string): string[];
  /** Make an object look `ms` older, as if it had waited that long. */
  backdate(bucket: string, name: string, ms: number): void;
  /** The object-finalize events so far (every object created or overwritten), in order. */
  finalized(bucket?: string): { bucket: string; name: string; generation: string }[];
}
export interface FakeBigQuery extends FakeBase {
  scriptJob(match: unknown, outcome: Record<string, unknown>, options?: { times?: number }): void;
  scriptQuery(match: unknown, outcome: Record<string, unknown>, options?: { times?: number }): void;
  jobs: Map<string, any>;
  tableRows(name: string): Record<string, unknown>[];
}
export interface FakeGcp {
  gcs: FakeGcs;
  bigquery: FakeBigQuery;
  requests: RecordedRequest[];
  clearRequests(): void;
  stop(): Promise<void>;
}
export function startFakeGcp(options?: {
  gcs?: Record<string, unknown>;
  bigquery?: Record<string, unknown>;
}): Promise<FakeGcp>;
export const NO_AUTH: Record<string, unknown>;
export const NO_RETRY: Record<string, unknown>;
export function startFakeGcs(options?: Record<string, unknown>): Promise<FakeGcs>;
export function startFakeBigQuery(options?: Record<string, unknown>): Promise<FakeBigQuery>;
export function decodeQueryParameters(qp: unknown): Record<string, { type: string; value: unknown }>;
