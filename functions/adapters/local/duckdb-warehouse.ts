import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { Entity } from '../../core/entities.js';
import { TerminalError, TransientError } from '../../core/errors.js';
import { LOADER_MAX_LINE_CHARS } from '../../core/loader-limits.js';
import { ALL_TABLES, DATASETS, duckDbDdl, duckDbType, RAW_TABLES, VIEWS } from '../../core/schema.js';
import { splitStatements } from '../../core/sql-script.js';
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

type Params = Record<string, string | number | boolean | null>;

export interface ListFilter {
  readonly entity?: string | undefined;
  readonly reason?: string | undefined;
  readonly file?: string | undefined;
  /** 0: all. */
  readonly limit: number;
}

/**
 * Where DuckDB reads a rows file from: the object's own path when the bucket is a folder, a
 * downloaded copy when it is not (a mixed composition: GCS bucket, DuckDB warehouse).
 */
export type RowsFile = (key: string) => Promise<{ path: string; release(): Promise<void> }>;

/** The warehouse file is held by another process (DuckDB allows one writer, and no reader beside it). */
export class WarehouseBusyError extends TerminalError {}

const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`;

/**
 * DuckDB as the warehouse: the schemas raw, ods, dmt and ops in one database file, the same
 * tables as BigQuery (rendered from core/schema.ts), the transformations of sql/duckdb/.
 * One connection; operations run one at a time, each SQL step in one transaction, so a crash
 * leaves either all of a step or none of it.
 */
/** Holds the longest row the loader writes (LOADER_MAX_LINE_CHARS UTF-16 units, 3 bytes each at most, plus the SYS columns). */
const DUCKDB_MAX_OBJECT_BYTES = 3 * LOADER_MAX_LINE_CHARS + 4096;

export class DuckDbWarehouse implements Warehouse {
  private queue: Promise<unknown> = Promise.resolve();
  /** An operation is running (between its first and its last call into DuckDB). */
  private running = false;
  private closing = false;

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    private readonly sqlDir: string,
    private readonly rowsFile: RowsFile,
  ) {}

  static async open(options: {
    path: string;
    sqlDir: string;
    rowsFile: RowsFile;
    /**
     * Open for reading only (status, rejects, orphans, sql): nothing can be written, files
     * outside the warehouse cannot be read or written (enable_external_access off, and the
     * configuration locked so a query cannot turn it back on). The file must exist.
     */
    readOnly?: boolean;
  }): Promise<DuckDbWarehouse> {
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(
        options.path,
        options.readOnly ? { access_mode: 'READ_ONLY', enable_external_access: 'false' } : {},
      );
    } catch (error) {
      const message = (error as Error).message;
      if (/lock/i.test(message)) {
        const holder = /PID (\d+)/.exec(message)?.[1];
        throw new WarehouseBusyError(
          `the warehouse ${options.path} is in use by another retail-pipeline process${holder ? ` (pid ${holder})` : ''}; wait for it to finish`,
        );
      }
      throw new TerminalError(`cannot open the warehouse ${options.path}: ${message.split('\n')[0]}`);
    }
    const connection = await instance.connect();
    const warehouse = new DuckDbWarehouse(instance, connection, options.sqlDir, options.rowsFile);
    if (options.readOnly) {
      await connection.run("SET TimeZone = 'UTC'");
      await connection.run('SET lock_configuration = true');
    } else await warehouse.bootstrap();
    return warehouse;
  }

  private async bootstrap(): Promise<void> {
    await this.connection.run("SET TimeZone = 'UTC'");
    for (const dataset of DATASETS) await this.connection.run(`CREATE SCHEMA IF NOT EXISTS ${dataset}`);
    for (const table of ALL_TABLES) await this.connection.run(duckDbDdl(table));
    for (const statement of splitStatements(
      await readFile(join(this.sqlDir, 'typing_functions.sql'), 'utf8'),
    )) {
      await this.connection.run(statement);
    }
    await this.upgrade();
    for (const view of VIEWS) {
      const [query] = splitStatements(await readFile(join(this.sqlDir, `${view.sqlFile}.sql`), 'utf8'));
      await this.connection.run(`CREATE OR REPLACE VIEW ${view.dataset}.${view.name} AS ${query}`);
    }
    await this.describe();
  }

  /**
   * The same descriptions as the BigQuery tables carry (core/schema.ts), as DuckDB comments
   * (COMMENT ON), so `duckdb_tables()` / `duckdb_columns()` and SQL tools show them. Only what
   * differs is written.
   */
  private async describe(): Promise<void> {
    const tables = new Map(
      (await this.rows("SELECT schema_name || '.' || table_name AS t, comment FROM duckdb_tables()")).map(
        (r) => [String(r.t), r.comment ?? null],
      ),
    );
    for (const row of await this.rows(
      "SELECT schema_name || '.' || view_name AS t, comment FROM duckdb_views() WHERE NOT internal",
    ))
      tables.set(String(row.t), row.comment ?? null);
    const columns = new Map(
      (
        await this.rows(
          "SELECT schema_name || '.' || table_name || '.' || column_name AS c, comment FROM duckdb_columns()",
        )
      ).map((r) => [String(r.c), r.comment ?? null]),
    );
    for (const table of [...ALL_TABLES, ...VIEWS]) {
      const name = `${table.dataset}.${table.name}`;
      const kind = VIEWS.some((v) => v === table) ? 'VIEW' : 'TABLE';
      if (tables.get(name) !== table.description)
        await this.connection.run(`COMMENT ON ${kind} ${name} IS ${literal(table.description)}`);
      for (const field of table.fields) {
        if (columns.get(`${name}.${field.name}`) === field.description) continue;
        await this.connection.run(
          `COMMENT ON COLUMN ${name}."${field.name}" IS ${literal(field.description)}`,
        );
      }
    }
  }

  /**
   * A warehouse written by an earlier version gains the columns added since (nullable: rows
   * already there have no value to give them). A mart from before it kept sale_id cannot be
   * followed by sale, so it is rebuilt from ods: its rows go, and every sale is queued for the
   * next mart merge, as if it had just changed.
   */
  private async upgrade(): Promise<void> {
    const existing = new Set(
      (
        await this.rows(
          // duckdb_columns() rather than information_schema.columns: the same names, read in a
          // tenth of the time (3 ms against 26 ms on a first read), and every run opens with it.
          "SELECT schema_name || '.' || table_name || '.' || column_name AS c FROM duckdb_columns() WHERE database_name = current_database()",
        )
      ).map((r) => String(r.c)),
    );
    let martRebuilt = false;
    for (const table of ALL_TABLES) {
      for (const field of table.fields) {
        if (existing.has(`${table.dataset}.${table.name}.${field.name}`)) continue;
        await this.connection.run(
          `ALTER TABLE ${table.dataset}.${table.name} ADD COLUMN "${field.name}" ${duckDbType(field)}`,
        );
        if (table.dataset === 'dmt' && table.name === 'sales_items' && field.name === 'sale_id')
          martRebuilt = true;
      }
    }
    if (martRebuilt) {
      await this.connection.run('DELETE FROM dmt.sales_items');
      await this.connection.run(
        `INSERT INTO ops.mart_queue (entity, change_key, sales_datetime, queued_at)
         SELECT 'sales', CAST(id AS VARCHAR), datetime, current_timestamp FROM ods.sales`,
      );
    }
  }

  /**
   * Closes the warehouse; an operation still running finishes first. Closing DuckDB while a query
   * runs deadlocks the process (Node 24) or crashes it (Node 20), with @duckdb/node-api 1.5: a
   * status read the snapshot had started as a command ended did exactly that. Operations asked
   * for after close are refused.
   */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    const closeNow = () => {
      this.connection.closeSync();
      this.instance.closeSync();
    };
    if (this.running) void this.queue.then(closeNow);
    else closeNow();
  }

  /** Runs `work` after every earlier operation, never two at once; none once closed. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(async () => {
      if (this.closing) throw new TerminalError('the warehouse is closed');
      this.running = true;
      try {
        return await work();
      } finally {
        this.running = false;
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async rows(sql: string, params?: Params): Promise<Record<string, unknown>[]> {
    const reader = await this.connection.runAndReadAll(sql, params);
    return reader.getRowObjectsJson() as Record<string, unknown>[];
  }

  private async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.connection.run('BEGIN TRANSACTION');
    try {
      const result = await work();
      await this.connection.run('COMMIT');
      return result;
    } catch (error) {
      await this.connection.run('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  async loadRaw(load: RawLoad): Promise<RawLoadResult> {
    const file = await this.rowsFile(load.rowsKey);
    try {
      return await this.loadRawFrom(load, file.path);
    } finally {
      await file.release();
    }
  }

  /**
   * The append streams the rows file into raw: it needs little memory, and DuckDB given its
   * defaults (80% of RAM, a thread per core) would hold far more than the file's size needs. For
   * the append only, DuckDB gets one thread and 64 MB, so a 1 GiB file loads in the same memory
   * as a small one (README, "Memory"); the merges keep DuckDB's defaults.
   */
  private loadRawFrom(load: RawLoad, path: string): Promise<RawLoadResult> {
    return this.exclusive(async () => {
      // The settings are put back as they were, by value: after RESET memory_limit, DuckDB 1.5
      // reports the default again but still refuses a large merge at the lowered limit ("failed
      // to pin block … 61.0 MiB used"; a 1,000,000-sale mart merge in npm run bench).
      const [before] = await this.rows(
        "SELECT current_setting('memory_limit') AS memory, current_setting('threads') AS threads",
      );
      await this.connection.run("SET memory_limit = '64MB'");
      await this.connection.run('SET threads = 1');
      try {
        return await this.appendRaw(load, path);
      } finally {
        await this.connection.run(`SET memory_limit = ${literal(String(before?.memory))}`);
        await this.connection.run(`SET threads = ${Number(before?.threads)}`);
      }
    });
  }

  private appendRaw(load: RawLoad, path: string): Promise<RawLoadResult> {
    return this.transaction(async () => {
      const [existing] = await this.rows(
        'SELECT row_count, CAST(loaded_at AS VARCHAR) AS loaded_at FROM ops.loads WHERE load_id = $id',
        { id: load.loadId },
      );
      if (existing) {
        return {
          rows: Number(existing.row_count),
          alreadyLoaded: true,
          loadedAt: new Date(String(existing.loaded_at)),
        };
      }
      const table = RAW_TABLES[load.entity];
      const columns = table.fields.map((f) => `${f.name}: ${literal(duckDbType(f))}`).join(', ');
      const names = table.fields.map((f) => f.name).join(', ');
      // The rows file carries every column, SYS_DATE_CREATE and SYS_FILE_NAME included (the
      // same file a BigQuery load job appends), so it is appended as it is.
      const result = await this.connection.run(
        `INSERT INTO raw.${table.name} (${names})
           SELECT ${names}
           FROM read_json(${literal(path)}, format = 'newline_delimited', records = true,
                          maximum_object_size = ${DUCKDB_MAX_OBJECT_BYTES}, columns = {${columns}})`,
      );
      const inserted = Number(result.rowsChanged);
      if (inserted !== load.rowCount) {
        throw new TerminalError(`${load.objectName}: read ${inserted} rows, expected ${load.rowCount}`);
      }
      await this.connection.run(
        `INSERT INTO ops.loads (load_id, entity, object_name, generation, loaded_at, row_count, max_sale_id)
           VALUES ($id, $entity, $object, $generation, CAST($loaded_at AS TIMESTAMPTZ), $rows, CAST($max AS BIGINT))`,
        {
          id: load.loadId,
          entity: load.entity,
          object: load.objectName,
          generation: load.generation,
          loaded_at: load.loadedAt.toISOString(),
          rows: inserted,
          max: load.maxSaleId === undefined ? null : load.maxSaleId.toString(),
        },
      );
      return { rows: inserted, alreadyLoaded: false, loadedAt: load.loadedAt };
    });
  }

  runStep(step: string, params: Readonly<Record<string, string>>): Promise<StepCounts> {
    return this.exclusive(async () => {
      let sql: string;
      try {
        sql = await readFile(join(this.sqlDir, `${step}.sql`), 'utf8');
      } catch {
        throw new TerminalError(`no SQL step "${step}" in ${this.sqlDir}`);
      }
      const values: Params = { ...params };
      return this.transaction(async () => {
        let last: Record<string, unknown> | undefined;
        for (const statement of splitStatements(sql)) {
          const used = Object.fromEntries(
            Object.entries(values).filter(([name]) => new RegExp(`\\$${name}\\b`).test(statement)),
          );
          try {
            [last] = await this.rows(statement, Object.keys(used).length ? used : undefined);
          } catch (error) {
            const message = (error as Error).message.split('\n')[0] ?? '';
            // DuckDB reports write-write conflicts between transactions; another try can succeed.
            if (/conflict/i.test(message)) throw new TransientError(`${step}: ${message}`);
            throw new TerminalError(`${step}: ${message}`, { cause: error });
          }
        }
        return Object.fromEntries(Object.entries(last ?? {}).map(([k, v]) => [k, Number(v)]));
      });
    });
  }

  recordFile(outcome: FileOutcome): Promise<void> {
    return this.exclusive(async () => {
      // One row per file (name and generation): settling again after a crash replaces it.
      const key = { object: outcome.objectName, generation: outcome.generation };
      await this.transaction(async () => {
        await this.connection.run(
          'DELETE FROM ops.files WHERE object_name = $object AND generation = $generation',
          key,
        );
        await this.connection.run(
          `INSERT INTO ops.files VALUES ($object, $generation, $entity, $state, $settled, CAST($rows AS BIGINT), $reason,
                                        CAST($at AS TIMESTAMPTZ))`,
          {
            object: outcome.objectName,
            generation: outcome.generation,
            entity: outcome.entity,
            state: outcome.state,
            settled: outcome.settledObject,
            rows: outcome.rowCount ?? null,
            reason: outcome.reason ?? null,
            at: outcome.settledAt.toISOString(),
          },
        );
      });
    });
  }

  recordConnectorRun(run: ConnectorRunRecord): Promise<void> {
    return this.exclusive(async () => {
      await this.connection.run(
        `INSERT INTO ops.connector_runs VALUES ($run_id, $entity, CAST($at AS TIMESTAMPTZ), $resumed,
           CAST($start AS BIGINT), $fetched, $reused, $records, CAST($files AS VARCHAR[]))`,
        {
          run_id: run.runId,
          entity: run.entity,
          at: run.finishedAt.toISOString(),
          resumed: run.resumed,
          start: run.startSalesId ?? null,
          fetched: run.pagesFetched,
          reused: run.pagesReused,
          records: run.records,
          files: JSON.stringify(run.files),
        },
      );
    });
  }

  unseenFields(entity: Entity, fields: readonly string[]): Promise<string[]> {
    return this.exclusive(async () =>
      (
        await this.rows(
          `SELECT f FROM (SELECT unnest(CAST($fields AS VARCHAR[])) AS f)
           WHERE f NOT IN (SELECT field FROM ops.schema_fields WHERE entity = $entity)
           ORDER BY f`,
          { entity, fields: JSON.stringify(fields) },
        )
      ).map((r) => String(r.f)),
    );
  }

  recordFields(entity: Entity, fields: readonly string[], objectName: string, seenAt: Date): Promise<void> {
    return this.exclusive(async () => {
      await this.connection.run(
        `INSERT INTO ops.schema_fields (entity, field, first_seen, first_object)
         SELECT $entity, f, CAST($seen_at AS TIMESTAMPTZ), $object
         FROM (SELECT DISTINCT unnest(CAST($fields AS VARCHAR[])) AS f)
         WHERE f NOT IN (SELECT field FROM ops.schema_fields WHERE entity = $entity)`,
        { entity, fields: JSON.stringify(fields), seen_at: seenAt.toISOString(), object: objectName },
      );
    });
  }

  unmergedEntities(loadedBefore?: Date): Promise<Entity[]> {
    return this.exclusive(async () =>
      (
        await this.rows(
          // Keys queued for the mart and not carried are healed by a sales merge (its last step).
          `SELECT entity FROM ops.loads
           WHERE (merged_at IS NULL OR mart_at IS NULL)
             AND loaded_at < CAST($before AS TIMESTAMPTZ)
           UNION
           SELECT 'sales' FROM ops.mart_queue WHERE queued_at < CAST($before AS TIMESTAMPTZ)
           ORDER BY 1`,
          { before: (loadedBefore ?? new Date('9999-12-31T00:00:00Z')).toISOString() },
        )
      ).map((r) => r.entity as Entity),
    );
  }

  maxSaleId(): Promise<bigint | undefined> {
    return this.exclusive(async () => {
      const [row] = await this.rows(
        "SELECT CAST(max(max_sale_id) AS VARCHAR) AS max FROM ops.loads WHERE entity = 'sales'",
      );
      return row?.max === null || row?.max === undefined ? undefined : BigInt(String(row.max));
    });
  }

  status(): Promise<WarehouseStatus> {
    return this.exclusive(async () => {
      const tables = [];
      for (const table of ALL_TABLES) {
        const [row] = await this.rows(`SELECT count(*) AS n FROM ${table.dataset}.${table.name}`);
        tables.push({ table: `${table.dataset}.${table.name}`, rows: Number(row?.n ?? 0) });
      }
      const grouped = async (sql: string) =>
        Object.fromEntries((await this.rows(sql)).map((r) => [String(r.k), Number(r.n)]));
      const runs = await this.rows(
        `SELECT run_id, entity, CAST(finished_at AS VARCHAR) AS finished_at, resumed, CAST(start_sales_id AS VARCHAR) AS start,
                pages_fetched, pages_reused, records, files
         FROM ops.connector_runs ORDER BY finished_at DESC LIMIT 6`,
      );
      const files = await this.rows(
        `SELECT object_name, generation, entity, state, settled_object, row_count, reason, CAST(settled_at AS VARCHAR) AS settled_at
         FROM ops.files ORDER BY settled_at DESC LIMIT 10`,
      );
      return {
        tables,
        orphans: await grouped(
          'SELECT reason AS k, count(*) AS n FROM dmt.sales_items_orphans GROUP BY 1 ORDER BY 1',
        ),
        rejects: await grouped('SELECT entity AS k, count(*) AS n FROM ods.rejects GROUP BY 1 ORDER BY 1'),
        lastRuns: runs.map((r) => connectorRunFromRow(r, (v) => new Date(String(v)))),
        lastFiles: files.map((r) => fileOutcomeFromRow(r, (v) => new Date(String(v)))),
      };
    });
  }

  /** Rows of ods.rejects, newest first, filtered (`reason` and `file`: substrings). */
  rejects(filter: ListFilter): Promise<Record<string, unknown>[]> {
    return this.exclusive(() =>
      this.rows(
        `SELECT entity, record_key, reason, SYS_FILE_NAME AS file, CAST(SYS_DATE_CREATE AS VARCHAR) AS loaded_at,
                CAST(record AS VARCHAR) AS record
         FROM ods.rejects
         WHERE ($entity IS NULL OR entity = $entity)
           AND ($reason IS NULL OR contains(reason, $reason))
           AND ($file IS NULL OR contains(SYS_FILE_NAME, $file))
         ORDER BY SYS_DATE_CREATE DESC, entity, record_key
         ${filter.limit > 0 ? `LIMIT ${filter.limit}` : ''}`,
        { entity: filter.entity ?? null, reason: filter.reason ?? null, file: filter.file ?? null },
      ),
    );
  }

  /** Sale lines waiting for their product or customer, with the file that brought the sale. */
  orphans(filter: ListFilter): Promise<Record<string, unknown>[]> {
    return this.exclusive(() =>
      this.rows(
        `SELECT CAST(o.sale_id AS VARCHAR) AS sale_id, o.product_sku, o.customer_id, o.reason,
                CAST(o.sales_datetime AS VARCHAR) AS sales_datetime, CAST(o.first_seen AS VARCHAR) AS first_seen,
                s.SYS_FILE_NAME AS file
         FROM dmt.sales_items_orphans o LEFT JOIN ods.sales s ON s.id = o.sale_id
         WHERE ($reason IS NULL OR contains(o.reason, $reason))
           AND ($file IS NULL OR contains(s.SYS_FILE_NAME, $file))
         ORDER BY o.first_seen DESC, o.sale_id, o.product_sku
         ${filter.limit > 0 ? `LIMIT ${filter.limit}` : ''}`,
        { reason: filter.reason ?? null, file: filter.file ?? null },
      ),
    );
  }

  /** Rows of any table, for tests and golden fixtures. */
  query(sql: string): Promise<Record<string, unknown>[]> {
    return this.exclusive(() => this.rows(sql));
  }

  /** Runs statements as they are (fixtures seeding tables). */
  execute(sql: string): Promise<void> {
    return this.exclusive(async () => {
      for (const statement of splitStatements(sql)) await this.connection.run(statement);
    });
  }
}
