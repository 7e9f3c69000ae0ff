import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { rawLoadJob, rawLoadJobId } from '../../functions/core/bigquery-load.js';
import { toRawRow } from '../../functions/core/raw-records.js';
import { bigQuerySchema, RAW_TABLES } from '../../functions/core/schema.js';

describe('raw loading in BigQuery', () => {
  test('the job id is a function of object name and generation, valid for BigQuery', () => {
    const a = rawLoadJobId('sales/in/sales_20250719_1000_u.json#1721383200000000');
    assert.equal(a, rawLoadJobId('sales/in/sales_20250719_1000_u.json#1721383200000000'));
    assert.notEqual(a, rawLoadJobId('sales/in/sales_20250719_1000_u.json#1721383200000001'));
    assert.match(a, /^[A-Za-z0-9_-]{1,1024}$/);
  });

  test('the load job appends the rows file to raw.{entity}, all or nothing, never creating the table', () => {
    const job = rawLoadJob({
      projectId: 'p',
      location: 'EU',
      bucket: 'b',
      entity: 'sales',
      loadId: 'sales/in/x.json#7',
      rowsKey: 'sales/processing/7/x.json.rows.ndjson',
    });
    assert.deepEqual(job.configuration.load.sourceUris, ['gs://b/sales/processing/7/x.json.rows.ndjson']);
    assert.deepEqual(job.configuration.load.destinationTable, {
      projectId: 'p',
      datasetId: 'raw',
      tableId: 'sales',
    });
    assert.equal(job.configuration.load.writeDisposition, 'WRITE_APPEND');
    assert.equal(job.configuration.load.createDisposition, 'CREATE_NEVER');
    assert.equal(job.configuration.load.maxBadRecords, 0);
    assert.equal(job.jobReference.jobId, rawLoadJobId('sales/in/x.json#7'));
  });

  test('every key of a rows file is a column of the load schema, with the right shape', () => {
    const schema = bigQuerySchema(RAW_TABLES.sales.fields);
    const row = JSON.parse(
      toRawRow(
        'sales',
        '{"id":1,"datetime":"d","total_amount":1.5,"customer_id":"C","items":[{"product_sku":"A","quantity":2,"amount":3}],"x":1}',
        1,
        {
          SYS_DATE_CREATE: '2025-07-19T10:00:00.000Z',
          SYS_FILE_NAME: 'sales/in/a.json',
        },
      ).json,
    );
    assert.deepEqual(Object.keys(row).sort(), schema.map((f) => f.name).sort());
    const items = schema.find((f) => f.name === 'items');
    assert.deepEqual(
      { type: items?.type, mode: items?.mode, fields: items?.fields?.map((f) => `${f.name}:${f.type}`) },
      {
        type: 'RECORD',
        mode: 'REPEATED',
        fields: ['product_sku:STRING', 'quantity:STRING', 'amount:STRING'],
      },
    );
    assert.equal(schema.find((f) => f.name === 'SYS_DATE_CREATE')?.type, 'TIMESTAMP');
  });
});
