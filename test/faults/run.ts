import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PubSub } from '@google-cloud/pubsub';
import {
  DEFAULT_RECONCILE_SETTINGS,
  EXCLUSIVE_RECONCILE_SETTINGS,
  reconcile,
} from '../../functions/app/reconcile.js';
import { openLocalRuntime } from '../../functions/compose-local.js';
import { describeError, PipelineError, TransientError } from '../../functions/core/errors.js';
import { CLAIM_STALE_AFTER_MS } from '../../functions/core/loader-limits.js';
import type { ObjectStore } from '../../functions/ports/object-store.js';
import { runTsx } from '../helpers/cli.js';
import { type FakeGcp, startFakeGcp } from '../helpers/fake-gcp.mjs';
import { MemoryLogger, tempDir } from '../helpers/fakes.js';
import { emulatorUnavailable, startPubSubEmulator } from '../helpers/pubsub-emulator.js';
import {
  AheadClock,
  deliver,
  type Endpoints,
  gcpPorts,
  LOADER_SETTINGS,
  type PortHook,
  PROJECT,
  serveLoader,
  TOPIC,
} from './gcp-composition.js';

/**
 * `npm run test:faults`: the loader made to fail at every external call it makes, on both
 * runtimes, and each time the pipeline must converge with nothing stranded and nothing twice.
 *
 * GCP composition (the loader served by the Functions Framework; GCS and BigQuery at the HTTP
 * level; Pub/Sub on the emulator): for each call a clean load makes, in turn,
 *   - a transient fault before the service handled the call, then after it handled it (the
 *     change is made, the answer lost), each followed by Eventarc-style redeliveries;
 *   - a kill -9 of the loader process in the middle of the call, its event then lost, followed
 *     by a reconcile.
 * Local runtime: a kill -9 before each port call of `process`, then a reconcile.
 * After each: the file is in archive/ exactly once, raw holds its rows exactly once, nothing of
 * it is left in in/ or processing/. Ends with `fault points: N, stranded: S, duplicated: D`.
 */

const HERE = fileURLToPath(new URL('./', import.meta.url));
const ROWS = 3;
const product = (file: string, i: number) =>
  JSON.stringify({ product_sku: `${file}-${i}`, description: 'faulted', unit_amount: '2.50' });
const content = (file: string) => `${Array.from({ length: ROWS }, (_, i) => product(file, i)).join('\n')}\n`;

interface Verdict {
  stranded: boolean;
  duplicated: boolean;
  detail: string;
}

async function verdict(store: ObjectStore, name: string, rawRows: number): Promise<Verdict> {
  const base = name.split('/').pop() ?? name;
  const mine = (key: string) => key.endsWith(`/${base}`) || key.endsWith(`-${base}`);
  const waiting = (await store.list('products/in/')).filter((o) => o.key === name).length;
  const processing = (await store.list('products/processing/')).filter((o) =>
    o.key.includes(`/${base}`),
  ).length;
  const archived = (await store.list('products/archive/')).filter((o) => mine(o.key)).length;
  const failed = (await store.list('products/failed/')).filter(
    (o) => mine(o.key) && !o.key.endsWith('.error.json'),
  ).length;
  const detail = `in ${waiting}, processing ${processing}, archive ${archived}, failed ${failed}, raw rows ${rawRows}`;
  return {
    // A good file must end in archive/ with all its rows; failed/ would be a transient fault misread.
    stranded: waiting > 0 || processing > 0 || archived === 0 || failed > 0 || rawRows < ROWS,
    duplicated: archived > 1 || rawRows > ROWS,
    detail,
  };
}

function runChild(script: string, args: string[], env: Record<string, string> = {}) {
  return runTsx(join(HERE, script), args, {
    env: { ...process.env, ...env },
    onSpawn: (child) => pids.add(child),
  });
}
const pids = new Set<{ pid?: number | undefined; kill(signal: NodeJS.Signals): boolean }>();

interface Tally {
  points: number;
  scenarios: number;
  stranded: number;
  duplicated: number;
  failures: string[];
}
const tally: Tally = { points: 0, scenarios: 0, stranded: 0, duplicated: 0, failures: [] };

function record(label: string, v: Verdict) {
  tally.scenarios++;
  if (v.stranded) tally.stranded++;
  if (v.duplicated) tally.duplicated++;
  if (v.stranded || v.duplicated) tally.failures.push(`${label}: ${v.detail}`);
}

/** The Functions Framework prints every failed invocation's stack: injected faults, expected here. */
function quietFrameworkErrors(): () => void {
  const original = console.error;
  console.error = (...args: unknown[]) => {
    if (args.some((a) => a instanceof TransientError || /injected/.test(String(a)))) return;
    original(...args);
  };
  return () => {
    console.error = original;
  };
}

async function gcpSuite(): Promise<void> {
  const unavailable = emulatorUnavailable();
  if (unavailable) {
    if (process.env.CI) throw new Error(`the fault suite needs the Pub/Sub emulator in CI: ${unavailable}`);
    process.stdout.write(`GCP composition skipped: ${unavailable}\n`);
    return;
  }
  const emulator = await startPubSubEmulator(PROJECT);
  const restore = quietFrameworkErrors();
  let fake: FakeGcp | undefined;
  let server: { close(cb: () => void): void } | undefined;
  try {
    const admin = new PubSub({ projectId: PROJECT, apiEndpoint: emulator.host, emulatorMode: true });
    await admin.createTopic(TOPIC);
    await admin.close();
    fake = await startFakeGcp({ gcs: { autoCreateBuckets: true } });
    const endpoints: Endpoints = { gcs: fake.gcs.url, bigquery: fake.bigquery.url, pubsub: emulator.host };
    const clock = new AheadClock();

    // Port faults: a TransientError before or after the nth call of one port method.
    let plan: { call: string; n: number; phase: 'before' | 'after' } | undefined;
    const seen = new Map<string, number>();
    const portCalls: string[] = [];
    const hook: PortHook = (call, phase) => {
      if (phase === 'before') {
        seen.set(call, (seen.get(call) ?? 0) + 1);
        portCalls.push(call);
      }
      if (plan && plan.call === call && plan.phase === phase && seen.get(call) === plan.n) {
        plan = undefined;
        throw new TransientError(`injected fault ${phase} ${call}`);
      }
    };
    const ports = gcpPorts(endpoints, clock, hook);
    const loader = await serveLoader('faultLoader', ports);
    server = loader.server;
    const rawRows = (name: string) =>
      fake?.bigquery.tableRows('raw.products').filter((r) => r.SYS_FILE_NAME === name).length ?? 0;

    // The call sites: every request and port call one clean delivery makes.
    const probe = await ports.store.write('products/in/probe.json', content('probe'));
    fake.gcs.clearRequests();
    fake.bigquery.clearRequests();
    seen.clear();
    portCalls.length = 0;
    if ((await deliver(loader.url, 'products/in/probe.json', probe.generation)) !== 204)
      throw new Error('the clean delivery failed');
    const points = [
      ...fake.gcs.requests.map((r, i) => ({ service: 'gcs' as const, n: i + 1, op: r.op })),
      ...fake.bigquery.requests.map((r, i) => ({ service: 'bigquery' as const, n: i + 1, op: r.op })),
      ...portCalls.map((call, i) => ({
        service: 'port' as const,
        n: portCalls.slice(0, i + 1).filter((c) => c === call).length,
        op: call,
      })),
    ];
    tally.points += points.length;
    process.stdout.write(
      `GCP composition: ${points.length} call sites (${points.map((p) => p.op).join(', ')})\n`,
    );

    let file = 0;
    const settleAndCheck = async (label: string, name: string, generation: string, redeliver: boolean) => {
      let status = 0;
      for (let attempt = 0; redeliver && status !== 204 && attempt < 8; attempt++) {
        if (attempt > 0) clock.aheadMs += CLAIM_STALE_AFTER_MS + 1000; // Eventarc's backoff, compressed
        status = await deliver(loader.url, name, generation);
      }
      if (!redeliver) {
        // The event is lost with the process: the scheduled reconciler finds the work once stale.
        clock.aheadMs += DEFAULT_RECONCILE_SETTINGS.arrivalLostAfterMs + CLAIM_STALE_AFTER_MS;
        const report = await reconcile(ports, LOADER_SETTINGS, DEFAULT_RECONCILE_SETTINGS, ['products']);
        if (report.stuck.length) tally.failures.push(`${label}: stuck ${report.stuck.map((s) => s.reason)}`);
      }
      // Every failure the loader met was named by an adapter (transient or terminal), not a raw
      // client error it could only guess about.
      const logged = (ports.logger as MemoryLogger).entries.splice(0);
      for (const e of logged) {
        if (e.context.error !== undefined && !(e.context.error instanceof PipelineError))
          tally.failures.push(
            `${label}: an unclassified error reached the loader: ${describeError(e.context.error)}`,
          );
      }
      record(label, await verdict(ports.store, name, rawRows(name)));
    };

    for (const point of points) {
      for (const phase of ['before', 'after'] as const) {
        const name = `products/in/fault-${++file}.json`;
        const info = await ports.store.write(name, content(`f${file}`));
        seen.clear();
        if (point.service === 'port') plan = { call: point.op, n: point.n, phase };
        else {
          let count = 0;
          fake[point.service].failNext({
            match: () => ++count === point.n,
            afterHandling: phase === 'after',
          });
        }
        await settleAndCheck(`${point.op} #${point.n}, 503 ${phase} handling`, name, info.generation, true);
        plan = undefined;
      }
      // A kill -9 of the loader in the middle of this call; the event is never delivered again.
      const name = `products/in/kill-${++file}.json`;
      const info = await ports.store.write(name, content(`k${file}`));
      let env: Record<string, string> = {};
      if (point.service === 'port') env = { FAULT_KILL_AT: `${point.op}:${point.n}` };
      else {
        let count = 0;
        fake[point.service].failNext({
          match: () => {
            if (++count !== point.n) return false;
            for (const child of pids) child.kill('SIGKILL');
            return true;
          },
          afterHandling: true,
        });
      }
      const child = await runChild(
        'loader-child.ts',
        [endpoints.gcs, endpoints.bigquery, endpoints.pubsub, name, info.generation],
        env,
      );
      pids.clear();
      if (child.signal !== 'SIGKILL')
        tally.failures.push(
          `kill at ${point.op} #${point.n}: the loader was not killed (${child.stderr.trim().split('\n').pop()})`,
        );
      await settleAndCheck(`kill -9 during ${point.op} #${point.n}`, name, info.generation, false);
    }
  } finally {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await fake?.stop();
    await emulator.stop();
    restore();
  }
}

async function localSuite(): Promise<void> {
  await using dir = await tempDir('retail-faults-');
  const seed = async (home: string, name: string) => {
    await mkdir(join(home, 'bucket', 'products', 'in'), { recursive: true });
    await writeFile(join(home, 'bucket', name), content(name));
  };
  const probeHome = join(dir.path, 'probe');
  await seed(probeHome, 'products/in/probe.json');
  const probe = await runChild('local-child.ts', [probeHome], { FAULT_COUNT: '1' });
  const calls = JSON.parse(probe.stdout.trim().split('\n').pop() ?? '[]') as string[];
  if (!calls.length) throw new Error(`the local probe made no calls: ${probe.stderr}`);
  tally.points += calls.length;
  process.stdout.write(`local runtime: ${calls.length} steps (${calls.join(', ')})\n`);
  for (const [i, call] of calls.entries()) {
    const home = join(dir.path, `kill-${i}`);
    const name = 'products/in/kill.json';
    await seed(home, name);
    const child = await runChild('local-child.ts', [home], { FAULT_KILL_AT: call });
    if (child.signal !== 'SIGKILL')
      tally.failures.push(`local kill at ${call}: not killed (${child.stderr.trim()})`);
    // What a user does next: run again (the reconcile of the local CLI, in this process).
    const runtime = await openLocalRuntime(home, new MemoryLogger());
    try {
      const report = await reconcile(runtime, LOADER_SETTINGS, EXCLUSIVE_RECONCILE_SETTINGS, ['products']);
      if (report.stuck.length)
        tally.failures.push(`local kill at ${call}: stuck ${report.stuck.map((s) => s.reason)}`);
      const rows = Number(
        (
          await runtime.warehouse.query(
            `SELECT count(*) AS n FROM raw.products WHERE SYS_FILE_NAME = '${name}'`,
          )
        )[0]?.n,
      );
      const merged = Number(
        (
          await runtime.warehouse.query(
            "SELECT count(*) AS n FROM ods.products WHERE product_sku LIKE 'products/in/kill.json-%'",
          )
        )[0]?.n,
      );
      const v = await verdict(runtime.store, name, rows);
      if (merged !== ROWS) v.stranded = true;
      record(`local kill -9 before ${call}`, { ...v, detail: `${v.detail}, ods rows ${merged}` });
    } finally {
      runtime.close();
    }
  }
}

try {
  await gcpSuite();
  await localSuite();
} catch (error) {
  tally.failures.push(`the suite itself failed: ${error instanceof Error ? error.stack : String(error)}`);
}
for (const failure of tally.failures) process.stdout.write(`FAIL ${failure}\n`);
process.stdout.write(`scenarios: ${tally.scenarios}\n`);
process.stdout.write(
  `fault points: ${tally.points}, stranded: ${tally.stranded}, duplicated: ${tally.duplicated}\n`,
);
process.exit(tally.failures.length || tally.stranded || tally.duplicated ? 1 : 0);
