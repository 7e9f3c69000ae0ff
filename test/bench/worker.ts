/**
 * One measured job in its own process, so its peak RSS is its own: `bare` fetches every page of
 * /sales with the same concurrency and throws the bodies away (the practical limit); `extract`
 * runs the connector. Prints one JSON line: wall time and peak RSS.
 */
import { performance } from 'node:perf_hooks';
import { JsonLogger } from '../../functions/adapters/common/json-logger.js';
import { extract } from '../../functions/app/extract.js';
import { extractSettings, localExtractPorts } from '../../functions/compose.js';
import { connectorSettings } from '../../functions/core/config.js';
import { Secret } from '../../functions/core/secret.js';

const [mode, url, key, home, concurrency] = process.argv.slice(2);
if (!mode || !url || !key || !home || !concurrency)
  throw new Error('usage: worker bare|extract URL KEY HOME CONCURRENCY');
const started = performance.now();
let records = 0;

if (mode === 'bare') {
  const get = async (page: number) => {
    const response = await fetch(`${url}/sales?page=${page}&page_size=250`, {
      headers: { 'X-API-Key': key },
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
} else {
  const connector = connectorSettings({ concurrency }, {});
  const logger = new JsonLogger(() => undefined, { format: 'json', minSeverity: 'ERROR' });
  const ports = localExtractPorts({ home, api: { apiUrl: url, apiKey: new Secret(key) }, connector, logger });
  const report = await extract({ entity: 'sales' }, ports, extractSettings(connector));
  records = report.runs.reduce((n, r) => n + r.records, 0);
}

const ms = performance.now() - started;
process.stdout.write(
  `${JSON.stringify({ mode, records, ms, peakRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`,
);
