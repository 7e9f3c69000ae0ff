import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BigQuery } from '@google-cloud/bigquery';
import { cloudEvent } from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { PubSub } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { CryptoRandomness } from '../../functions/adapters/common/system-clock.js';
import { BigQueryWarehouse } from '../../functions/adapters/gcp/bigquery-warehouse.js';
import { GcsObjectStore } from '../../functions/adapters/gcp/gcs-object-store.js';
import { PubSubPublisher } from '../../functions/adapters/gcp/pubsub-publisher.js';
import type { IngestPorts } from '../../functions/app/ingest-object.js';
import { loaderHandler } from '../../functions/entrypoints/loader-function.js';
import type { Clock } from '../../functions/ports/clock.js';
import type { EventPublisher } from '../../functions/ports/events.js';
import type { WorkflowStarter } from '../../functions/ports/workflows.js';
import { NO_AUTH, NO_RETRY } from '../helpers/fake-gcp.mjs';
import { MemoryLogger } from '../helpers/fakes.js';

/**
 * The loader's GCP composition for the fault suite: the real GCS, BigQuery and Pub/Sub adapters
 * and clients, pointed at the HTTP-level fakes and the Pub/Sub emulator, with the clients'
 * own retries off so that every injected fault reaches the loader (the worst case: a fault
 * that outlasted the client's retries). Workflows has no emulator: its starter is a port-level
 * stand-in that only records; faults at it are injected at the port, as are Pub/Sub's.
 */

export const PROJECT = 'retail-pipeline-faults';
export const BUCKET = 'pipeline';
export const TOPIC = 'pipeline-events';
export const SQL_DIR = new URL('../../sql/bigquery/', import.meta.url).pathname;

export interface Endpoints {
  readonly gcs: string;
  readonly bigquery: string;
  readonly pubsub: string;
}

/** A clock that can be moved ahead, as time passes between Eventarc's redeliveries. */
export class AheadClock implements Clock {
  aheadMs = 0;
  now(): Date {
    return new Date(Date.now() + this.aheadMs);
  }
  async sleep(ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 20)));
  }
}

/** Called around every port call the suite can fault: `before`/`after` the real call. */
export type PortHook = (call: string, phase: 'before' | 'after') => void;

function hooked<T extends object>(name: string, target: T, hook: PortHook): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const call = `${name}.${String(property)}`;
        hook(call, 'before');
        const result = await value.apply(object, args);
        hook(call, 'after');
        return result;
      };
    },
  });
}

export function gcpPorts(
  endpoints: Endpoints,
  clock: Clock,
  hook: PortHook,
  starts: string[] = [],
): IngestPorts {
  const storage = new Storage({
    apiEndpoint: endpoints.gcs,
    projectId: PROJECT,
    authClient: NO_AUTH as never,
    retryOptions: NO_RETRY,
  });
  const bigquery = new BigQuery({
    apiEndpoint: endpoints.bigquery,
    projectId: PROJECT,
    authClient: NO_AUTH as never,
    autoRetry: false,
    maxRetries: 0,
  });
  const pubsub = new PubSub({ projectId: PROJECT, apiEndpoint: endpoints.pubsub, emulatorMode: true });
  const events: EventPublisher = new PubSubPublisher(pubsub.topic(TOPIC));
  const workflows: WorkflowStarter = {
    start: async (execution) => void starts.push(`${execution.entity} ${execution.object}`),
  };
  return {
    store: new GcsObjectStore(storage.bucket(BUCKET)),
    warehouse: new BigQueryWarehouse(bigquery, {
      projectId: PROJECT,
      location: 'US',
      bucket: BUCKET,
      sqlDir: SQL_DIR,
      clock,
      pollMs: 5,
    }),
    events: hooked('events', events, hook),
    workflows: hooked('workflows', workflows, hook),
    clock,
    randomness: new CryptoRandomness(),
    logger: new MemoryLogger(),
  };
}

export const LOADER_SETTINGS = { maxFileBytes: 64 * 2 ** 20 };

/** The loader as deployed: the Functions Framework serving the CloudEvent handler. */
export async function serveLoader(
  name: string,
  ports: IngestPorts,
): Promise<{ url: string; server: Server }> {
  cloudEvent(
    name,
    loaderHandler(async () => ({ ports, settings: LOADER_SETTINGS }), ports.logger),
  );
  const server = getTestServer(name);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

/** One object-finalize CloudEvent (binary mode), as Eventarc delivers it; the HTTP status. */
export async function deliver(url: string, name: string, generation: string): Promise<number> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'ce-specversion': '1.0',
      'ce-id': `${name}#${generation}#${Math.random()}`,
      'ce-type': 'google.cloud.storage.object.v1.finalized',
      'ce-source': `//storage.googleapis.com/projects/_/buckets/${BUCKET}`,
      'ce-subject': `objects/${name}`,
      'ce-time': new Date().toISOString(),
    },
    body: JSON.stringify({ bucket: BUCKET, name, generation, contentType: 'application/json' }),
  });
  await response.arrayBuffer();
  return response.status;
}
