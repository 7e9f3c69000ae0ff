/**
 * `npm run bench`: connector throughput against the sandbox (no faults), next to a bare
 * concurrent fetch of the same pages, and peak memory at two volumes (it must not grow with the
 * number of records). The sandbox runs in its own process, as the real API would.
 * BENCH_SALES (default 100000) sets the larger volume; BENCH_CONCURRENCY (default 4) the pages in flight.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KEY = `bench-${process.pid}`;
const SALES = Number(process.env.BENCH_SALES ?? 100_000);
const CONCURRENCY = process.env.BENCH_CONCURRENCY ?? '4';

interface Measure {
  mode: string;
  records: number;
  ms: number;
  peakRssMiB: number;
}

function node(args: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

async function withSandbox<T>(sales: number, fn: (url: string) => Promise<T>): Promise<T> {
  const child = node([
    'functions/entrypoints/cli.ts',
    'sandbox',
    '--port',
    '0',
    '--api-key',
    KEY,
    '--sales',
    String(sales),
  ]);
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /listening on (\S+)/.exec(String(d));
      if (m?.[1]) resolve(m[1]);
    });
    child.once('exit', () => reject(new Error('the sandbox did not start')));
  });
  try {
    return await fn(url);
  } finally {
    child.kill('SIGTERM');
  }
}

async function measure(mode: 'bare' | 'extract', url: string): Promise<Measure> {
  const home = await mkdtemp(join(tmpdir(), 'bench-'));
  try {
    const child = node(['test/bench/worker.ts', mode, url, KEY, home, CONCURRENCY]);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`${mode} worker exited with ${code}`);
    return JSON.parse(out) as Measure;
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

const rows: string[] = [];
const results: Record<string, Measure> = {};
for (const sales of [Math.round(SALES / 5), SALES]) {
  await withSandbox(sales, async (url) => {
    await measure('bare', url); // warm-up: the sandbox builds its pages lazily and the JIT warms
    const bare = await measure('bare', url);
    const connector = await measure('extract', url);
    results[`bare-${sales}`] = bare;
    results[`extract-${sales}`] = connector;
    rows.push(
      `| ${sales.toLocaleString('en')} | ${connector.records.toLocaleString('en')} | ${(bare.ms / 1000).toFixed(2)} s | ${(connector.ms / 1000).toFixed(2)} s | ${(connector.ms / bare.ms).toFixed(2)}x | ${Math.round(connector.records / (connector.ms / 1000)).toLocaleString('en')} | ${bare.peakRssMiB.toFixed(0)} MiB | ${connector.peakRssMiB.toFixed(0)} MiB |`,
    );
  });
}

const small = results[`extract-${Math.round(SALES / 5)}`];
const large = results[`extract-${SALES}`];
process.stdout.write(
  [
    `Connector benchmark — ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}, concurrency ${CONCURRENCY}, page size 250, no faults`,
    '',
    '| sales in API | records written | bare fetch | connector | connector / bare | records/s | bare peak RSS | connector peak RSS |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    small && large
      ? `Peak RSS at ${SALES.toLocaleString('en')} sales vs ${Math.round(SALES / 5).toLocaleString('en')}: ${(large.peakRssMiB / small.peakRssMiB).toFixed(2)}x (flat means streamed, not buffered)`
      : '',
    '',
  ].join('\n'),
);
