import type { BigQuery, Job } from '@google-cloud/bigquery';
import { type RawLoadJob, rawLoadJob } from '../../core/bigquery-load.js';
import type { Entity } from '../../core/entities.js';
import { describeError, TerminalError, TransientError } from '../../core/errors.js';
import { ALL_TABLES } from '../../core/schema.js';
import type { Clock } from '../../ports/clock.js';
import type {
  ConnectorRunRecord,
  FileOutcome,
  RawLoad,
  RawLoadResult,
  StepCounts,
  Warehouse,
  WarehouseStatus,
} from '../../ports/warehouse.js';
import { connectorRunFromRow, fileOutcomeFromRow } from '../common/ops-rows.js';
import { bigQueryScript } from './sql-files.js';

/** Failure reasons of BigQuery jobs and API calls that another try can cure. */
const TRANSIENT_REASONS = new Set([
  'backendError',
  'rateLimitExceeded',
  'internalError',
  'jobRateLimitExceeded',
  'jobBackendError',
]);
const TRANSIENT_MESSAGE =
  /concurrent update|could not serialize access|try again|ECONNRESET|ETIMEDOUT|socket hang up/i;

/** A BigQuery client error, or a job's errorResult, as TransientError or TerminalError. */
export function classifyBigQueryError(what: string, error: unknown): TransientError | TerminalError {
  const e = error as { code?: unknown; errors?: { reason?: string }[]; reason?: string; message?: string };
  const code = Number(e?.code);
  const reason = e?.reason ?? e?.errors?.[0]?.reason;
  // A job's errorResult is a plain { reason, message } object, not an Error.
  const detail =
    error instanceof Error
      ? describeError(error)
      : `${e?.message ?? JSON.stringify(error)}${reason ? ` (${reason})` : ''}`;
  const message = `${what}: ${detail}`;
  const transient =
    code === 429 ||
    code >= 500 ||
    (reason !== undefined && TRANSIENT_REASONS.has(reason)) ||
    TRANSIENT_MESSAGE.test(message);
  return transient
    ? new TransientError(message, { cause: error })
    : new TerminalError(message, { cause: error });
}

/** Timestamp parameters of the scripts (everything else is a STRING), as the workflow sends them. */
const TIMESTAMP_PARAMS = new Set([
  'now',
  'started_at',
  'loaded_at',
  'settled_at',
  'finished_at',
  'before',
  'seen_at',
]);

interface Options {
  readonly projectId: string;
  readonly location: string;
  /** The pipeline bucket (the loader's rows files are loaded from it). */
  readonly bucket: string;
  /** sql/bigquery/ */
  readonly sqlDir: string;
  readonly clock: Clock;
  /** How long to wait between polls of a running job. */
  readonly pollMs?: number;
}

/**
 * BigQuery as the warehouse. Raw loading is a load job whose id derives from object name +
 * generation (core/bigquery-load.ts): a second submission of the same id answers 409 and the
 * existing job's outcome is used; a job that failed transiently is retried under the next
 * suffix (`_2`, `_3`, ...), so ids stay deterministic. Bookkeeping goes through parameterised
 * DML on the ops tables. The BigQuery client comes from the caller.
 */
export class BigQueryWarehouse implements Warehouse {
  constructor(
    private readonly bigquery: BigQuery,
    private readonly options: Options,
  ) {}

  private async query(
    what: string,
    sql: string,
    params: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>[]> {
    // TIMESTAMP parameters go as BigQueryTimestamp values: a string with a TIMESTAMP type would be
    // sent as NULL by the client. Everything else is typed explicitly.
    const values: Record<string, unknown> = {};
    const types: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(params)) {
      if (TIMESTAMP_PARAMS.has(name)) {
        values[name] = this.bigquery.timestamp(String(value));
        continue;
      }
      values[name] = value;
      types[name] =
        typeof value === 'number'
          ? 'INT64'
          : typeof value === 'boolean'
            ? 'BOOL'
            : Array.isArray(value)
              ? ['STRING']
              : 'STRING';
    }
    try {
      const [rows] = await this.bigquery.query({
        query: sql,
        params: values,
        types,
        location: this.options.location,
        labels: { pipeline: 'retail-pipeline' },
      });
      return rows as Record<string, unknown>[];
    } catch (error) {
      throw classifyBigQueryError(what, error);
    }
  }

  async loadRaw(load: RawLoad): Promise<RawLoadResult> {
    for (let attempt = 1; attempt <= 5; attempt++) {
      const job = rawLoadJob({
        projectId: this.options.projectId,
        location: this.options.location,
        bucket: this.options.bucket,
        entity: load.entity,
        loadId: attempt === 1 ? load.loadId : `${load.loadId}#${attempt}`,
        rowsKey: load.rowsKey,
      });
      const outcome = await this.submitLoad(job, load);
      if (outcome === 'retry-next-id') continue;
      await this.recordLoad(load, outcome.rows);
      return { rows: outcome.rows, alreadyLoaded: outcome.existed, loadedAt: load.loadedAt };
    }
    throw new TransientError(`loading ${load.objectName}: the load job kept failing transiently`);
  }

  /** Submits (or finds) the load job and waits for it; a failed transient job asks for the next id. */
  private async submitLoad(
    job: RawLoadJob,
    load: RawLoad,
  ): Promise<{ rows: number; existed: boolean } | 'retry-next-id'> {
    let handle: Job;
    let existed = false;
    try {
      [handle] = await this.bigquery.createJob({
        jobId: job.jobReference.jobId,
        location: job.jobReference.location,
        configuration: job.configuration,
      });
    } catch (error) {
      if (Number((error as { code?: unknown }).code) !== 409)
        throw classifyBigQueryError(`loading ${load.objectName}`, error);
      existed = true;
      handle = this.bigquery.job(job.jobReference.jobId, { location: job.jobReference.location });
    }
    const metadata = await this.waitFor(handle, `loading ${load.objectName}`);
    const failure = metadata.status?.errorResult;
    if (failure) {
      const classified = classifyBigQueryError(`loading ${load.objectName}`, failure);
      if (classified instanceof TransientError) return 'retry-next-id';
      throw classified;
    }
    return { rows: Number(metadata.statistics?.load?.outputRows ?? load.rowCount), existed };
  }

  private async waitFor(
    job: Job,
    what: string,
  ): Promise<{
    status?: { state?: string; errorResult?: unknown };
    statistics?: { load?: { outputRows?: string } };
  }> {
    for (;;) {
      let metadata: {
        status?: { state?: string; errorResult?: unknown };
        statistics?: { load?: { outputRows?: string } };
      };
      try {
        [metadata] = await job.getMetadata();
      } catch (error) {
        throw classifyBigQueryError(what, error);
      }
      if (metadata.status?.state === 'DONE') return metadata;
      await this.options.clock.sleep(this.options.pollMs ?? 1000);
    }
  }

  private async recordLoad(load: RawLoad, rows: number): Promise<void> {
    await this.query(
      `recording the load of ${load.objectName}`,
      `MERGE ops.loads AS l
       USING (SELECT @load_id AS load_id) AS n ON l.load_id = n.load_id
       WHEN NOT MATCHED THEN INSERT (load_id, entity, object_name, generation, loaded_at, row_count, max_sale_id)
         VALUES (@load_id, @entity, @object, @generation, @loaded_at, @rows, SAFE_CAST(@max AS INT64))`,
      {
        load_id: load.loadId,
        entity: load.entity,
        object: load.objectName,
        generation: load.generation,
        loaded_at: load.loadedAt.toISOString(),
        rows,
        max: load.maxSaleId === undefined ? '' : load.maxSaleId.toString(),
      },
    );
  }

  async runStep(step: string, params: Readonly<Record<string, string>>): Promise<StepCounts> {
    let sql: string;
    try {
      sql = bigQueryScript(this.options.sqlDir, `${step}.sql`);
    } catch {
      throw new TerminalError(`no SQL step "${step}" in ${this.options.sqlDir}`);
    }
    const [row] = await this.query(`running ${step}`, sql, params);
    return Object.fromEntries(Object.entries(row ?? {}).map(([k, v]) => [k, Number(v)]));
  }

  async recordFile(outcome: FileOutcome): Promise<void> {
    await this.query(
      `recording ${outcome.objectName}`,
      // One row per file (name and generation): settling again after a crash replaces it.
      `MERGE ops.files AS f
       USING (SELECT @object AS object_name, @generation AS generation) AS n
       ON f.object_name = n.object_name AND f.generation = n.generation
       WHEN MATCHED THEN UPDATE SET entity = @entity, state = @state, settled_object = @settled,
         row_count = SAFE_CAST(@rows AS INT64), reason = NULLIF(@reason, ''), settled_at = @settled_at
       WHEN NOT MATCHED THEN INSERT (object_name, generation, entity, state, settled_object, row_count, reason, settled_at)
         VALUES (@object, @generation, @entity, @state, @settled, SAFE_CAST(@rows AS INT64), NULLIF(@reason, ''), @settled_at)`,
      {
        object: outcome.objectName,
        generation: outcome.generation,
        entity: outcome.entity,
        state: outcome.state,
        settled: outcome.settledObject,
        rows: outcome.rowCount === undefined ? '' : String(outcome.rowCount),
        reason: outcome.reason ?? '',
        settled_at: outcome.settledAt.toISOString(),
      },
    );
  }

  async recordConnectorRun(run: ConnectorRunRecord): Promise<void> {
    await this.query(
      `recording connector run ${run.runId}`,
      `INSERT INTO ops.connector_runs (run_id, entity, finished_at, resumed, start_sales_id, pages_fetched, pages_reused, records, files)
       VALUES (@run_id, @entity, @finished_at, @resumed, SAFE_CAST(@start AS INT64), @fetched, @reused, @records, @files)`,
      {
        run_id: run.runId,
        entity: run.entity,
        finished_at: run.finishedAt.toISOString(),
        resumed: run.resumed,
        start: run.startSalesId ?? '',
        fetched: run.pagesFetched,
        reused: run.pagesReused,
        records: run.records,
        files: [...run.files],
      },
    );
  }

  async unseenFields(entity: Entity, fields: readonly string[]): Promise<string[]> {
    const rows = await this.query(
      'reading the fields seen so far',
      `SELECT f FROM UNNEST(@fields) AS f
       WHERE f NOT IN (SELECT field FROM ops.schema_fields WHERE entity = @entity)
       ORDER BY f`,
      { entity, fields: [...fields] },
    );
    return rows.map((r) => String(r.f));
  }

  async recordFields(
    entity: Entity,
    fields: readonly string[],
    objectName: string,
    seenAt: Date,
  ): Promise<void> {
    await this.query(
      'recording new fields',
      `MERGE INTO ops.schema_fields AS t
       USING (SELECT f FROM UNNEST(@fields) AS f) AS s
       ON t.entity = @entity AND t.field = s.f
       WHEN NOT MATCHED THEN INSERT (entity, field, first_seen, first_object)
         VALUES (@entity, s.f, @seen_at, @object)`,
      { entity, fields: [...fields], seen_at: seenAt.toISOString(), object: objectName },
    );
  }

  async unmergedEntities(loadedBefore?: Date): Promise<Entity[]> {
    const rows = await this.query(
      'reading unmerged loads',
      // Keys queued for the mart and not carried (a mart step that failed after its ods step)
      // are healed by a sales merge, whose last step is the mart's.
      `SELECT DISTINCT entity FROM ops.loads
       WHERE (merged_at IS NULL OR mart_at IS NULL) AND loaded_at < @before
       UNION DISTINCT
       SELECT 'sales' FROM ops.mart_queue WHERE queued_at < @before
       ORDER BY entity`,
      { before: (loadedBefore ?? new Date('9999-12-31T00:00:00Z')).toISOString() },
    );
    return rows.map((r) => r.entity as Entity);
  }

  async maxSaleId(): Promise<bigint | undefined> {
    const [row] = await this.query(
      'reading the sales watermark',
      "SELECT CAST(MAX(max_sale_id) AS STRING) AS max FROM ops.loads WHERE entity = 'sales'",
    );
    return row?.max === null || row?.max === undefined ? undefined : BigInt(String(row.max));
  }

  async status(): Promise<WarehouseStatus> {
    const tables = [];
    for (const table of ALL_TABLES) {
      // Table metadata is free; a COUNT(*) would be a query.
      try {
        const [metadata] = await this.bigquery.dataset(table.dataset).table(table.name).getMetadata();
        tables.push({
          table: `${table.dataset}.${table.name}`,
          rows: Number((metadata as { numRows?: string }).numRows ?? 0),
        });
      } catch (error) {
        throw classifyBigQueryError(`reading ${table.dataset}.${table.name}`, error);
      }
    }
    const grouped = async (what: string, sql: string) =>
      Object.fromEntries((await this.query(what, sql)).map((r) => [String(r.k), Number(r.n)]));
    const runs = await this.query(
      'reading connector runs',
      `SELECT run_id, entity, finished_at, resumed, CAST(start_sales_id AS STRING) AS start, pages_fetched, pages_reused, records, files
       FROM ops.connector_runs WHERE finished_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)
       ORDER BY finished_at DESC LIMIT 6`,
    );
    const files = await this.query(
      'reading settled files',
      `SELECT object_name, generation, entity, state, settled_object, row_count, reason, settled_at
       FROM ops.files WHERE settled_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)
       ORDER BY settled_at DESC LIMIT 10`,
    );
    const time = (v: unknown) => new Date(String((v as { value?: string })?.value ?? v));
    return {
      tables,
      orphans: await grouped(
        'reading orphans',
        'SELECT reason AS k, COUNT(*) AS n FROM dmt.sales_items_orphans GROUP BY 1 ORDER BY 1',
      ),
      rejects: await grouped(
        'reading rejects',
        'SELECT entity AS k, COUNT(*) AS n FROM ods.rejects GROUP BY 1 ORDER BY 1',
      ),
      lastRuns: runs.map((r) => connectorRunFromRow(r, time)),
      lastFiles: files.map((r) => fileOutcomeFromRow(r, time)),
    };
  }
}
