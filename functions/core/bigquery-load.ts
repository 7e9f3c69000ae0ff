import { createHash } from 'node:crypto';
import type { Entity } from './entities.js';
import { type BigQueryField, bigQuerySchema, RAW_TABLES } from './schema.js';

/**
 * How a landed file becomes raw rows in BigQuery: one **load job** (free, no slot time, atomic:
 * all rows or none) appending the loader's rows file — every raw column, SYS_DATE_CREATE and
 * SYS_FILE_NAME included, numbers already as their JSON text — to raw.{entity}.
 *
 * - Idempotency: the job id is derived from the object name and generation. A redelivered event
 *   or a retried function submits the same id; BigQuery answers 409 and the loader reads the
 *   existing job's outcome instead of loading twice.
 * - Quota: one load job per file; the connector sizes files by bytes (128 MiB by default) and
 *   runs hourly for sales, daily for products and customers, so a table sees a few dozen load
 *   jobs a day against the 1,500 allowed (failed jobs count too; malformed files are rejected
 *   by the loader before any job is submitted).
 * - Cost: load jobs are free; the rows file is one more object, deleted when the file settles.
 *   An INSERT from an external table would instead be billed for the bytes it reads.
 */

/** BigQuery job ids allow letters, digits, `_` and `-`, up to 1,024 characters. */
export function rawLoadJobId(loadId: string): string {
  return `raw_load_${createHash('sha256').update(loadId).digest('hex').slice(0, 40)}`;
}

export interface RawLoadJob {
  jobReference: { projectId: string; jobId: string; location: string };
  configuration: {
    labels: Record<string, string>;
    load: {
      sourceUris: string[];
      destinationTable: { projectId: string; datasetId: string; tableId: string };
      sourceFormat: 'NEWLINE_DELIMITED_JSON';
      writeDisposition: 'WRITE_APPEND';
      createDisposition: 'CREATE_NEVER';
      schema: { fields: BigQueryField[] };
      ignoreUnknownValues: false;
      maxBadRecords: 0;
    };
  };
}

export function rawLoadJob(options: {
  projectId: string;
  location: string;
  bucket: string;
  entity: Entity;
  loadId: string;
  rowsKey: string;
}): RawLoadJob {
  const table = RAW_TABLES[options.entity];
  return {
    jobReference: {
      projectId: options.projectId,
      jobId: rawLoadJobId(options.loadId),
      location: options.location,
    },
    configuration: {
      labels: { pipeline: 'retail-pipeline', step: 'raw-load', entity: options.entity },
      load: {
        sourceUris: [`gs://${options.bucket}/${options.rowsKey}`],
        destinationTable: { projectId: options.projectId, datasetId: table.dataset, tableId: table.name },
        sourceFormat: 'NEWLINE_DELIMITED_JSON',
        writeDisposition: 'WRITE_APPEND',
        createDisposition: 'CREATE_NEVER',
        schema: { fields: bigQuerySchema(table.fields) },
        ignoreUnknownValues: false,
        maxBadRecords: 0,
      },
    },
  };
}
