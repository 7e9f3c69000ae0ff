import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { openLocalRuntime } from '../../functions/compose-local.js';
import { type Sandbox, startSandbox } from '../../functions/sandbox/server.js';
import { filesContaining, runCli } from '../helpers/cli.js';
import { expectedFrom } from '../helpers/expected-mart.js';
import { MemoryLogger, tempDir } from '../helpers/fakes.js';
import { canonicalRow, orphanKey, sortRows, tableNamed, tableRows } from '../helpers/rows.js';

const KEY = 'pipeline-e2e-6c1d2a9f-key';

async function sandboxWith(faultRate: number, sales = 3000): Promise<Sandbox> {
  return startSandbox({
    apiKey: KEY,
    faultRate,
    retryAfterSeconds: 0,
    slowMs: 100,
    seed: 5,
    sales,
    products: 400,
    customers: 500,
  });
}

/** Reads tables of a finished run (the CLI has exited, so the warehouse file is free). */
async function snapshot(home: string) {
  const { store, work, warehouse, close } = await openLocalRuntime(home, new MemoryLogger());
  try {
    const rows = (name: string) => tableRows(warehouse, name);
    const business = (name: string, keep: string[]) =>
      rows(name).then((all) => all.map((r) => Object.fromEntries(keep.map((k) => [k, r[k]]))));
    return {
      mart: await rows('dmt.sales_items'),
      orphans: (await rows('dmt.sales_items_orphans')).map(orphanKey),
      odsSales: await business('ods.sales', ['id', 'datetime', 'total_amount', 'customer_id', 'items']),
      odsProducts: await business('ods.products', ['product_sku', 'description', 'unit_amount', 'supplier']),
      odsCustomers: await business('ods.customers', ['customer_id', 'emails', 'phone_numbers']),
      rejects: (await rows('ods.rejects')).map((r) => ({
        entity: r.entity,
        key: r.record_key,
        reason: r.reason,
        record: r.record,
      })),
      rawSales: Number((await warehouse.query('SELECT count(*) AS n FROM raw.sales'))[0]?.n),
      // The bucket folder, and the connector's staged runs in the work folder beside it.
      files: [...(await store.list('')), ...(await work.list(''))],
    };
  } finally {
    close();
  }
}

function assertMatchesSandbox(snap: Awaited<ReturnType<typeof snapshot>>, sandbox: Sandbox) {
  const expected = expectedFrom(sandbox.data);
  assert.deepEqual(
    snap.mart,
    sortRows(expected.mart.map((r) => canonicalRow(tableNamed('dmt.sales_items'), r))),
  );
  assert.deepEqual(snap.orphans, sortRows(expected.orphans));
  assert.equal(snap.odsSales.length, expected.odsSales);
  const rejects: Record<string, number> = {};
  for (const r of snap.rejects) rejects[String(r.entity)] = (rejects[String(r.entity)] ?? 0) + 1;
  assert.deepEqual(rejects, expected.rejects);
  assert.ok(
    expected.mart.length > 1000 && expected.orphans.length > 10,
    'the data exercises the mart and the orphans',
  );
}

const settledOnly = (files: { key: string }[]) =>
  files.filter((f) => /\/(in|processing|staging)\//.test(f.key)).map((f) => f.key);

describe('the local pipeline end to end (retail-pipeline run / process / replay / status)', () => {
  test('with faults: the mart equals an independent computation; re-running and replaying change nothing', async () => {
    await using home = await tempDir();
    const sandbox = await sandboxWith(0.2);
    try {
      const env = { RETAIL_API_URL: sandbox.url, RETAIL_API_KEY: KEY, PIPELINE_HOME: home.path };
      const first = await runCli(['run'], env);
      assert.equal(first.code, 0, first.stderr);
      const clean = await snapshot(home.path);
      assertMatchesSandbox(clean, sandbox);
      assert.deepEqual(settledOnly(clean.files), [], 'nothing left in in/, processing/ or staging/');

      const again = await runCli(['run'], env);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /^sales: 0 records from sale id \d+/m, 'the sales connector is incremental');
      const rerun = await snapshot(home.path);
      for (const key of ['mart', 'orphans', 'odsSales', 'odsProducts', 'odsCustomers', 'rejects'] as const) {
        assert.deepEqual(rerun[key], clean[key], `re-running changed ${key}`);
      }

      const archived = clean.files.find((f) => f.key.startsWith('sales/archive/'));
      assert.ok(archived);
      const replayed = await runCli(['replay', archived.key], env);
      assert.equal(replayed.code, 0, replayed.stderr);
      const afterReplay = await snapshot(home.path);
      for (const key of ['mart', 'orphans', 'odsSales', 'rejects'] as const) {
        assert.deepEqual(afterReplay[key], clean[key], `replaying an archived file changed ${key}`);
      }
      assert.equal(
        afterReplay.rawSales,
        clean.rawSales * 2,
        'raw is append-only: the replay is there once more',
      );

      const status = await runCli(['status', '--json'], env);
      assert.equal(status.code, 0, status.stderr);
      const report = JSON.parse(status.stdout);
      assert.equal(report.files.sales.archive, 1, 'the replayed file moved out of archive/ and back in');
      assert.equal(
        report.warehouse.tables.find((t: { table: string }) => t.table === 'dmt.sales_items').rows,
        clean.mart.length,
      );
      const human = await runCli(['status'], env);
      assert.match(human.stdout, /dmt\.sales_items\s+\d+/);
      assert.match(human.stdout, /Orphans: missing_customer \d+, missing_product \d+/);

      for (const r of [first, again, replayed, status, human])
        assert.ok(!(r.stdout + r.stderr).includes(KEY));
      assert.deepEqual(
        await filesContaining(home.path, KEY),
        [],
        'the API key is in no file under PIPELINE_HOME',
      );
    } finally {
      await sandbox.close();
    }
  });

  test('a malformed file goes to failed/ with its sidecar and exit 3; replay fails again cleanly; the fixed file lands', async () => {
    await using home = await tempDir();
    const env = { PIPELINE_HOME: home.path };
    const inDir = join(home.path, 'bucket', 'sales', 'in');
    await mkdir(inDir, { recursive: true });
    const good =
      '{"id":1,"datetime":"2025-07-19T10:00:00Z","total_amount":"5","customer_id":"C1","items":[]}';
    await writeFile(
      join(inDir, 'by-hand.json'),
      `${good}\n{"id":2,"datetime":\n${good.replace('"id":1', '"id":3')}\n`,
    );

    const processed = await runCli(['process'], env);
    assert.equal(processed.code, 3, processed.stderr);
    assert.match(processed.stdout, /FAILED sales\/in\/by-hand\.json: line 2: not valid JSON/);
    let snap = await snapshot(home.path);
    const failed = snap.files.map((f) => f.key).filter((k) => k.startsWith('sales/failed/'));
    assert.equal(failed.length, 2, `a file and its sidecar: ${failed}`);
    const failedFile = failed.find((k) => k.endsWith('by-hand.json')) ?? '';
    assert.match(failedFile, /^sales\/failed\/\d{4}\/\d\d\/\d\d\/\d\dh\/by-hand\.json$/);
    const sidecar = JSON.parse(await readFile(join(home.path, 'bucket', `${failedFile}.error.json`), 'utf8'));
    assert.equal(sidecar.line, 2);
    assert.match(sidecar.reason, /^line 2: not valid JSON/);
    assert.equal(snap.rawSales, 0, 'none of its rows reached raw');

    const replayed = await runCli(['replay', failedFile], env);
    assert.equal(replayed.code, 3);
    assert.match(replayed.stdout, /FAILED sales\/in\/by-hand\.json: line 2/);
    snap = await snapshot(home.path);
    assert.equal(
      snap.files.filter((f) => f.key.startsWith('sales/failed/')).length,
      2,
      'one failed copy, one sidecar',
    );
    assert.deepEqual(settledOnly(snap.files), []);

    await writeFile(join(inDir, 'by-hand.json'), `${good}\n${good.replace('"id":1', '"id":3')}\n`);
    const fixed = await runCli(['process'], env);
    assert.equal(fixed.code, 0, fixed.stderr);
    snap = await snapshot(home.path);
    assert.equal(snap.rawSales, 2);
    assert.deepEqual(
      snap.odsSales.map((s) => s.id),
      ['1', '3'],
    );
  });

  test('usage and lookup errors: one line, the right exit code', async () => {
    await using home = await tempDir();
    const env = { PIPELINE_HOME: home.path };
    const cases: [string[], number, RegExp][] = [
      [
        ['replay', 'sales/in/x.json'],
        2,
        /replay takes a file under \{entity\}\/failed\/ or \{entity\}\/archive\//,
      ],
      [['replay'], 2, /name the object to replay/],
      [
        ['replay', 'sales/failed/2025/07/19/10h/none.json'],
        1,
        /no such object: sales\/failed\/2025\/07\/19\/10h\/none\.json/,
      ],
      [
        ['run', '--entities', 'sales,orders', '--api-url', 'http://127.0.0.1:1', '--api-key', 'k'],
        2,
        /--entities takes/,
      ],
      [['status', 'extra'], 2, /Unexpected argument 'extra'/],
    ];
    for (const [args, code, message] of cases) {
      const r = await runCli(args, env);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.split('\n')[0] ?? '', message);
      assert.ok(!r.stderr.includes('    at '));
    }
  });

  test('kill -9 at random moments of runs, then one more run: exactly the clean result, nothing stuck', async () => {
    await using home = await tempDir();
    const sandbox = await sandboxWith(0.1, 6000);
    try {
      const env = { RETAIL_API_URL: sandbox.url, RETAIL_API_KEY: KEY, PIPELINE_HOME: home.path };
      const args = ['run', '--page-size', '100', '--file-bytes', '256KiB'];
      // Deterministic "random" moments, spread over a run's life (start, extract, load, merge).
      const moments = [350, 900, 1400, 600, 2000];
      let killed = 0;
      for (const ms of moments) {
        const r = await runCli(args, env, (child) => {
          void delay(ms).then(() => child.kill('SIGKILL'));
        });
        if (r.signal === 'SIGKILL') killed++;
        else assert.ok(r.code === 0, r.stderr);
      }
      assert.ok(killed >= 3, `at least three runs were killed (${killed})`);
      const last = await runCli(args, env);
      assert.equal(last.code, 0, last.stderr);
      const snap = await snapshot(home.path);
      assertMatchesSandbox(snap, sandbox);
      assert.deepEqual(settledOnly(snap.files), [], 'no file left in in/, processing/ or staging/');
    } finally {
      await sandbox.close();
    }
  });
});
