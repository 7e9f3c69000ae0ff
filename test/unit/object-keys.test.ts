import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  archiveKey,
  claimKey,
  claimsAmong,
  connectorFileName,
  failedKey,
  isCompanion,
  isLoadable,
  isShortenedName,
  nameTooLong,
  pageKey,
  parseClaimKey,
  parseObjectKey,
  parsePageKey,
  parsePartKey,
  partKey,
  rowsKeyOf,
  runIdOf,
  runPrefix,
  shortenedName,
} from '../../functions/core/object-keys.js';
import { fileStamp } from '../../functions/core/time.js';

describe('object keys', () => {
  const at = new Date('2025-07-19T09:05:59.999Z');

  test('connector files are named {entity}_{YYYYMMDD_HHmm}_{uuid}.json in UTC', () => {
    assert.equal(
      connectorFileName('sales', fileStamp(at), '2f1e3c9a-0000-4000-8000-000000000001'),
      'sales_20250719_0905_2f1e3c9a-0000-4000-8000-000000000001.json',
    );
    assert.equal(fileStamp(new Date('2025-12-31T23:59:00-02:00')), '20260101_0159');
  });

  test('archive and failed folders follow the contract', () => {
    assert.equal(archiveKey('sales', 'x.json', at), 'sales/archive/20250719/x.json');
    assert.equal(failedKey('products', 'x.json', at), 'products/failed/2025/07/19/09h/x.json');
  });

  const loadable: [string, boolean][] = [
    ['sales/in/sales_20250719_1000_u.json', true],
    ['customers/in/by-hand.JSON', true],
    ['sales/in/nested/x.json', false],
    ['sales/in/x.csv', false],
    ['sales/processing/x.json', false],
    ['sales/archive/20250719/x.json', false],
    ['sales/failed/2025/07/19/10h/x.json', false],
    ['sales/staging/runs/r/parts/00000001-00000002_5__x.json', false],
    ['orders/in/x.json', false],
    ['in/x.json', false],
  ];
  for (const [key, expected] of loadable) {
    test(`${key} ${expected ? 'is' : 'is not'} loaded`, () => assert.equal(isLoadable(key), expected));
  }

  test('a name too long for the layout is shortened to one that is recognised, and only such a name is', () => {
    const long = `${'é'.repeat(150)}.json`; // 305 bytes in one part
    assert.match(nameTooLong(long) ?? '', /305 bytes under in\/, 305 in its longest part/);
    assert.equal(nameTooLong(`sub/${'a'.repeat(200)}`), undefined);
    const short = shortenedName(long);
    assert.ok(Buffer.byteLength(short) <= 130, short);
    assert.equal(short, shortenedName(long), 'the same name every time');
    assert.ok(isShortenedName(short));
    assert.ok(!isShortenedName('notes.name-too-long'), 'a file merely named so is not one');
  });

  test('parses keys back', () => {
    assert.deepEqual(parseObjectKey('sales/failed/2025/07/19/10h/x.json'), {
      entity: 'sales',
      state: 'failed',
      name: 'x.json',
    });
    assert.equal(parseObjectKey('elsewhere/in/x.json'), undefined);
  });

  test('staged pages and parts carry what a resume needs in their names', () => {
    const prefix = runPrefix('sales', '20250719T090559Z-abcdef12');
    const page = { page: 12, count: 250, totalPages: 40 };
    assert.deepEqual(parsePageKey(pageKey(prefix, page)), page);
    const part = { first: 3, last: 9, records: 1750, fileName: 'sales_20250719_0905_u.json' };
    assert.deepEqual(parsePartKey(partKey(prefix, part)), part);
    assert.equal(runIdOf(pageKey(prefix, page)), '20250719T090559Z-abcdef12');
  });
});

describe('claims in processing/', () => {
  test('a claim keeps the whole path under in/, an empty part included (GCS takes sales/in//x.json)', () => {
    const key = claimKey('sales', '17', '/x.json');
    assert.equal(key, 'sales/processing/17//x.json');
    assert.deepEqual(parseClaimKey(key), { entity: 'sales', generation: '17', name: '/x.json' });
    assert.equal(parseClaimKey('sales/processing/17/'), undefined);
    assert.equal(parseClaimKey('sales/processing/17/sub/'), undefined);
    assert.equal(parseClaimKey('sales/in/x.json'), undefined);
  });

  test('a rows file is told from a claim by its claim beside it, not by its name alone', () => {
    const claim = claimKey('sales', '17', 'a.json');
    const lone = claimKey('sales', '18', 'x.rows.ndjson');
    const found = claimsAmong([{ key: claim }, { key: rowsKeyOf(claim) }, { key: lone }]);
    assert.deepEqual(
      found.map((f) => f.claim.name),
      ['a.json', 'x.rows.ndjson'],
    );
  });

  test('a sidecar is one only in failed/: beside its file, or alone with no sidecar of its own', () => {
    const failed = 'sales/failed/2025/07/19/10h';
    const keys = new Set([
      `${failed}/a.json`,
      `${failed}/a.json.error.json`,
      `${failed}/b.error.json`,
      `${failed}/b.error.json.error.json`,
      'sales/in/c.json',
      'sales/in/c.json.error.json',
    ]);
    assert.equal(isCompanion(`${failed}/a.json.error.json`, keys), true);
    // A data file named like a sidecar, failed with its own sidecar: a file.
    assert.equal(isCompanion(`${failed}/b.error.json`, keys), false);
    assert.equal(isCompanion(`${failed}/b.error.json.error.json`, keys), true);
    // A sidecar a replay cut short left alone: still a sidecar, not a failed file.
    assert.equal(isCompanion(`${failed}/d.json.error.json`, new Set([`${failed}/d.json.error.json`])), true);
    // Outside failed/ the name means nothing: two arrivals.
    assert.equal(isCompanion('sales/in/c.json.error.json', keys), false);
    assert.equal(
      isCompanion('sales/archive/20250719/c.json.error.json', new Set(['sales/archive/20250719/c.json'])),
      false,
    );
    // A rows file only in processing/ beside its claim.
    assert.equal(isCompanion('sales/in/x.rows.ndjson', new Set(['sales/in/x'])), false);
  });
});
