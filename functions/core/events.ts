import type { Entity } from './entities.js';

/**
 * What the pipeline publishes (Pub/Sub in production, the local event log locally). Every event
 * is a JSON object with these fields; the `type`, `entity` and `object` also travel as message
 * attributes so subscribers can filter without parsing.
 */
export const EVENT_TYPES = [
  'file.loaded', // a file was appended to raw and archived: { rows, archivedObject, alreadyLoaded }
  'file.failed', // a file was sent to failed/: { failedObject, reason, line? }
  'merge.finished', // a merge workflow ran its steps: { steps: { [step]: counts } }
  'merge.failed', // a merge workflow stopped: { step, reason }
  'connector.run.finished', // an extract run ended: { runId, records, files, pagesFetched, pagesReused, resumed }
  'connector.run.failed', // an extract run ended unfinished: { reason, stopped, resumable } (the next run resumes it)
  'reconcile.healed', // the reconciler healed one item: { action, object, ageSeconds, outcome, settledObject? }
  'schema.drift', // a file carried fields the raw schema does not name, first time seen: { generation, fields }
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface PipelineEvent {
  readonly id: string;
  readonly type: EventType;
  readonly time: string;
  readonly entity: Entity;
  readonly object?: string | undefined;
  readonly data: Readonly<Record<string, unknown>>;
}

/** Message attributes for an event (Pub/Sub attributes are strings). */
export function eventAttributes(event: PipelineEvent): Record<string, string> {
  return { type: event.type, entity: event.entity, ...(event.object ? { object: event.object } : {}) };
}
