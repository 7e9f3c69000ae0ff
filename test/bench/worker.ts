/**
 * One measured job in its own process, so its peak RSS is its own. Prints one JSON line.
 * - `bare`: fetches every page of the given endpoints with the same concurrency and throws the
 *   bodies away (the practical limit of any client).
 * - `extract`: the connector for sales.
 * - `pipeline`: the whole local pipeline (`run`): products, customers, sales, to the mart.
 */
import { performance } from 'node:perf_hooks';
import { JsonLogger } from '../../functions/adapters/common/json-logger.js';
import { extract } from '../../functions/app/extract.js';
import { processWaiting, runEntities } from '../../functions/app/pipeline.js';
import { extractSettings } from '../../functions/compose.js';
import { localExtractPorts, openLocalRuntime } from '../../functions/compose-local.js';
import { connectorSettings } from '../../functions/core/config.js';
import { ENTITIES } from '../../functions/core/entities.js';
import { Secret } from '../../functions/core/secret.js';

const [mode, url, key, home, concurrency] = process.argv.slice(2);
if (mode === 'load') {
  // `load HOME`: the loader alone (claim, check, rows file, raw append, archive) on the files
  // waiting in HOME's bucket; the merge is not started (it runs in BigQuery in production).
  const [, loadHome] = process.argv.slice(2);
  if (!loadHome) throw new Error('usage: worker load HOME');
  const started = performance.now();
  const runtime = await openLocalRuntime(
    loadHome,
    new JsonLogger(() => undefined, { format: 'json', minSeverity: 'ERROR' }),
  );
  const ports = { ...runtime, workflows: { start: async () => undefined } };
  const report = await processWaiting(ports, { maxFileBytes: 2 ** 30 });
  runtime.close();
  const loaded = report.outcomes.filter((o) => o.status === 'loaded');
  if (loaded.length !== report.outcomes.length)
    throw new Error(`not loaded: ${JSON.stringify(report.outcomes)}`);
  const records = loaded.reduce((n, o) => n + ('rows' in o ? o.rows : 0), 0);
  process.stdout.write(
    `${JSON.stringify({ mode, records, ms: performance.now() - started, peakRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`,
  );
  process.exit(0);
}
if (!mode || !url || !key || !home || !concurrency)
  throw new Error('usage: worker bare|extract|pipeline URL KEY HOME CONCURRENCY | worker load HOME');
const started = performance.now();
let records = 0;
/** Milliseconds per `{entity} {stage}` (pipeline mode). */
const stages: Record<string, number> = {};
const api = { apiUrl: url, apiKey: new Secret(key) };
const connector = connectorSettings({ concurrency: String(concurrency) }, {});
const logger = new JsonLogger(() => undefined, { format: 'json', minSeverity: 'ERROR' });

async function bare(endpoint: string): Promise<void> {
  const get = async (page: number) => {
    const response = await fetch(`${url}/${endpoint}?page=${page}&page_size=250`, {
      headers: { 'X-API-Key': key as string },
    });
    return JSON.parse(await response.text()) as { data: unknown[]; total_pages: number };
  };
  const first = await get(1);
  records += first.data.length;
  let next = 2;
  const workers = Array.from({ length: Number(concurrency) }, async () => {
    while (next <= first.total_pages + 1) {
      const page = await get(next++);
      records += page.data.length;
    }
  });
  await Promise.all(workers);
}

if (mode === 'bare') {
  for (const endpoint of ENTITIES) await bare(endpoint);
} else if (mode === 'extract') {
  const ports = localExtractPorts({ home, api, connector, logger });
  const report = await extract({ entity: 'sales' }, ports, extractSettings(connector));
  records = report.runs.reduce((n, r) => n + r.records, 0);
} else {
  // As `run` wires it (the status snapshot included); every progress event marks where the time
  // goes: the stage and entity it names run from that event to the next one of another stage.
  const runtime = await openLocalRuntime(home, logger);
  let current = 'open';
  let since = performance.now();
  const mark = (stage: string) => {
    if (stage === current) return;
    const now = performance.now();
    stages[current] = (stages[current] ?? 0) + now - since;
    current = stage;
    since = now;
  };
  runtime.onProgress = (event) => mark(`${event.entity} ${event.stage}`);
  const steps = [];
  for (const entity of ENTITIES) {
    mark(`${entity} extract`);
    steps.push(
      ...(await runEntities(
        [entity],
        {
          extract: {
            ...localExtractPorts({ home, api, connector, logger, runtime }),
            progress: runtime.progress,
          },
          ingest: runtime,
        },
        { extract: extractSettings(connector), ingest: { maxFileBytes: 2 ** 30 } },
      )),
    );
  }
  mark('close');
  records = steps.flatMap((s) => s.extract.runs).reduce((n, r) => n + r.records, 0);
  const [mart] = await runtime.warehouse.query('SELECT count(*) AS n FROM dmt.sales_items');
  runtime.close();
  mark('end');
  process.stderr.write(`mart rows: ${mart?.n}\n`);
}

const ms = performance.now() - started;
process.stdout.write(
  `${JSON.stringify({ mode, records, ms, peakRssMiB: process.resourceUsage().maxRSS / 1024, stages })}\n`,
);
