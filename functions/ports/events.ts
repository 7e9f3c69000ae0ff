import type { Entity } from '../core/entities.js';
import type { EventType, PipelineEvent } from '../core/events.js';

export interface EventPublisher {
  publish(event: PipelineEvent): Promise<void>;
}

export type NewEvent = {
  type: EventType;
  entity: Entity;
  object?: string | undefined;
  data: Record<string, unknown>;
};
