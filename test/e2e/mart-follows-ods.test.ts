import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openLocalRuntime } from '../../functions/compose-local.js';
import { runCli } from '../helpers/cli.js';
import { expectedFrom } from '../helpers/expected-mart.js';
import { MemoryLogger, readEvents, tempDir } from '../helpers/fakes.js';
import { canonicalRow, orphanKey, sortRows, tableNamed, tableRows } from '../helpers/rows.js';

/**
 * The mart follows ODS (DATA_CONTRACT.md, dmt): files dropped by hand into {entity}/in/ one at a
 * time, each followed by `retail-pipeline process`, and after each the mart and its orphans are
 * compared with an independent computation (test/helpers/expected-mart.ts) from every record
 * loaded so far, in load order (the latest loaded version of a key wins). Then the same files in
 * another order: ODS holds other versions, and the mart again equals the computation from them.
 */

type Entity = 'sales' | 'products' | 'customers';
interface DroppedFile {
  readonly entity: Entity;
  readonly name: string;
  readonly lines: readonly string[];
}

const FILES: Record<string, DroppedFile> = {
  products: {
    entity: 'products',
    name: 'products_20250719_0600_a.json',
    lines: [
      '{"product_sku":"P1","description":"Mug","unit_amount":10,"supplier":"S"}',
      '{"product_sku":"P2","description":"Plate","unit_amount":"4.00","supplier":"S"}',
      '{"product_sku":"P3","description":"Bowl","unit_amount":5e0,"supplier":"S"}',
    ],
  },
  customers: {
    entity: 'customers',
    name: 'customers_20250719_0600_a.json',
    lines: ['{"customer_id":"C1","emails":["c1@example.com"],"phone_numbers":[]}'],
  },
  sales: {
    entity: 'sales',
    name: 'sales_20250719_1000_a.json',
    lines: [
      // P9 is unknown: an orphan line; "promo" on a line and "channel" on a sale are new fields
      '{"id":1,"datetime":"2025-07-19T09:00:00Z","total_amount":19,"customer_id":"C1","items":[{"product_sku":"P1","quantity":1,"amount":10,"promo":"SUMMER"},{"product_sku":"P2","quantity":2,"amount":8},{"product_sku":"P9","quantity":1,"amount":1}]}',
      // C2 is unknown: an orphan line (missing_customer)
      '{"id":2,"datetime":"2025-07-19T09:30:00Z","total_amount":9,"customer_id":"C2","items":[{"product_sku":"P1","quantity":1,"amount":9}]}',
      '{"id":3,"datetime":"2025-07-19T09:45:00+02:00","total_amount":1.5e1,"customer_id":"C1","channel":"web","items":[{"product_sku":"P3","quantity":2e0,"amount":1.5e1}]}',
    ],
  },
  correction: {
    entity: 'sales',
    name: 'sales_20250719_1100_b.json',
    lines: [
      // sale 1 again: another day, P1's amount and quantity changed (over two lines), P2 and the
      // orphan P9 gone, P3 added
      '{"id":1,"datetime":"2025-07-18T23:00:00Z","total_amount":32,"customer_id":"C1","items":[{"product_sku":"P1","quantity":2,"amount":17},{"product_sku":"P3","quantity":1,"amount":5},{"product_sku":"P1","quantity":1,"amount":10}]}',
      '{"id":3,"datetime":"2025-07-19T09:45:00+02:00","total_amount":1.5e1,"customer_id":"C1","channel":"web","items":[{"product_sku":"P3","quantity":2e0,"amount":1.5e1}]}',
    ],
  },
  productChange: {
    entity: 'products',
    name: 'products_20250720_0600_b.json',
    lines: [
      '{"product_sku":"P1","description":"Big mug","unit_amount":12,"supplier":"S"}',
      '{"product_sku":"P2","description":"Dinner plate","unit_amount":4,"supplier":"S"}',
      '{"product_sku":"P3","description":"Bowl","unit_amount":5,"supplier":"S"}',
    ],
  },
  customerChange: {
    entity: 'customers',
    name: 'customers_20250720_0600_b.json',
    lines: [
      '{"customer_id":"C1","emails":["c1@example.com","c1@work.example"],"phone_numbers":[]}',
      '{"customer_id":"C2","emails":[],"phone_numbers":["+34 600"]}',
    ],
  },
};

async function drop(home: string, file: DroppedFile): Promise<void> {
  const dir = join(home, 'bucket', file.entity, 'in');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, file.name), `${file.lines.join('\n')}\n`);
}

async function tables(home: string) {
  const { warehouse, close } = await openLocalRuntime(home, new MemoryLogger());
  try {
    const rows = (name: string) => tableRows(warehouse, name);
    return {
      mart: await rows('dmt.sales_items'),
      orphans: (await rows('dmt.sales_items_orphans')).map(orphanKey),
      productsHistory: await rows('ods.products_history'),
      customersHistory: await rows('ods.customers_history'),
      rawSales: await rows('raw.sales'),
      queue: await rows('ops.mart_queue'),
    };
  } finally {
    close();
  }
}

/** Drops each file, runs `process`, and checks the mart against the computation after each. */
async function loadInOrder(home: string, order: readonly DroppedFile[]) {
  const loaded: Record<Entity, string[]> = { sales: [], products: [], customers: [] };
  let last: Awaited<ReturnType<typeof tables>> | undefined;
  for (const file of order) {
    await drop(home, file);
    const processed = await runCli(['process'], { PIPELINE_HOME: home });
    assert.equal(processed.code, 0, processed.stderr);
    loaded[file.entity].push(...file.lines);
    last = await tables(home);
    const expected = expectedFrom(loaded);
    assert.deepEqual(
      last.mart,
      sortRows(expected.mart.map((r) => canonicalRow(tableNamed('dmt.sales_items'), r))),
      `the mart after ${file.name}`,
    );
    assert.deepEqual(last.orphans, sortRows(expected.orphans), `the orphans after ${file.name}`);
    assert.deepEqual(last.queue, [], `every queued change carried after ${file.name}`);
  }
  return last as Awaited<ReturnType<typeof tables>>;
}

describe('the mart follows ODS (retail-pipeline process, files dropped by hand)', () => {
  test('a correction, a product change and a customer change, then the same files in another order', async () => {
    await using first = await tempDir();
    const chronological = [
      FILES.products,
      FILES.customers,
      FILES.sales,
      FILES.correction,
      FILES.productChange,
      FILES.customerChange,
    ] as DroppedFile[];
    const after = await loadInOrder(first.path, chronological);

    // The user-visible outcome of the story, beyond the equality with the computation.
    const sale1 = after.mart.filter((r) => r.sale_id === '1');
    assert.deepEqual(
      sale1.map((r) => [
        r.product_sku,
        r.sales_datetime,
        r.item_amount,
        r.item_quantity,
        r.product_description,
      ]),
      [
        ['P1', '2025-07-18T23:00:00', '27', '3', 'Big mug'],
        ['P3', '2025-07-18T23:00:00', '5', '1', 'Bowl'],
      ],
      'sale 1 is its corrected version, with the product values of today',
    );
    assert.ok(
      after.mart.some((r) => r.id === '2-P1'),
      'the orphan of the late customer is in the mart',
    );

    // History: one version per change, contiguous intervals.
    const p1 = after.productsHistory
      .filter((r) => r.product_sku === 'P1')
      .sort((a, b) => String(a.valid_from).localeCompare(String(b.valid_from)));
    assert.deepEqual(
      p1.map((r) => r.unit_amount),
      ['10', '12'],
    );
    assert.equal(p1[0]?.valid_to, p1[1]?.valid_from);
    assert.equal(p1[1]?.valid_to, null);
    assert.equal(after.productsHistory.filter((r) => r.product_sku === 'P3').length, 1, 'P3 never changed');
    assert.equal(after.customersHistory.filter((r) => r.customer_id === 'C1').length, 2);

    // Nothing dropped: the new fields are in raw, announced once.
    const sale3 = after.rawSales.filter((r) => r.id === '3');
    assert.deepEqual(
      sale3.map((r) => r.extras),
      [{ channel: 'web' }, { channel: 'web' }],
    );
    const sale1Raw = after.rawSales.find(
      (r) => r.id === '1' && r.SYS_FILE_NAME === 'sales/in/sales_20250719_1000_a.json',
    );
    assert.deepEqual(sale1Raw?.extras, { items: [{ promo: 'SUMMER' }, {}, {}] });
    const drift = (await readEvents(first.path)).filter((e) => e.type === 'schema.drift');
    assert.deepEqual(
      drift.map((e) => e.data.fields),
      [['channel', 'items[].promo']],
    );

    // Another order: the older sale file is now loaded last, so its version of sale 1 wins in ODS,
    // and the mart follows (checked against the computation after every file).
    await using second = await tempDir();
    const replayed = await loadInOrder(second.path, [
      FILES.customerChange,
      FILES.correction,
      FILES.productChange,
      FILES.sales,
      FILES.customers,
      FILES.products,
    ] as DroppedFile[]);
    assert.deepEqual(
      replayed.mart
        .filter((r) => r.sale_id === '1')
        .map((r) => [r.product_sku, r.item_amount, r.product_description]),
      [
        ['P1', '10', 'Mug'],
        ['P2', '8', 'Plate'],
      ],
      'the version loaded last wins, with the product values loaded last',
    );
    assert.deepEqual(replayed.orphans, [{ sale_id: '1', product_sku: 'P9', reason: 'missing_product' }]);
  });
});
