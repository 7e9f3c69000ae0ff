import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { eventAttributes, type PipelineEvent } from '../../core/events.js';
import type { EventPublisher } from '../../ports/events.js';

/**
 * The local stand-in for Pub/Sub: one JSON line per event, appended to a file
 * (`$PIPELINE_HOME/events.ndjson`), with the attributes a Pub/Sub message would carry.
 */
export class EventLogPublisher implements EventPublisher {
  constructor(private readonly path: string) {}

  async publish(event: PipelineEvent): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    await appendFile(this.path, `${JSON.stringify({ attributes: eventAttributes(event), ...event })}\n`);
  }
}
