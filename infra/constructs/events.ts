import { PubsubSubscription } from '@cdktf/provider-google/lib/pubsub-subscription/index.js';
import { PubsubSubscriptionIamMember } from '@cdktf/provider-google/lib/pubsub-subscription-iam-member/index.js';
import { PubsubTopic } from '@cdktf/provider-google/lib/pubsub-topic/index.js';
import { PubsubTopicIamMember } from '@cdktf/provider-google/lib/pubsub-topic-iam-member/index.js';
import { Construct } from 'constructs';

export interface EventsProps {
  readonly prefix: string;
  /** The project's Pub/Sub service agent (moves undeliverable messages to the dead-letter topic). */
  readonly pubsubServiceAgent: string;
}

/**
 * The pipeline events topic (README "Events"), a dead-letter topic, and a subscription for
 * alerting or downstream consumers whose undeliverable messages go to the dead-letter topic.
 */
export class PipelineEvents extends Construct {
  readonly topic: PubsubTopic;
  readonly deadLetter: PubsubTopic;
  readonly subscription: PubsubSubscription;

  constructor(scope: Construct, id: string, props: EventsProps) {
    super(scope, id);
    this.topic = new PubsubTopic(this, 'topic', {
      name: `${props.prefix}-pipeline-events`,
      messageRetentionDuration: '604800s',
    });
    this.deadLetter = new PubsubTopic(this, 'dead-letter', {
      name: `${props.prefix}-pipeline-events-dead-letter`,
    });
    this.subscription = new PubsubSubscription(this, 'subscription', {
      name: `${props.prefix}-pipeline-events-consumers`,
      topic: this.topic.id,
      ackDeadlineSeconds: 60,
      messageRetentionDuration: '604800s',
      deadLetterPolicy: { deadLetterTopic: this.deadLetter.id, maxDeliveryAttempts: 10 },
      retryPolicy: { minimumBackoff: '10s', maximumBackoff: '600s' },
    });
    new PubsubSubscription(this, 'dead-letter-subscription', {
      name: `${props.prefix}-pipeline-events-dead-letter`,
      topic: this.deadLetter.id,
      messageRetentionDuration: '604800s',
    });
    // Dead-lettering needs the Pub/Sub service agent on both ends.
    new PubsubTopicIamMember(this, 'dead-letter-publisher', {
      topic: this.deadLetter.id,
      role: 'roles/pubsub.publisher',
      member: `serviceAccount:${props.pubsubServiceAgent}`,
    });
    new PubsubSubscriptionIamMember(this, 'dead-letter-subscriber', {
      subscription: this.subscription.id,
      role: 'roles/pubsub.subscriber',
      member: `serviceAccount:${props.pubsubServiceAgent}`,
    });
  }
}
