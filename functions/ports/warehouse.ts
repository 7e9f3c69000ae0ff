import type { Entity } from '../core/entities.js';

/** One landed file, normalised to raw rows (see core/raw-records.ts), to append to raw.{entity}. */
export interface RawLoad {
  readonly entity: Entity;
  /** `{object name}#{generation}`: a load with the same id is never appended twice. */
  readonly loadId: string;
  /** The object name as it arrived in `{entity}/in/`; becomes SYS_FILE_NAME. */
  readonly objectName: string;
  readonly generation: string;
  /** The normalised rows (newline-delimited JSON) in the bucket. */
  readonly rowsKey: string;
  readonly rowCount: number;
  readonly loadedAt: Date;
  readonly maxSaleId: bigint | undefined;
}

export interface RawLoadResult {
  readonly rows: number;
  /** True when this load id had been appended before (a redelivery or a resumed crash). */
  readonly alreadyLoaded: boolean;
  /** The SYS_DATE_CREATE the rows carry (the first load's time when already loaded). */
  readonly loadedAt: Date;
}

export interface FileOutcome {
  readonly objectName: string;
  readonly generation: string;
  readonly entity: Entity;
  readonly state: 'archived' | 'failed';
  readonly settledObject: string;
  readonly rowCount: number | undefined;
  readonly reason: string | undefined;
  readonly settledAt: Date;
}

export interface ConnectorRunRecord {
  readonly runId: string;
  readonly entity: Entity;
  readonly finishedAt: Date;
  /** Whether it continued a run a crash had interrupted. */
  readonly resumed: boolean;
  readonly startSalesId: string | undefined;
  /** Pages requested from the API by this invocation (each fetched whole once). */
  readonly pagesFetched: number;
  /** Pages a crashed earlier invocation had already made durable, reused here. */
  readonly pagesReused: number;
  readonly records: number;
  /** Files this invocation published into `{entity}/in/`. */
  readonly files: readonly string[];
}

/** Row counts a SQL step reports (its final SELECT). */
export type StepCounts = Readonly<Record<string, number>>;

export interface TableCount {
  readonly table: string;
  readonly rows: number;
}

export interface WarehouseStatus {
  readonly tables: readonly TableCount[];
  readonly orphans: Readonly<Record<string, number>>;
  readonly rejects: Readonly<Record<string, number>>;
  readonly lastRuns: readonly ConnectorRunRecord[];
  readonly lastFiles: readonly FileOutcome[];
}

/** The analytical warehouse: BigQuery in production, DuckDB locally. Same tables, same results. */
export interface Warehouse {
  loadRaw(load: RawLoad): Promise<RawLoadResult>;
  /**
   * Runs one script of sql/ (by name, e.g. `ods_sales`) with its named parameters (text; the
   * script casts them) and returns the counts its final SELECT reports.
   */
  runStep(step: string, params: Readonly<Record<string, string>>): Promise<StepCounts>;
  recordFile(outcome: FileOutcome): Promise<void>;
  recordConnectorRun(run: ConnectorRunRecord): Promise<void>;
  /** Of these field paths (kept in raw extras), the ones not recorded yet for the entity. */
  unseenFields(entity: Entity, fields: readonly string[]): Promise<string[]>;
  /** Records field paths as seen (ops.schema_fields); a path already there keeps its first sighting. */
  recordFields(entity: Entity, fields: readonly string[], objectName: string, seenAt: Date): Promise<void>;
  /**
   * Entities with loads whose merge has not run yet (a crash or a failed merge start left them);
   * with `loadedBefore`, only loads older than that count.
   */
  unmergedEntities(loadedBefore?: Date): Promise<Entity[]>;
  /** The largest valid sale id loaded so far (from the load ledger), or undefined. */
  maxSaleId(): Promise<bigint | undefined>;
  status(): Promise<WarehouseStatus>;
}
