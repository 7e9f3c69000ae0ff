import { type CloudEvent, cloudEvent } from '@google-cloud/functions-framework';
import {
  type FinalizeEvent,
  type IngestPorts,
  type IngestSettings,
  ingestObject,
} from '../app/ingest-object.js';
import { buildLogger, gcpLoaderDependencies } from '../compose.js';
import { isRetryable, PipelineError } from '../core/errors.js';
import { isWaiting } from '../core/object-keys.js';
import type { Logger } from '../ports/logger.js';

/**
 * The loader as a Cloud Function (gen2): a CloudEvent function for
 * `google.cloud.storage.object.v1.finalized`. It decodes the event into plain values, builds
 * its dependencies on the first event that needs them, and calls the same ingestObject as the
 * local runtime. Objects outside `{entity}/in/` are acknowledged without any Google API call.
 * A transient failure makes the function fail, so Eventarc delivers again; a terminal one has
 * settled the file in failed/ and is acknowledged.
 */

interface StorageObjectData {
  bucket?: unknown;
  name?: unknown;
  generation?: unknown;
}

/** The event's object, or undefined when the event is not about one. */
export function decodeFinalizeEvent(event: CloudEvent<unknown>): FinalizeEvent | undefined {
  const data = event.data as StorageObjectData | undefined;
  if (!data || typeof data.name !== 'string' || typeof data.bucket !== 'string') return undefined;
  const generation =
    typeof data.generation === 'string' || typeof data.generation === 'number' ? String(data.generation) : '';
  return { bucket: data.bucket, name: data.name, generation };
}

export interface LoaderDependencies {
  readonly ports: IngestPorts;
  readonly settings: IngestSettings;
}

export function loaderHandler(
  dependencies: () => Promise<LoaderDependencies>,
  logger: Logger,
): (event: CloudEvent<unknown>) => Promise<void> {
  let built: Promise<LoaderDependencies> | undefined;
  return async (event) => {
    const object = decodeFinalizeEvent(event);
    if (!object || !isWaiting(object.name)) {
      logger.log('INFO', 'event ignored: not an object in {entity}/in/', {
        eventId: event.id,
        object: object?.name,
      });
      return undefined;
    }
    if (!object.generation) {
      logger.log('ERROR', 'event ignored: no object generation', { eventId: event.id, object: object.name });
      return;
    }
    built ??= dependencies().catch((error: unknown) => {
      built = undefined;
      throw error;
    });
    const { ports, settings } = await built;
    const context = { object: object.name, generation: object.generation, eventId: event.id };
    try {
      // The outcome itself (file.loaded, file.failed, file.duplicate) is logged once, by ingestObject.
      const outcome = await ingestObject(object, ports, settings);
      if (outcome.status === 'loaded' && outcome.mergeError) {
        logger.log('ERROR', 'file loaded, merge not started; the next merge of this entity takes it', {
          ...context,
          event: 'merge.not_started',
          reason: outcome.mergeError,
        });
      }
    } catch (error) {
      // An error no adapter classified (not a PipelineError) is retried too: nothing says a retry
      // cannot help, and acknowledging it would leave the claim to the reconciler.
      if (isRetryable(error) || !(error instanceof PipelineError)) {
        // Failing the invocation makes Eventarc deliver the event again (RETRY_POLICY_RETRY);
        // the redelivery resumes the claim.
        logger.log('WARNING', 'transient failure; the event will be delivered again', {
          ...context,
          event: 'load.retry',
          error,
        });
        throw error;
      }
      // Retrying cannot help: acknowledge, so Eventarc does not redeliver for a day. Whatever the
      // failure left in in/ or processing/ is finished by the reconciler.
      logger.log('ERROR', 'terminal failure; acknowledged, the reconciler finishes the file', {
        ...context,
        event: 'load.error',
        error,
      });
    }
  };
}

// The production target; its dependencies come from the environment on the first event that needs them.
const logger = buildLogger('json', { write: (text) => void process.stdout.write(text), isTTY: false });
cloudEvent(
  'onObjectFinalized',
  loaderHandler(() => gcpLoaderDependencies(process.env, logger), logger),
);
