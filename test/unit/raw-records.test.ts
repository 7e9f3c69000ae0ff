import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { quoteScalars, RecordShapeError, toRawRow } from '../../functions/core/raw-records.js';

describe('raw rows', () => {
  test('numbers and booleans keep their exact text; strings and nulls are untouched', () => {
    assert.equal(
      quoteScalars('{"a":59.90,"b":-1.5e3,"c":"7, 8","d":true,"e":null,"f":[1,false],"g":"x\\"1"}'),
      '{"a":"59.90","b":"-1.5e3","c":"7, 8","d":"true","e":null,"f":["1","false"],"g":"x\\"1"}',
    );
  });

  test('a sale becomes exactly the raw columns; fields the schema does not name go to extras, as received', () => {
    const row = toRawRow(
      'sales',
      '{"id": 17, "datetime":"2025-07-19 10:15:00","total_amount":12.123456789012345678,"customer_id":"C1","channel":"web","items":[{"product_sku":"A","quantity":" 3 ","amount":1.10,"promo":{"x":1}}]}',
      1,
    );
    assert.deepEqual(JSON.parse(row.json), {
      id: '17',
      datetime: '2025-07-19 10:15:00',
      total_amount: '12.123456789012345678',
      customer_id: 'C1',
      items: [{ product_sku: 'A', quantity: ' 3 ', amount: '1.10' }],
      extras: { channel: 'web', items: [{ promo: { x: '1' } }] },
    });
    assert.equal(row.saleId, 17n);
    assert.deepEqual(row.extraFields, ['channel', 'items[].promo']);
  });

  test('extras list one object per sale line, empty for the lines without unknown fields', () => {
    const row = toRawRow(
      'sales',
      '{"id":1,"items":[{"product_sku":"A"},{"product_sku":"B","tax":2.5e0},{"product_sku":"C"}]}',
      1,
    );
    assert.deepEqual(JSON.parse(row.json).extras, { items: [{}, { tax: '2.5e0' }, {}] });
    assert.deepEqual(row.extraFields, ['items[].tax']);
    assert.deepEqual(JSON.parse(toRawRow('products', '{"product_sku":"P","color":null}', 1).json).extras, {
      color: null,
    });
  });

  test('missing fields are null, missing lists are empty', () => {
    assert.deepEqual(JSON.parse(toRawRow('customers', '{"customer_id":"C9"}', 1).json), {
      customer_id: 'C9',
      emails: [],
      phone_numbers: [],
      extras: null,
    });
    assert.equal(toRawRow('sales', '{"id":"x1"}', 1).saleId, undefined);
  });

  const bad: [string, string, RegExp][] = [
    ['sales', '{"id":1,', /line 4: not valid JSON/],
    ['sales', '[1,2]', /line 4: a record must be a JSON object, found a list/],
    ['sales', '"text"', /found a string/],
    ['sales', '{"id":{"v":1}}', /line 4: id is an object, expected a single value/],
    ['sales', '{"id":1,"items":"none"}', /items is a string, expected a list/],
    [
      'sales',
      '{"id":1,"items":[{"quantity":[1]}]}',
      /items\[0\]\.quantity is a list, expected a single value/,
    ],
    ['sales', '{"id":1,"items":[3]}', /items\[0\] is a string, expected an object/],
    ['customers', '{"customer_id":"C","emails":["a",null]}', /emails\[1\] is null/],
  ];
  for (const [entity, line, message] of bad) {
    test(`rejects ${line}`, () => {
      assert.throws(
        () => toRawRow(entity as 'sales', line, 4),
        (e: unknown) => e instanceof RecordShapeError && message.test(e.message),
      );
    });
  }
});
