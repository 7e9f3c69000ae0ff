import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { COMMANDS, renderOptionsMarkdown } from '../../functions/core/config.js';
import { ALL_TABLES } from '../../functions/core/schema.js';
import { type Sandbox, startSandbox } from '../../functions/sandbox/server.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fakes.js';

const KEY = 'operators-e2e-2b7f0c1e-key';

/** Every command's help, the version, and bad input: one line on stderr and the documented exit code. */
describe('the command line: help, version, bad input', () => {
  for (const command of COMMANDS.filter((c) => c !== 'help' && c !== 'version')) {
    test(`${command} --help and help ${command} print that command's usage and options`, async () => {
      const viaFlag = await runCli([command, '--help']);
      const viaHelp = await runCli(['help', command]);
      assert.equal(viaFlag.code, 0);
      assert.equal(viaHelp.stdout, viaFlag.stdout);
      assert.match(viaFlag.stdout, new RegExp(`^Usage: retail-pipeline ${command} `));
      assert.doesNotMatch(viaFlag.stdout, /^Commands:/m, 'not the general help');
    });
  }

  test('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const result = await runCli(['--version']);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, `retail-pipeline ${pkg.version}\n`);
  });

  test('the README table of options is the one the declarations generate', async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
    const block = /<!-- options:start -->\n([\s\S]*?)\n<!-- options:end -->/.exec(readme)?.[1];
    assert.equal(block, renderOptionsMarkdown(), 'run npm run docs:options to regenerate it');
  });

  const cases: [string, string[], Record<string, string>, number, RegExp][] = [
    ['an unknown command', ['frobnicate'], {}, 2, /unknown command "frobnicate"/],
    ['help on an unknown command', ['help', 'frobnicate'], {}, 2, /no help on "frobnicate"/],
    [
      'a negative number',
      ['sandbox', '--sales', '-5'],
      {},
      2,
      /--sales must be an integer from 0 to 10000000, not "-5"/,
    ],
    [
      'a negative fault rate',
      ['sandbox', '--fault-rate', '-0.5'],
      {},
      2,
      /--fault-rate must be a number from 0 to 1, not "-0.5"/,
    ],
    [
      'a bad variable',
      ['process'],
      { CONNECTOR_PAGE_SIZE: '0', LOADER_QUIET_MS: 'soon' },
      2,
      /LOADER_QUIET_MS must be an integer/,
    ],
    ['a missing API URL', ['run', '--home', '/tmp/unused-home'], {}, 2, /missing Retail API URL/],
    [
      'replay of a file outside the bucket',
      ['replay', '/etc/passwd'],
      {},
      2,
      /\/etc\/passwd is not in the bucket .*; name an object/,
    ],
    [
      'status of a home that does not exist',
      ['status', '--home', '/tmp/retail-pipeline-no-such-home'],
      {},
      2,
      /no pipeline home at \/tmp\/retail-pipeline-no-such-home/,
    ],
    [
      'a home that cannot be written',
      ['process', '--home', '/sys/retail-pipeline-home'],
      {},
      2,
      /cannot write to the pipeline home \/sys\/retail-pipeline-home \(E[A-Z]+\); pass --home/,
    ],
    [
      'a home under a file',
      ['process', '--home', '/etc/passwd/home'],
      {},
      2,
      /cannot write to the pipeline home \/etc\/passwd\/home \(ENOTDIR\)/,
    ],
    ['sql without a query', ['sql'], {}, 2, /sql: give one query/],
    [
      'an option the command does not take',
      ['orphans', '--entity', 'products'],
      {},
      2,
      /orphans: Unknown option '--entity'/,
    ],
  ];
  for (const [what, args, env, code, message] of cases) {
    test(`${what}: exit ${code}, one line`, async () => {
      const result = await runCli(args, env);
      assert.equal(result.code, code, result.stderr);
      const firstLine = result.stderr.split('\n')[0] ?? '';
      assert.match(firstLine, message);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(result.stdout, '');
    });
  }
  test('status never creates the home it is pointed at', async () => {
    await runCli(['status', '--home', '/tmp/retail-pipeline-no-such-home']);
    assert.equal(existsSync('/tmp/retail-pipeline-no-such-home'), false);
  });
});

describe('a pipeline home after a run: rejects, orphans, sql, descriptions, status', () => {
  let sandbox: Sandbox;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let home: string;
  const cli = (args: string[], env: Record<string, string> = {}) => runCli([...args, '--home', home], env);
  const json = async (args: string[]) => {
    const result = await cli([...args, '--json']);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as Record<string, unknown>[];
  };

  before(async () => {
    sandbox = await startSandbox({
      apiKey: KEY,
      faultRate: 0,
      seed: 9,
      sales: 1500,
      products: 200,
      customers: 300,
    });
    dir = await tempDir();
    home = join(dir.path, 'home');
    const run = await cli(['run'], { RETAIL_API_URL: sandbox.url, RETAIL_API_KEY: KEY });
    assert.equal(run.code, 0, run.stderr);
  });
  after(async () => {
    await sandbox.close();
    await dir[Symbol.asyncDispose]();
  });

  test('a wrong API key exits 2 with one line and never shows the key', async () => {
    const result = await cli(['run'], { RETAIL_API_URL: sandbox.url, RETAIL_API_KEY: 'wrong-key-5f1e' });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr.trim().split('\n').at(-1) ?? '',
      /refused the API key \(HTTP 401\); check --api-key/,
    );
    assert.doesNotMatch(result.stderr + result.stdout, /wrong-key-5f1e/);
  });

  test('rejects and orphans list exactly what the tables hold, filtered', async () => {
    const [counts] = await json([
      'sql',
      'SELECT (SELECT count(*) FROM ods.rejects) AS rejects, (SELECT count(*) FROM dmt.sales_items_orphans) AS orphans',
    ]);
    const rejects = await json(['rejects', '--limit', '0']);
    const orphans = await json(['orphans', '--limit', '0']);
    assert.ok(rejects.length > 0 && orphans.length > 0, 'the sandbox sends bad records and orphans');
    assert.equal(rejects.length, Number(counts?.rejects));
    assert.equal(orphans.length, Number(counts?.orphans));
    const sales = await json(['rejects', '--entity', 'sales', '--limit', '0']);
    assert.ok(sales.length > 0 && sales.every((r) => r.entity === 'sales'));
    const reason = String(sales[0]?.reason);
    const byReason = await json(['rejects', '--reason', reason, '--limit', '0']);
    assert.deepEqual(
      byReason,
      rejects.filter((r) => String(r.reason).includes(reason)),
    );
    assert.equal((await json(['rejects', '--limit', '2'])).length, 2);
    const file = String(orphans[0]?.file);
    assert.ok(file.startsWith('sales/in/'), 'an orphan names the file of its sale');
    assert.equal((await json(['orphans', '--file', 'no-such-file'])).length, 0);
    const table = await cli(['rejects', '--entity', 'sales', '--limit', '3']);
    assert.match(table.stdout, /^entity\s+record_key\s+reason/);
    assert.match(table.stdout, /\(3 rows\)\n$/);
  });

  test('sql reads only: writes and files outside the warehouse are refused, nothing changes', async () => {
    const count = async () => Number((await json(['sql', 'SELECT count(*) AS n FROM ods.sales']))[0]?.n);
    const rows = await count();
    assert.ok(rows > 0);
    for (const query of [
      'DELETE FROM ods.sales',
      "COPY ods.sales TO '/tmp/retail-pipeline-leak.csv'",
      "SELECT * FROM read_csv('/etc/passwd')",
      'SELECT 1; DELETE FROM ods.sales',
    ]) {
      const result = await cli(['sql', query]);
      assert.equal(result.code, 2, `${query}: ${result.stderr}`);
      assert.equal(result.stderr.trim().split('\n').length, 1);
    }
    assert.equal(await count(), rows);
    assert.equal(existsSync('/tmp/retail-pipeline-leak.csv'), false);
  });

  test('DuckDB tables and columns carry the descriptions BigQuery has', async () => {
    const mart = ALL_TABLES.find((t) => t.dataset === 'dmt' && t.name === 'sales_items');
    assert.ok(mart);
    const [table] = await json([
      'sql',
      "SELECT comment FROM duckdb_tables() WHERE schema_name = 'dmt' AND table_name = 'sales_items'",
    ]);
    assert.equal(table?.comment, mart.description);
    const columns = await json([
      'sql',
      "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'dmt' AND table_name = 'sales_items'",
    ]);
    assert.deepEqual(
      Object.fromEntries(columns.map((c) => [c.column_name, c.comment])),
      Object.fromEntries(mart.fields.map((f) => [f.name, f.description])),
    );
  });

  test('process: a file still being copied in waits until complete; a hidden name is a file like any other; a subfolder file goes to failed/, not stranded', async () => {
    const bucket = join(home, 'bucket');
    const lines = (await json(['sql', 'SELECT CAST(record AS VARCHAR) AS r FROM ods.rejects LIMIT 0']))
      .length; // warm
    assert.equal(lines, 0);
    const products = Array.from({ length: 400 }, (_, i) =>
      JSON.stringify({
        product_sku: `COPY-${i}`,
        description: `copied ${i}`,
        unit_amount: '1.50',
        supplier: 'S',
      }),
    );
    await mkdir(join(bucket, 'products/in/nested'), { recursive: true });
    await writeFile(join(bucket, 'products/in/nested/deep.json'), `${products[0]}\n`);
    await writeFile(join(bucket, 'products/in/.partial.json'), `${products[1]}\n`);
    await writeFile(join(bucket, '.tmp/left-by-a-killed-run'), 'junk').catch(async () => {
      await mkdir(join(bucket, '.tmp'), { recursive: true });
      await writeFile(join(bucket, '.tmp/left-by-a-killed-run'), 'junk');
    });
    const target = join(bucket, 'products/in/copied.json');
    await writeFile(target, `${products.slice(0, 100).join('\n')}\n`);
    const processing = cli(['process', '--quiet-ms', '800']);
    for (let i = 100; i < 400; i += 100) {
      await delay(300);
      await appendFile(target, `${products.slice(i, i + 100).join('\n')}\n`);
    }
    const result = await processing;
    assert.equal(result.code, 3, 'the subfolder file went to failed/');
    assert.match(result.stdout, /loaded products\/in\/copied\.json: 400 rows/);
    assert.match(result.stdout, /FAILED products\/in\/nested\/deep\.json: .*subfolder/);
    assert.match(result.stdout, /loaded products\/in\/\.partial\.json: 1 rows/);
    assert.equal(
      existsSync(join(bucket, '.tmp/left-by-a-killed-run')),
      false,
      'temporary files of a killed run are swept',
    );
    const status = await cli(['status']);
    assert.match(status.stdout, /^products\s+0\s+0\s+\d+\s+1$/m, 'nothing left in in/; one file in failed/');
    assert.match(status.stdout, /In failed\/ .*\n {2}products\/failed\/.*deep\.json: .*subfolder/);
  });
});
