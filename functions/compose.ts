import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HttpRetailApi } from './adapters/common/http-retail-api.js';
import { JsonLogger, type LogFormat } from './adapters/common/json-logger.js';
import { CryptoRandomness, SystemClock } from './adapters/common/system-clock.js';
import type { ExtractPorts, ExtractSettings } from './app/extract.js';
import type { IngestPorts, IngestSettings } from './app/ingest-object.js';
import { withRetries } from './app/retry.js';
import {
  type ConnectorJobConfig,
  type ConnectorSettings,
  type GcpConfig,
  parseGcpConfig,
} from './core/config.js';
import { ConfigError } from './core/errors.js';
import { DEFAULT_RETRY_POLICY } from './core/retry.js';
import type { Secret } from './core/secret.js';
import type { Clock, Randomness } from './ports/clock.js';
import type { EventPublisher } from './ports/events.js';
import type { Logger, Severity } from './ports/logger.js';
import type { ObjectStore } from './ports/object-store.js';
import type { Warehouse } from './ports/warehouse.js';
import type { MergeExecution, WorkflowStarter } from './ports/workflows.js';

/** The only place where adapters are built and wired. */

export interface Output {
  readonly write: (text: string) => void;
  readonly isTTY: boolean;
}

export function buildLogger(
  format: LogFormat | undefined,
  output: Output,
  minSeverity: Severity = 'INFO',
): Logger {
  return new JsonLogger(output.write, {
    format: format ?? (output.isTTY ? 'text' : 'json'),
    minSeverity,
  });
}

/** A file of the repository (sql/, workflows/), from the sources (tsx) or from the build (dist/). */
export function repositoryPath(relative: string): string {
  for (const root of ['../', '../../']) {
    const path = fileURLToPath(new URL(`${root}${relative}`, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error(`${relative} not found next to the code`);
}

export function extractSettings(connector: ConnectorSettings): ExtractSettings {
  return {
    concurrency: connector.concurrency,
    pageSize: connector.pageSize,
    targetFileBytes: connector.targetFileBytes,
    retry: connector.retry,
    leaseTtlMs: connector.leaseTtlMs,
  };
}

// ---- the GCP runtime ----------------------------------------------------------------------------
// SDK clients are built here, on first use, never at module load: the local runtime does not
// load them at all, and an event the loader ignores causes no client and no API call.

/** Starts the merge workflow, retrying what a retry can cure (the file is already archived). */
class RetryingWorkflowStarter implements WorkflowStarter {
  constructor(
    private readonly inner: WorkflowStarter,
    private readonly deps: { clock: Clock; randomness: Randomness; logger: Logger },
  ) {}
  start(execution: MergeExecution): Promise<void> {
    return withRetries(`starting the merge of ${execution.object}`, () => this.inner.start(execution), {
      policy: { ...DEFAULT_RETRY_POLICY, maxAttempts: 5 },
      ...this.deps,
    });
  }
}

async function gcpClients(config: GcpConfig) {
  const [{ Storage }, { BigQuery }, { PubSub }] = await Promise.all([
    import('@google-cloud/storage'),
    import('@google-cloud/bigquery'),
    import('@google-cloud/pubsub'),
  ]);
  const { storage: storageEndpoint, bigquery: bigqueryEndpoint, pubsubEmulator } = config.endpoints;
  // An emulator or test endpoint takes no Google credentials: no token is fetched or sent.
  const noAuth = {
    getRequestHeaders: async () => ({}),
    getAccessToken: async () => ({ token: '' }),
    getProjectId: async () => config.projectId,
  };
  return {
    storage: new Storage({
      projectId: config.projectId,
      ...(storageEndpoint ? { apiEndpoint: storageEndpoint, authClient: noAuth as never } : {}),
    }),
    bigquery: new BigQuery({
      projectId: config.projectId,
      location: config.bigqueryLocation,
      ...(bigqueryEndpoint ? { apiEndpoint: bigqueryEndpoint, authClient: noAuth as never } : {}),
    }),
    pubsub: new PubSub({
      projectId: config.projectId,
      ...(pubsubEmulator ? { apiEndpoint: pubsubEmulator, emulatorMode: true } : {}),
    }),
  };
}

/** One GCS bucket with the caller's Google credentials (replay gs://...). */
export async function gcsStore(
  bucket: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ObjectStore> {
  const { Storage } = await import('@google-cloud/storage');
  const { GcsObjectStore } = await import('./adapters/gcp/gcs-object-store.js');
  const projectId = env.GOOGLE_CLOUD_PROJECT?.trim();
  return new GcsObjectStore(new Storage(projectId ? { projectId } : {}).bucket(bucket));
}

export interface GcpCore {
  readonly store: ObjectStore;
  /** The connector's work bucket, when configured (PIPELINE_WORK_BUCKET). */
  readonly work: ObjectStore | undefined;
  readonly warehouse: Warehouse;
  readonly events: EventPublisher;
}

/** Bucket, warehouse and events on Google Cloud, from the deployed pipeline's settings. */
export async function gcpCore(config: GcpConfig, clock: Clock): Promise<GcpCore> {
  const { GcsObjectStore } = await import('./adapters/gcp/gcs-object-store.js');
  const { BigQueryWarehouse } = await import('./adapters/gcp/bigquery-warehouse.js');
  const { PubSubPublisher } = await import('./adapters/gcp/pubsub-publisher.js');
  const clients = await gcpClients(config);
  return {
    store: new GcsObjectStore(clients.storage.bucket(config.bucket)),
    work: config.workBucket ? new GcsObjectStore(clients.storage.bucket(config.workBucket)) : undefined,
    warehouse: new BigQueryWarehouse(clients.bigquery, {
      projectId: config.projectId,
      location: config.bigqueryLocation,
      bucket: config.bucket,
      sqlDir: repositoryPath('sql/bigquery/'),
      clock,
    }),
    events: new PubSubPublisher(clients.pubsub.topic(config.eventsTopic)),
  };
}

/** What the Cloud Function's loader needs, from its environment. */
export async function gcpLoaderDependencies(
  env: Readonly<Record<string, string | undefined>>,
  logger: Logger,
): Promise<{ ports: IngestPorts; settings: IngestSettings }> {
  const config = parseGcpConfig(env);
  const clock = new SystemClock();
  const randomness = new CryptoRandomness();
  const { ExecutionsClient } = await import('@google-cloud/workflows');
  const { WorkflowsStarter } = await import('./adapters/gcp/workflows-starter.js');
  const core = await gcpCore(config, clock);
  const workflows = new RetryingWorkflowStarter(
    new WorkflowsStarter(new ExecutionsClient(), config.mergeWorkflow),
    {
      clock,
      randomness,
      logger,
    },
  );
  const { store, warehouse, events } = core;
  return {
    ports: { store, warehouse, events, workflows, clock, randomness, logger },
    settings: config.loader,
  };
}

/** What the Cloud Run Job's connector needs: the API key from Secret Manager, GCS, BigQuery, Pub/Sub. */
export async function gcpConnectorPorts(
  config: ConnectorJobConfig,
  logger: Logger,
  identity: { owner: string; host: string },
  overrides: Partial<ExtractPorts> = {},
): Promise<ExtractPorts> {
  const clock = new SystemClock();
  let api = overrides.api;
  if (!api) {
    let apiKey: Secret;
    if ('value' in config.apiKey) apiKey = config.apiKey.value;
    else {
      const { SecretManagerServiceClient } = await import('@google-cloud/secret-manager');
      const { SecretManagerSource } = await import('./adapters/gcp/secret-manager-source.js');
      apiKey = await new SecretManagerSource(new SecretManagerServiceClient(), config.apiKey.secret).apiKey();
    }
    api = new HttpRetailApi({
      baseUrl: config.apiUrl,
      apiKey,
      timeoutMs: config.connector.requestTimeoutMs,
      clock,
    });
  }
  const core = await gcpCore(config.gcp, clock);
  if (!core.work) throw new ConfigError("missing PIPELINE_WORK_BUCKET (the connector's work bucket)");
  return {
    api,
    store: core.store,
    work: core.work,
    clock,
    randomness: new CryptoRandomness(),
    logger,
    // A task elsewhere cannot be probed: a crashed holder's lease is taken over when it expires.
    holder: { owner: identity.owner, host: identity.host, pid: process.pid, isAlive: () => undefined },
    ingested: core.warehouse,
    events: core.events,
    runLog: core.warehouse,
    ...overrides,
  };
}
