import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import validatorModule from 'openapi-response-validator';
import { parse } from 'yaml';
import { ENTITIES, type Entity } from '../../functions/core/entities.js';
import { customerIdOf, skuOf } from '../../functions/sandbox/data.js';
import { type Sandbox, startSandbox } from '../../functions/sandbox/server.js';

// The package is CommonJS with an ES-style default export.
const OpenAPIResponseValidator = (validatorModule as unknown as { default: typeof validatorModule.default })
  .default;

/**
 * The binding contract of the source API. Its master copy is the shared folder beside the
 * repository, which a GitHub checkout does not have; the repository keeps a copy, and wherever
 * the master is present the copy must be identical to it.
 */
const SPEC_PATH = new URL('../fixtures/retail-api.openapi.yaml', import.meta.url);
const SHARED_SPEC = new URL('../../../shared/retail-api.openapi.yaml', import.meta.url);
// biome-ignore lint/suspicious/noExplicitAny: an OpenAPI document is untyped YAML
const spec: any = parse(readFileSync(SPEC_PATH, 'utf8'));

test('the repository copy of the API contract is the one the project is built against', (t) => {
  // The copy in the repository is what this suite and the sandbox are checked against: the three
  // endpoints with pages of at most 250.
  for (const path of ['/sales', '/products', '/customers']) {
    const params = spec.paths[path]?.get?.parameters ?? [];
    // biome-ignore lint/suspicious/noExplicitAny: untyped YAML
    const size = params.map((p: any) => (p.$ref ? spec.components.parameters[p.$ref.split('/').at(-1)] : p));
    // biome-ignore lint/suspicious/noExplicitAny: untyped YAML
    const pageSize = size.find(
      (p: any) => p.name === 'page_size' || p.name === 'pageSize' || p.name === 'limit',
    );
    assert.ok(pageSize, `${path} takes a page size`);
    assert.equal(pageSize.schema?.maximum, 250, `${path}: pages of at most 250`);
  }
  // Beside the binding copy (a development checkout), it must be that copy, byte for byte.
  if (!existsSync(SHARED_SPEC)) {
    t.diagnostic(`no ${SHARED_SPEC.pathname} beside this checkout: compared with the repository copy only`);
    return;
  }
  assert.equal(readFileSync(SPEC_PATH, 'utf8'), readFileSync(SHARED_SPEC, 'utf8'));
});

/** Validates a response against the spec's response object for (path, status). */
function validate(path: string, status: number, body: unknown): string[] {
  const responses = spec.paths[path].get.responses;
  const key = String(status) in responses ? String(status) : `${String(status)[0]}XX`;
  let response = responses[key];
  assert.ok(response, `the spec documents ${status} for ${path}`);
  if (response.$ref) response = spec.components.responses[response.$ref.split('/').at(-1)];
  const validator = new OpenAPIResponseValidator({
    responses: { [key]: response },
    components: spec.components,
  });
  const result = validator.validateResponse(key, body);
  return result
    ? result.errors.map((e: { path?: string; message: string }) => `${e.path ?? ''} ${e.message}`)
    : [];
}

const KEY = 'contract-test-key';
let sandbox: Sandbox;

async function get(path: string, headers: Record<string, string> = { 'X-API-Key': KEY }) {
  const response = await fetch(`${sandbox.url}${path}`, { headers });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

const idOf = (r: Record<string, unknown>) => Number(String(r.id).trim());

describe('sandbox Retail API against retail-api.openapi.yaml', () => {
  before(async () => {
    sandbox = await startSandbox({
      apiKey: KEY,
      faultRate: 0,
      seed: 7,
      sales: 3000,
      products: 300,
      customers: 400,
    });
  });
  after(() => sandbox.close());

  test('the validator catches a response that breaks the contract', () => {
    assert.notDeepEqual(validate('/sales', 200, { data: [{ id: 1 }], page: 1 }), []);
    assert.notDeepEqual(
      validate('/products', 200, { data: [], page: '1', page_size: 250, total_items: 0, total_pages: 0 }),
      [],
    );
  });

  for (const entity of ENTITIES) {
    test(`/${entity}: every page matches the schema, the envelope adds up, the order holds`, async () => {
      const all: Record<string, unknown>[] = [];
      for (let page = 1; ; page++) {
        const r = await get(`/${entity}?page=${page}&page_size=200`);
        assert.equal(r.status, 200);
        assert.deepEqual(validate(`/${entity}`, 200, r.body), []);
        const data = r.body.data as Record<string, unknown>[];
        assert.equal(r.body.page, page);
        assert.equal(r.body.page_size, 200);
        assert.equal(r.body.total_pages, Math.ceil((r.body.total_items as number) / 200));
        if (data.length === 0) {
          assert.ok(page > (r.body.total_pages as number), 'an empty page only past the end');
          break;
        }
        all.push(...data);
      }
      const expected = entity === 'sales' ? 3000 : entity === 'products' ? 300 : 400;
      assert.ok(all.length >= expected);
      const keys = all.map((r) =>
        entity === 'sales' ? idOf(r) : String(entity === 'products' ? r.product_sku : r.customer_id),
      );
      assert.deepEqual(
        keys,
        [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
        'ordered by key ascending',
      );
    });
  }

  test('/sales?start_sales_id returns sales from that id, and the default page size is 250', async () => {
    const r = await get('/sales?start_sales_id=1500');
    assert.deepEqual(validate('/sales', 200, r.body), []);
    const data = r.body.data as Record<string, unknown>[];
    assert.equal(r.body.page_size, 250);
    assert.equal(data.length, 250);
    assert.ok(data.every((s) => idOf(s) >= 1500));
    assert.ok(idOf(data[0] ?? {}) < 1510, 'starts at (or just after, where ids have gaps) the given id');
    assert.equal(r.body.total_items, sandbox.data.saleIds.filter((id) => id >= 1500).length);
  });

  const badRequests = [
    'page_size=251',
    'page_size=0',
    'page=0',
    'page=abc',
    'start_sales_id=0',
    'page_size=2.5',
  ];
  for (const query of badRequests) {
    test(`400 for ${query}`, async () => {
      const r = await get(`/sales?${query}`);
      assert.equal(r.status, 400);
      assert.deepEqual(validate('/sales', 400, r.body), []);
    });
  }

  test('401 without or with a wrong X-API-Key', async () => {
    for (const headers of [{}, { 'X-API-Key': 'wrong' }] as Record<string, string>[]) {
      const r = await get('/products', headers);
      assert.equal(r.status, 401);
      assert.deepEqual(validate('/products', 401, r.body), []);
    }
  });

  test('the data holds every awkward case the contract allows', () => {
    const sales = sandbox.data.sales.join('\n');
    const products = sandbox.data.products.join('\n');
    assert.match(sales, /"id":"\s*\d+\s*"/, 'ids as strings');
    assert.match(sales, /"id":\d+/, 'ids as numbers');
    assert.match(sales, /"amount":\d+\.\d+[,}]/, 'amounts as numbers');
    assert.match(sales, /"amount":"\s*\d+\.\d+\s*"/, 'amounts as strings');
    assert.match(sales, /"amount":"\d+\.\d{9}"/, 'amounts with 9 decimals');
    assert.match(sales, /"quantity":"\s*\d+\s*"/, 'quantities as strings');
    assert.match(sales, /"datetime":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"/, 'UTC datetimes');
    assert.match(sales, /"datetime":"[^"]+[+-]\d\d:\d\d"/, 'datetimes with an offset');
    assert.match(sales, /"datetime":"[^"]+\.\d{3}Z"/, 'datetimes with milliseconds');
    assert.match(sales, /"datetime":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"/, 'naive datetimes');
    assert.match(sales, /"channel":"web"|"_meta"|"tags"|"note"/, 'unknown fields');
    assert.match(
      sales,
      /"datetime":"not a date"|"quantity":"two"|"amount":"12,50"|"2025-02-30/,
      'invalid records',
    );
    assert.match(products, /"unit_amount":(0\.00|"0\.00"|0|" 0\.00 ")[,}]/, 'a zero list price');
    const ids = sandbox.data.saleIds;
    assert.ok(
      ids.some((id, i) => i > 0 && id === ids[i - 1]),
      'a sale listed twice',
    );
    assert.ok(
      ids.some((id, i) => i > 0 && id > (ids[i - 1] ?? 0) + 1),
      'id gaps',
    );
    assert.ok(sales.includes(`"${skuOf(301)}"`) || sales.includes(`"${skuOf(302)}"`), 'unknown products');
    assert.ok(
      sales.includes(`"${customerIdOf(401)}"`) || sales.includes(`"${customerIdOf(402)}"`),
      'unknown customers',
    );
  });

  test('the same seed gives the same data; new sales only get larger ids', async () => {
    const twin = await startSandbox({
      apiKey: KEY,
      faultRate: 0,
      seed: 7,
      sales: 3000,
      products: 300,
      customers: 400,
    });
    const other = await startSandbox({
      apiKey: KEY,
      faultRate: 0,
      seed: 8,
      sales: 3000,
      products: 300,
      customers: 400,
    });
    try {
      assert.deepEqual(twin.data.sales, sandbox.data.sales);
      assert.notDeepEqual(other.data.sales, sandbox.data.sales);
      const max = Math.max(...twin.data.saleIds);
      twin.data.appendSales(10);
      assert.ok(twin.data.saleIds.slice(-10).every((id) => id > max));
    } finally {
      await Promise.all([twin.close(), other.close()]);
    }
  });
});

describe('sandbox faults', () => {
  const withFault = async (
    fault: 'truncate' | 'reset' | '429' | '5xx' | 'slow',
    fn: (s: Sandbox) => Promise<void>,
  ) => {
    const s = await startSandbox({
      apiKey: KEY,
      faultRate: 1,
      faults: [fault],
      retryAfterSeconds: 2,
      slowMs: 300,
      seed: 1,
      sales: 100,
      products: 10,
      customers: 10,
    });
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  };
  const entity: Entity = 'sales';

  test('429 carries an integer Retry-After and a contract body', () =>
    withFault('429', async (s) => {
      const r = await fetch(`${s.url}/${entity}`, { headers: { 'X-API-Key': KEY } });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('retry-after'), '2');
      assert.deepEqual(validate('/sales', 429, await r.json()), []);
    }));

  test('5xx faults carry a contract body', () =>
    withFault('5xx', async (s) => {
      const r = await fetch(`${s.url}/${entity}`, { headers: { 'X-API-Key': KEY } });
      assert.ok([500, 502, 503, 504].includes(r.status));
      assert.deepEqual(validate('/sales', r.status, await r.json()), []);
    }));

  test('a truncated body breaks off mid-response', () =>
    withFault('truncate', async (s) => {
      const r = await fetch(`${s.url}/${entity}`, { headers: { 'X-API-Key': KEY } });
      assert.equal(r.status, 200);
      await assert.rejects(r.text());
      assert.equal(s.pagesServedTotal(), 0, 'a truncated page does not count as served');
    }));

  test('a reset drops the connection before any response', () =>
    withFault('reset', async (s) => {
      await assert.rejects(fetch(`${s.url}/${entity}`, { headers: { 'X-API-Key': KEY } }));
    }));

  test('a slow response still arrives whole', () =>
    withFault('slow', async (s) => {
      const started = performance.now();
      const r = await fetch(`${s.url}/${entity}`, { headers: { 'X-API-Key': KEY } });
      assert.deepEqual(validate('/sales', 200, await r.json()), []);
      assert.ok(performance.now() - started >= 250);
    }));
});
