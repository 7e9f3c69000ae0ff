import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BigQuery, Table } from '@google-cloud/bigquery';
import { BigQueryWarehouse } from '../../functions/adapters/gcp/bigquery-warehouse.js';
import { rawLoadJobId } from '../../functions/core/bigquery-load.js';
import { TerminalError, TransientError } from '../../functions/core/errors.js';
import type { RawLoad } from '../../functions/ports/warehouse.js';
import { schemaCatalog } from '../helpers/bigquery-script.js';
import {
  decodeQueryParameters,
  type FakeBigQuery,
  NO_RETRY,
  startFakeBigQuery,
} from '../helpers/fake-gcp.mjs';
import { FakeClock } from '../helpers/fakes.js';
import { analyze, startServer, stopServer } from '../helpers/zetasql.mjs';

/** The BigQuery adapter against an HTTP endpoint that speaks the BigQuery v2 API and records every request. */
const SQL_DIR = fileURLToPath(new URL('../../sql/bigquery/', import.meta.url));

const load = (over: Partial<RawLoad> = {}): RawLoad => ({
  entity: 'sales',
  loadId: 'sales/in/a.json#1721383200000001',
  objectName: 'sales/in/a.json',
  generation: '1721383200000001',
  rowsKey: 'sales/processing/1721383200000001/a.json.rows.ndjson',
  rowCount: 3,
  loadedAt: new Date('2025-07-19T10:00:00.123Z'),
  maxSaleId: 42n,
  ...over,
});

describe('BigQueryWarehouse requests', () => {
  let fake: FakeBigQuery;
  let warehouse: BigQueryWarehouse;
  before(async () => {
    fake = await startFakeBigQuery({ defaultLocation: 'EU' });
    const bigquery = new BigQuery(fake.clientOptions({ projectId: 'p', retryOptions: NO_RETRY }) as never);
    warehouse = new BigQueryWarehouse(bigquery, {
      projectId: 'p',
      location: 'EU',
      bucket: 'pipeline',
      sqlDir: SQL_DIR,
      clock: new FakeClock(),
      pollMs: 1,
    });
  });
  after(() => fake.stop());
  beforeEach(() => fake.clearRequests());

  test('raw loading is one load job with a job id derived from name and generation, then the ledger', async () => {
    fake.scriptJob(/raw_load_/, { outputRows: 3 }, { times: 1 });
    fake.scriptQuery('MERGE ops.loads', { numDmlAffectedRows: 1 });
    const result = await warehouse.loadRaw(load());
    assert.deepEqual(
      { rows: result.rows, alreadyLoaded: result.alreadyLoaded },
      { rows: 3, alreadyLoaded: false },
    );
    const insert = fake.last('jobs.insert');
    assert.equal(insert?.body.jobReference.jobId, rawLoadJobId('sales/in/a.json#1721383200000001'));
    assert.deepEqual(insert?.body.configuration.load.sourceUris, [
      'gs://pipeline/sales/processing/1721383200000001/a.json.rows.ndjson',
    ]);
    assert.equal(insert?.body.configuration.load.writeDisposition, 'WRITE_APPEND');
    const ledger = fake.find('jobs.query').find((r) => String(r.body.query).includes('MERGE ops.loads'));
    const params = decodeQueryParameters(ledger?.body.queryParameters);
    assert.equal(params.loaded_at?.type, 'TIMESTAMP');
    assert.match(String(params.loaded_at?.value), /^2025-07-19[ T]10:00:00\.123/);
    assert.deepEqual(
      [params.load_id?.value, params.max?.value, params.rows?.type],
      ['sales/in/a.json#1721383200000001', '42', 'INT64'],
    );
  });

  test('the same object delivered again finds the existing job (409) instead of loading twice', async () => {
    fake.scriptQuery('MERGE ops.loads', { numDmlAffectedRows: 0 });
    const again = await warehouse.loadRaw(load());
    assert.equal(again.alreadyLoaded, true);
    assert.equal(fake.find('jobs.insert').length, 1);
    assert.equal(fake.find('jobs.insert')[0]?.status, 409);
  });

  test('a load job that failed transiently is retried under the next derived id; a terminal one fails the file', async () => {
    const second = load({ loadId: 'sales/in/b.json#7', objectName: 'sales/in/b.json', generation: '7' });
    fake.scriptJob(rawLoadJobId('sales/in/b.json#7'), {
      errorResult: { reason: 'backendError', message: 'try later' },
    });
    fake.scriptJob(rawLoadJobId('sales/in/b.json#7#2'), { outputRows: 3 });
    assert.equal((await warehouse.loadRaw(second)).alreadyLoaded, false);
    assert.deepEqual(
      fake.find('jobs.insert').map((r) => r.body.jobReference.jobId),
      [rawLoadJobId('sales/in/b.json#7'), rawLoadJobId('sales/in/b.json#7#2')],
    );

    const bad = load({ loadId: 'sales/in/c.json#9', objectName: 'sales/in/c.json', generation: '9' });
    fake.scriptJob(rawLoadJobId('sales/in/c.json#9'), {
      errorResult: { reason: 'invalid', message: 'JSON parsing error in row starting at position 0' },
    });
    await assert.rejects(
      warehouse.loadRaw(bad),
      (e: unknown) => e instanceof TerminalError && /JSON parsing error/.test(e.message),
    );
  });

  test('a merge script runs with its parameters typed and returns the counts of its final SELECT', async () => {
    fake.scriptQuery('raw.sales -> ods.sales', {
      rows: [{ loads: 1, raw_rows: 10, rejected: 2, keys: 8, ods_rows: 8 }],
    });
    const counts = await warehouse.runStep('ods_sales', { now: '2025-07-19T11:00:00.000Z' });
    assert.deepEqual(counts, { loads: 1, raw_rows: 10, rejected: 2, keys: 8, ods_rows: 8 });
    const params = decodeQueryParameters(fake.last('jobs.query')?.body.queryParameters);
    assert.equal(params.now?.type, 'TIMESTAMP');
  });

  test('new fields: the unseen ones are read with the paths as an ARRAY<STRING> parameter, then recorded once', async () => {
    fake.scriptQuery('ops.schema_fields WHERE entity', { rows: [{ f: 'items[].promo' }] });
    assert.deepEqual(await warehouse.unseenFields('sales', ['channel', 'items[].promo']), ['items[].promo']);
    const sent = fake.last('jobs.query')?.body.queryParameters as { name: string; parameterType: unknown }[];
    assert.deepEqual(sent.find((p) => p.name === 'fields')?.parameterType, {
      type: 'ARRAY',
      arrayType: { type: 'STRING' },
    });
    const read = decodeQueryParameters(sent);
    assert.deepEqual(read.fields?.value, ['channel', 'items[].promo']);
    await warehouse.recordFields(
      'sales',
      ['items[].promo'],
      'sales/in/a.json',
      new Date('2025-07-19T10:00:00Z'),
    );
    const merge = fake.last('jobs.query');
    assert.match(
      String(merge?.body.query),
      /MERGE INTO ops\.schema_fields[\s\S]*WHEN NOT MATCHED THEN INSERT/,
    );
    const params = decodeQueryParameters(merge?.body.queryParameters);
    assert.equal(params.seen_at?.type, 'TIMESTAMP');
    assert.equal(params.object?.value, 'sales/in/a.json');
  });

  test('errors are classified: rate limits, backend errors and concurrent updates are transient', async () => {
    fake.failNext({ match: 'jobs.query', status: 503, reason: 'backendError' });
    await assert.rejects(warehouse.maxSaleId(), TransientError);
    fake.failNext({
      match: 'jobs.query',
      status: 400,
      reason: 'invalidQuery',
      message: 'Transaction is aborted due to concurrent update against table ods.sales',
    });
    await assert.rejects(warehouse.unmergedEntities(), TransientError);
    fake.failNext({
      match: 'jobs.query',
      status: 400,
      reason: 'invalidQuery',
      message: 'Unrecognized name: foo',
    });
    await assert.rejects(
      warehouse.maxSaleId(),
      (e: unknown) => e instanceof TerminalError && /Unrecognized name/.test(e.message),
    );
  });

  test('every query the adapter writes by itself resolves against the warehouse schema, its parameters typed as sent (ZetaSQL)', async () => {
    // The merge scripts are checked statement by statement in test/sql; these are the adapter's own.
    fake.scriptJob(/raw_load_/, { outputRows: 3 }, { times: 1 });
    await warehouse.loadRaw(load());
    await warehouse.recordFile({
      objectName: 'sales/in/a.json',
      generation: '1',
      entity: 'sales',
      state: 'failed',
      settledObject: 'sales/failed/2025/07/19/10h/a.json',
      rowCount: undefined,
      reason: 'line 2: not valid JSON',
      settledAt: new Date('2025-07-19T10:00:00Z'),
    });
    await warehouse.recordConnectorRun({
      runId: 'r1',
      entity: 'sales',
      finishedAt: new Date('2025-07-19T10:00:00Z'),
      resumed: false,
      startSalesId: '7',
      pagesFetched: 3,
      pagesReused: 0,
      records: 500,
      files: ['sales/in/a.json'],
    });
    await warehouse.unseenFields('sales', ['channel']);
    await warehouse.recordFields('sales', ['channel'], 'sales/in/a.json', new Date('2025-07-19T10:00:00Z'));
    await warehouse.unmergedEntities(new Date('2025-07-19T10:00:00Z'));
    await warehouse.maxSaleId();
    // status() reads each table's metadata (tables.get) before its queries; the fake does not serve
    // table metadata, so for this call only the client's metadata read answers itself.
    const getMetadata = Table.prototype.getMetadata;
    Table.prototype.getMetadata = (async () => [{ numRows: '0' }]) as never;
    try {
      await warehouse.status();
    } finally {
      Table.prototype.getMetadata = getMetadata;
    }
    const typeOf = (t: { type: string; arrayType?: { type: string } }): string =>
      t.type === 'ARRAY' ? `ARRAY<${typeOf(t.arrayType ?? { type: '?' })}>` : t.type;
    const sent = fake.find('jobs.query').map((r) => ({
      sql: String(r.body.query),
      params: Object.fromEntries(
        ((r.body.queryParameters ?? []) as { name: string; parameterType: { type: string } }[]).map((p) => [
          p.name,
          { type: typeOf(p.parameterType) },
        ]),
      ),
    }));
    assert.ok(sent.length >= 11, `${sent.length} queries`);
    const tables = schemaCatalog();
    await startServer();
    try {
      for (const { sql, params } of sent) {
        const { error } = await analyze(sql, tables, params);
        assert.equal(error, undefined, `${sql}\n${JSON.stringify(error)}`);
      }
      // The check can fail: a column the schema does not have.
      const { error } = await analyze('SELECT reasons FROM ods.rejects', tables, {});
      assert.match(error?.message ?? '', /Unrecognized name: reasons/);
    } finally {
      await stopServer();
    }
  });
});
