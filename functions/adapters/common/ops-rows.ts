import type { Entity } from '../../core/entities.js';
import type { ConnectorRunRecord, FileOutcome } from '../../ports/warehouse.js';

/**
 * Rows of ops.connector_runs and ops.files (as both warehouses select them: `start` is
 * start_sales_id as text) back into records. `time` reads the engine's timestamp value.
 */
export type Row = Record<string, unknown>;

export function connectorRunFromRow(r: Row, time: (value: unknown) => Date): ConnectorRunRecord {
  return {
    runId: String(r.run_id),
    entity: r.entity as Entity,
    finishedAt: time(r.finished_at),
    resumed: Boolean(r.resumed),
    startSalesId: r.start === null || r.start === undefined ? undefined : String(r.start),
    pagesFetched: Number(r.pages_fetched),
    pagesReused: Number(r.pages_reused),
    records: Number(r.records),
    files: (r.files as string[] | null) ?? [],
  };
}

export function fileOutcomeFromRow(r: Row, time: (value: unknown) => Date): FileOutcome {
  return {
    objectName: String(r.object_name),
    generation: String(r.generation),
    entity: r.entity as Entity,
    state: r.state as FileOutcome['state'],
    settledObject: String(r.settled_object),
    rowCount: r.row_count === null || r.row_count === undefined ? undefined : Number(r.row_count),
    reason: r.reason === null || r.reason === undefined ? undefined : String(r.reason),
    settledAt: time(r.settled_at),
  };
}
