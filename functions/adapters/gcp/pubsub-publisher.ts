import type { Topic } from '@google-cloud/pubsub';
import { eventAttributes, type PipelineEvent } from '../../core/events.js';
import type { EventPublisher } from '../../ports/events.js';
import { classifyGrpcError } from './grpc-errors.js';

/**
 * Pipeline events on Pub/Sub: the event as JSON in the message data, its `type`, `entity` and
 * `object` as attributes (subscriptions can filter on them). The Topic comes from the caller.
 */
export class PubSubPublisher implements EventPublisher {
  constructor(private readonly topic: Topic) {}

  async publish(event: PipelineEvent): Promise<void> {
    try {
      await this.topic.publishMessage({
        data: Buffer.from(JSON.stringify(event)),
        attributes: eventAttributes(event),
      });
    } catch (error) {
      throw classifyGrpcError(`publishing ${event.type} to ${this.topic.name}`, error);
    }
  }
}
