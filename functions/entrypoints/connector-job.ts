import { extract } from '../app/extract.js';
import { Lease } from '../app/lease.js';
import { buildLogger, extractSettings, gcpConnectorPorts } from '../compose.js';
import { type ConnectorJobConfig, parseConnectorJob } from '../core/config.js';
import {
  ConfigError,
  describeError,
  isRetryable,
  RetriesExhaustedError,
  StoppedError,
  UsageError,
} from '../core/errors.js';
import { isMainModule } from './main-module.js';

/**
 * The connector as a Cloud Run Job task: `--endpoint sales|products|customers`
 * `[--start_sales_id N]` (the scheduler's per-entity overrides), settings from the environment,
 * the API key from Secret Manager. Exit codes: 0 done; 1 a transient failure (a retried task
 * resumes after the last durable page); 2 a configuration or usage error (a refused API key too);
 * 3 any other failure; 143 stopped by SIGTERM (the next execution resumes).
 * Cloud Run retries a failed task whatever its code (up to the job's max retries), so a
 * terminal failure costs a few quick attempts; the code and the one-line error tell which it was.
 */
export const JOB_EXIT = { ok: 0, transient: 1, config: 2, terminal: 3, sigterm: 143 } as const;

/**
 * Cloud Run sends SIGTERM, then SIGKILL 10 seconds later, when it shuts a container instance
 * down (https://cloud.google.com/run/docs/container-contract#instance-shutdown). The jobs' pages
 * say only that a task over its timeout or cancelled is stopped
 * (https://cloud.google.com/run/docs/configuring/task-timeout); we take the same contract for
 * them, unverified. On SIGTERM the task stops requesting pages, abandons those in flight, lets
 * the pages it has assemble; after this many milliseconds it releases the lease (at most
 * JOB_LEASE_RELEASE_MS more) and exits 143: within 8 s in all.
 */
export const JOB_STOP_GRACE_MS = 7000;
const JOB_LEASE_RELEASE_MS = 1000;

export async function runConnectorJob(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<number> {
  const logger = buildLogger('json', { write: (text) => void process.stdout.write(text), isTTY: false });
  let config: ConnectorJobConfig;
  try {
    config = parseConnectorJob(argv, env);
  } catch (error) {
    logger.log('ERROR', describeError(error));
    return JOB_EXIT.config;
  }
  const job = logger.child({
    entity: config.entity,
    execution: env.CLOUD_RUN_EXECUTION,
    task: env.CLOUD_RUN_TASK_INDEX,
  });
  try {
    const ports = await gcpConnectorPorts(config, job, {
      host: env.CLOUD_RUN_EXECUTION ?? 'cloud-run-job',
      owner: `${env.CLOUD_RUN_JOB ?? 'connector'}/${env.CLOUD_RUN_EXECUTION ?? 'local'}`,
    });
    const report = await extract(
      { entity: config.entity, startSalesId: config.startSalesId },
      { ...ports, signal },
      extractSettings(config.connector),
    );
    job.log('INFO', 'connector finished', {
      runs: report.runs.map((r) => ({ run: r.runId, records: r.records, files: r.files.length })),
    });
    return JOB_EXIT.ok;
  } catch (error) {
    if (error instanceof StoppedError) {
      job.log(
        'WARNING',
        `${describeError(error)}: staged pages are kept; the next execution resumes after them`,
      );
      return JOB_EXIT.sigterm;
    }
    job.log('ERROR', describeError(error), { retryable: isRetryable(error) });
    if (error instanceof ConfigError || error instanceof UsageError) return JOB_EXIT.config;
    // Faults that outlasted the retries of one request may pass by the next attempt of the task.
    const transient = isRetryable(error) || error instanceof RetriesExhaustedError;
    return transient ? JOB_EXIT.transient : JOB_EXIT.terminal;
  }
}

if (isMainModule(import.meta.url)) {
  const controller = new AbortController();
  process.once('SIGTERM', () => {
    controller.abort('SIGTERM');
    setTimeout(() => {
      void Lease.releaseAll(JOB_LEASE_RELEASE_MS).finally(() => process.exit(JOB_EXIT.sigterm));
    }, JOB_STOP_GRACE_MS).unref();
  });
  runConnectorJob(process.argv.slice(2), process.env, controller.signal).then((code) => process.exit(code));
}
