/**
 * `npm run bench`. The sandbox runs in its own process, as the real API would; every measured
 * job runs in its own process too (peak RSS is its own). Four measures:
 *  1. connector: sales at 1/5 and full volume, next to a bare concurrent fetch of the same pages;
 *  2. the whole local pipeline (API -> bucket -> raw -> ods -> mart) at full volume and at ten
 *     times it (BENCH_LARGE_SALES), each next to a bare fetch of all three endpoints, with the
 *     time of each stage;
 *  3. an "hourly" run after 1% new sales, against the first run;
 *  4. the loader alone on a 10 MB and a 500 MB file: time and peak RSS side by side.
 * BENCH_SALES (default 100000) sets the volume; BENCH_CONCURRENCY (default 4) the pages in flight.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeProductsFile } from '../helpers/big-file.js';

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

async function measure(mode: 'bare' | 'extract' | 'pipeline', url: string, home?: string): Promise<Measure> {
  const dir = home ?? (await mkdtemp(join(tmpdir(), 'bench-')));
  try {
    const child = node(['test/bench/worker.ts', mode, url, KEY, dir, CONCURRENCY]);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`${mode} worker exited with ${code}`);
    return JSON.parse(out) as Measure;
  } finally {
    if (!home) await rm(dir, { recursive: true, force: true });
  }
}

const s = (m: Measure) => `${(m.ms / 1000).toFixed(2)} s`;
const n = (x: number) => Math.round(x).toLocaleString('en');
const lines: string[] = [
  `Benchmark — ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}, concurrency ${CONCURRENCY}, page size 250, no faults`,
  '',
  '1. Connector (sales only)',
  '',
  '| sales in API | records written | bare fetch | connector | connector / bare | records/s | connector peak RSS |',
  '|---|---|---|---|---|---|---|',
];
const connectorRss: number[] = [];
for (const sales of [Math.round(SALES / 5), SALES]) {
  await withSandbox(sales, async (url) => {
    await measure('bare', url); // warm-up
    const bare = await measure('bare', url);
    const connector = await measure('extract', url);
    connectorRss.push(connector.peakRssMiB);
    lines.push(
      `| ${n(sales)} | ${n(connector.records)} | ${s(bare)} (all endpoints) | ${s(connector)} | ${(connector.ms / bare.ms).toFixed(2)}x | ${n(connector.records / (connector.ms / 1000))} | ${connector.peakRssMiB.toFixed(0)} MiB |`,
    );
  });
}
lines.push(
  '',
  `Connector peak RSS at ${n(SALES)} vs ${n(SALES / 5)} sales: ${((connectorRss[1] ?? 0) / (connectorRss[0] ?? 1)).toFixed(2)}x`,
);

interface PipelineMeasure extends Measure {
  /** Milliseconds per `{entity} {stage}`. */
  stages: Record<string, number>;
}

/**
 * The whole pipeline at one volume, next to a bare fetch of the same pages, in `home` (kept for
 * a later run) or in a temporary one.
 */
async function pipelineAt(sales: number, home?: string) {
  return withSandbox(sales, async (url) => {
    await measure('bare', url); // warm-up
    const bare = await measure('bare', url);
    const pipeline = (await measure('pipeline', url, home)) as PipelineMeasure;
    return { bare, pipeline };
  });
}

const LARGE = Number(process.env.BENCH_LARGE_SALES ?? SALES * 10);
const home = await mkdtemp(join(tmpdir(), 'bench-pipeline-'));
try {
  // The first run's home is kept for the hourly run below.
  const small = { sales: SALES, ...(await pipelineAt(SALES, home)) };
  const large = { sales: LARGE, ...(await pipelineAt(LARGE)) };
  const runs = [small, large];
  lines.push(
    '',
    '2. Whole local pipeline (products, customers, sales -> bucket -> raw -> ods -> dmt)',
    '',
    '| sales | records | bare fetch (3 endpoints) | pipeline | pipeline / bare | sales/s | peak RSS |',
    '|---|---|---|---|---|---|---|',
    ...runs.map(
      ({ sales, bare, pipeline }) =>
        `| ${n(sales)} | ${n(pipeline.records)} | ${s(bare)} | ${s(pipeline)} | ${(pipeline.ms / bare.ms).toFixed(2)}x | ${n(sales / (pipeline.ms / 1000))} | ${pipeline.peakRssMiB.toFixed(0)} MiB |`,
    ),
  );
  const ratio = (r: typeof small) => r.pipeline.ms / r.bare.ms;
  lines.push(
    '',
    `Pipeline / bare at ${n(LARGE)} vs ${n(SALES)} sales: ${(ratio(large) / ratio(small)).toFixed(2)}x (1.00x: the ratio does not grow)`,
    '',
    'Per stage (seconds; a stage runs from its first progress report to the first of the next stage):',
    '',
    `| stage | ${runs.map((r) => `${n(r.sales)} sales`).join(' | ')} |`,
    `|---|${runs.map(() => '---').join('|')}|`,
    ...Object.keys(small.pipeline.stages)
      .filter((stage) => stage !== 'end')
      .map(
        (stage) =>
          `| ${stage} | ${runs.map((r) => ((r.pipeline.stages[stage] ?? 0) / 1000).toFixed(2)).join(' | ')} |`,
      ),
  );
  const first = small.pipeline;
  // One hour later: the same API with 1% more sales (same seed: the first SALES are identical).
  await withSandbox(Math.round(SALES * 1.01), async (url) => {
    const hourly = await measure('pipeline', url, home);
    lines.push(
      '',
      '3. Hourly run after 1% new sales (products and customers in full again, sales incremental)',
      '',
      `| first run | hourly run | hourly / first | records fetched |`,
      '|---|---|---|---|',
      `| ${s(first)} | ${s(hourly)} | ${((100 * hourly.ms) / first.ms).toFixed(1)}% | ${n(hourly.records)} |`,
    );
  });
} finally {
  await rm(home, { recursive: true, force: true });
}

// 4. The loader streams: its memory must not follow the file's size.
lines.push(
  '',
  '4. Loader alone (claim, check, rows file, raw append, archive; products file; no merge)',
  '',
  '| file | rows | time | MB/s | peak RSS |',
  '|---|---|---|---|---|',
);
const loaderRss: number[] = [];
for (const megabytes of [10, 500]) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-load-'));
  try {
    await mkdir(join(dir, 'bucket', 'products', 'in'), { recursive: true });
    const file = await writeProductsFile(join(dir, 'bucket', 'products', 'in', 'f.json'), megabytes * 1e6);
    const child = node(['test/bench/worker.ts', 'load', dir]);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`load worker exited with ${code}`);
    const load = JSON.parse(out) as Measure;
    loaderRss.push(load.peakRssMiB);
    lines.push(
      `| ${megabytes} MB | ${n(file.records)} | ${s(load)} | ${(file.bytes / 1e6 / (load.ms / 1000)).toFixed(1)} | ${load.peakRssMiB.toFixed(0)} MiB |`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
lines.push(
  '',
  `Loader peak RSS, 500 MB vs 10 MB file: ${((loaderRss[1] ?? 0) / (loaderRss[0] ?? 1)).toFixed(2)}x`,
);
process.stdout.write(`${lines.join('\n')}\n`);
