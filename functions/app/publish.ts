import type { PipelineEvent } from '../core/events.js';
import type { Clock, Randomness } from '../ports/clock.js';
import type { EventPublisher, NewEvent } from '../ports/events.js';

/** Completes an event with its id and time and publishes it. */
export async function publish(
  ports: { events: EventPublisher; clock: Clock; randomness: Randomness },
  event: NewEvent,
): Promise<PipelineEvent> {
  const full: PipelineEvent = {
    id: ports.randomness.uuid(),
    time: ports.clock.now().toISOString(),
    ...event,
  };
  await ports.events.publish(full);
  return full;
}
