import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TransientError } from '../../functions/core/errors.js';
import { compactArrayElements, integerOf, memberText } from '../../functions/core/json-text.js';
import { parsePageBody } from '../../functions/core/page.js';

describe('page bodies', () => {
  test('records keep the exact text of their numbers', () => {
    const body = `{
      "page": 1, "page_size": 250, "total_items": 2, "total_pages": 1,
      "data": [
        {"id": 7, "total_amount": 59.90, "items": [{"amount": 12.123456789012345678901, "quantity": "3"}]},
        {"id": "8", "note": "a \\"quoted\\", [bracketed] {text}", "total_amount": "1e2"}
      ]
    }`;
    const page = parsePageBody(body);
    assert.deepEqual(page.records, [
      '{"id":7,"total_amount":59.90,"items":[{"amount":12.123456789012345678901,"quantity":"3"}]}',
      '{"id":"8","note":"a \\"quoted\\", [bracketed] {text}","total_amount":"1e2"}',
    ]);
    assert.deepEqual([page.page, page.pageSize, page.totalItems, page.totalPages], [1, 250, 2, 1]);
  });

  test('a body cut short is a transient fault', () => {
    const body = '{"data":[{"id":1},{"id":2}],"page":1,"page_size":250,"total_items":2,"total_pages":1}';
    assert.throws(() => parsePageBody(body.slice(0, 30)), TransientError);
    assert.throws(() => parsePageBody('<html>bad gateway</html>'), TransientError);
    assert.throws(() => parsePageBody('{"data":{},"page":1}'), TransientError);
    assert.throws(() => parsePageBody('{"data":[],"page":1,"page_size":250,"total_items":0}'), /total_pages/);
  });

  test('array elements come out on one line, whitespace inside strings untouched', () => {
    const text = '[ { "a" : "x y\\n" ,\n "b" : [ 1 , 2 ] } , "s , t" , 3.10 ,[ ] ] tail';
    assert.deepEqual(compactArrayElements(text, 0), {
      elements: ['{"a":"x y\\n","b":[1,2]}', '"s , t"', '3.10', '[]'],
      end: text.indexOf(' tail'),
    });
    assert.deepEqual(compactArrayElements('[]', 0), { elements: [], end: 2 });
    assert.throws(() => compactArrayElements('[{"a":1}', 0), /unterminated/);
  });

  test('"data" is found at the top level only', () => {
    const body =
      '{"meta":{"data":[9]},"page":1,"page_size":1,"total_items":1,"total_pages":1,"data":[{"data":[1]}]}';
    assert.deepEqual(parsePageBody(body).records, ['{"data":[1]}']);
  });

  test('integer ids from numbers and strings, blanks allowed', () => {
    assert.equal(integerOf(memberText('{"id": 12}', 'id')), 12n);
    assert.equal(integerOf(memberText('{"id":" 9007199254740993 "}', 'id')), 9007199254740993n);
    assert.equal(integerOf(memberText('{"id":"12a"}', 'id')), undefined);
    assert.equal(integerOf(memberText('{"id":1.5}', 'id')), undefined);
    assert.equal(integerOf(memberText('{"x":{"id":3}}', 'id')), undefined);
  });
});
