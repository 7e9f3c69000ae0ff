import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { main } from '../../functions/entrypoints/cli.js';
import { type Sandbox, startSandbox } from '../../functions/sandbox/server.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fakes.js';

const KEY = 'stop-e2e-81d0c2aa-key';
const CLI = join(REPO_ROOT, 'functions/entrypoints/cli.ts');
const SALES = 100_000;

/** Resolves when `text()` matches `pattern`, checking as output arrives. */
function waitFor(child: ChildProcess, text: () => string, pattern: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pattern.test(text())) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(check, 20);
    child.once('exit', () => {
      clearInterval(timer);
      if (!pattern.test(text())) reject(new Error(`${what} never appeared; output:\n${text().slice(-2000)}`));
    });
  });
}

/** `run` in a child process, JSON progress on stderr; resolves once the sales extract is under way. */
async function runUntilSalesExtract(home: string, env: NodeJS.ProcessEnv) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, 'run', '--home', home, '--progress', 'json'],
    {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await waitFor(child, () => stderr, /"stage":"extract","entity":"sales"/, 'the sales extract');
  return { child, stderr: () => stderr, exited };
}

/**
 * The real CLI on 100,000 sales: stopped with Ctrl-C at a terminal, killed with -9, and asked for
 * its status while it runs.
 */
describe('stopping a run, killing it, and watching it', () => {
  let sandbox: Sandbox;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const env = () => ({
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    RETAIL_API_URL: sandbox.url,
    RETAIL_API_KEY: KEY,
  });
  const noDuplicates = async (home: string) => {
    const result = await runCli([
      'sql',
      'SELECT count(*) AS n, count(DISTINCT id) AS ids, (SELECT count(*) FROM raw.sales) AS raw FROM ods.sales',
      '--json',
      '--home',
      home,
    ]);
    const [row] = JSON.parse(result.stdout) as { n: number; ids: number; raw: number }[];
    assert.ok(row);
    assert.equal(row.n, row.ids, 'no sale twice in ods');
    return row;
  };

  before(async () => {
    sandbox = await startSandbox({
      apiKey: KEY,
      faultRate: 0,
      seed: 3,
      sales: SALES,
      products: 300,
      customers: 600,
    });
    dir = await tempDir();
  });
  after(async () => {
    await sandbox.close();
    await dir[Symbol.asyncDispose]();
  });

  test('at a terminal: progress, then Ctrl-C exits 130 within 2 s, and the next run resumes and says so', async () => {
    const home = join(dir.path, 'tty');
    // script(1) gives the CLI a pseudo-terminal; a \x03 written to it is the user's Ctrl-C.
    const command = `${process.execPath} --import tsx ${CLI} run --home ${home}`;
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: REPO_ROOT,
      env: { ...env(), TERM: 'xterm' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout?.on('data', (d) => {
      screen += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(
      child,
      () => screen,
      /sales: extract \[[#.]+\] \d+% [\d,]+\/[\d,]+ pages/,
      'the progress bar of sales',
    );
    const pressed = performance.now();
    child.stdin?.write('\x03');
    const code = await exited;
    const seconds = (performance.now() - pressed) / 1000;
    assert.equal(code, 130, screen.slice(-1000));
    assert.ok(seconds < 2, `stopped in ${seconds.toFixed(2)} s`);
    assert.match(screen, /stopped by SIGINT; what was written is kept: run the same command again to resume/);
    assert.ok(screen.includes('\r\u001b[2K'), 'the progress line is redrawn in place');

    const again = await runCli(['run', '--home', home], { RETAIL_API_URL: sandbox.url, RETAIL_API_KEY: KEY });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /\(resumed; \d+ pages were already durable\)|^resumed: /m);
    const sales = await noDuplicates(home);
    assert.equal(Number(sales.raw), sandbox.data.sales.length, 'every record served loaded once');
  });

  test('kill -9, then an immediate re-run (the killed process not even reaped) takes over at once', async () => {
    const home = join(dir.path, 'killed');
    // The API in a process of its own: this test blocks its own event loop below.
    const api = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        CLI,
        'sandbox',
        '--port',
        '0',
        '--api-key',
        KEY,
        '--seed',
        '3',
        '--sales',
        String(SALES),
        '--products',
        '300',
        '--customers',
        '600',
      ],
      { cwd: REPO_ROOT, env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let banner = '';
    api.stdout?.on('data', (d) => {
      banner += d;
    });
    await waitFor(api, () => banner, /listening on http:\/\/\S+ /, 'the sandbox banner');
    const url = /listening on (http:\/\/\S+) /.exec(banner)?.[1] ?? '';
    const apiEnv = { ...env(), RETAIL_API_URL: url };
    try {
      const { child } = await runUntilSalesExtract(home, apiEnv);
      child.kill('SIGKILL');
      // spawnSync blocks this event loop, so the killed child stays a zombie while the re-run starts.
      const rerun = spawnSync(
        process.execPath,
        ['--import', 'tsx', CLI, 'run', '--home', home, '--log-level', 'INFO'],
        {
          cwd: REPO_ROOT,
          env: apiEnv,
          encoding: 'utf8',
          timeout: 240_000,
        },
      );
      assert.equal(rerun.status, 0, rerun.stderr);
      assert.doesNotMatch(rerun.stderr, /already running/);
      assert.match(rerun.stderr + rerun.stdout, /taking over the lease of a stopped extract|resumed/);
      const sales = await noDuplicates(home);
      // The same seed and sizes as the in-process sandbox: the same records.
      assert.equal(Number(sales.raw), sandbox.data.sales.length, 'every record served loaded once');
    } finally {
      api.kill();
    }
  });

  test('status during a run answers within a second with current figures', async () => {
    const home = join(dir.path, 'watched');
    const { child, stderr, exited } = await runUntilSalesExtract(home, env());
    let out = '';
    const started = performance.now();
    const code = await main(['status', '--home', home], env(), {
      stdout: {
        write: (t) => {
          out += t;
        },
        isTTY: false,
      },
      stderr: {
        write: (t) => {
          out += t;
        },
        isTTY: false,
      },
      signal: new AbortController().signal,
    });
    const ms = performance.now() - started;
    assert.equal(code, 0, out);
    assert.ok(ms < 1000, `status took ${ms.toFixed(0)} ms`);
    assert.match(
      out,
      /A run is in progress \(pid \d+\): warehouse figures as of \d\d:\d\d:\d\d UTC; now: sales: extract /,
    );
    assert.match(out, /ods\.products\s+[1-9]\d*\n/, 'products, merged before sales, are counted');
    assert.match(out, /products\s+0\s+0\s+1\s+0/, 'files from the bucket: the products file archived');
    assert.equal(await exited, 0, stderr().slice(-1000));
  });
});
