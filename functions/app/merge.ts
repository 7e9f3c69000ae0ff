import type { Entity } from '../core/entities.js';
import { describeError } from '../core/errors.js';
import type { RetryPolicy } from '../core/retry.js';
import type { Clock, Randomness } from '../ports/clock.js';
import type { EventPublisher } from '../ports/events.js';
import type { Logger } from '../ports/logger.js';
import type { StepCounts, Warehouse } from '../ports/warehouse.js';
import type { MergeExecution } from '../ports/workflows.js';
import { publish } from './publish.js';
import { withRetries } from './retry.js';

/**
 * The merge steps after a file of each entity: its ODS merge, then the mart (new sales, and open
 * orphans that a new product or customer may resolve).
 */
export const MERGE_STEPS: Readonly<Record<Entity, readonly string[]>> = {
  sales: ['ods_sales', 'dmt_sales_items'],
  products: ['ods_products', 'dmt_sales_items'],
  customers: ['ods_customers', 'dmt_sales_items'],
};

export interface MergePorts {
  readonly warehouse: Warehouse;
  readonly events: EventPublisher;
  readonly clock: Clock;
  readonly randomness: Randomness;
  readonly logger: Logger;
}

/** Runs the entity's merge steps in order, retrying transient warehouse errors; publishes the outcome. */
export async function merge(
  execution: MergeExecution,
  ports: MergePorts,
  retry: RetryPolicy,
): Promise<Record<string, StepCounts>> {
  const logger = ports.logger.child({ entity: execution.entity, run: execution.runId });
  const steps: Record<string, StepCounts> = {};
  for (const step of MERGE_STEPS[execution.entity]) {
    const startedAt = ports.clock.now();
    try {
      const params = { runId: execution.runId, entity: execution.entity };
      const counts = await withRetries(
        `merge step ${step}`,
        () => ports.warehouse.runStep(step, { ...params, now: ports.clock.now() }),
        { policy: retry, clock: ports.clock, randomness: ports.randomness, logger },
      );
      await ports.warehouse.recordStep({ ...params, now: ports.clock.now(), step, startedAt, counts });
      steps[step] = counts;
    } catch (error) {
      const reason = describeError(error);
      logger.log('ERROR', 'merge failed', { step, reason });
      await publish(ports, {
        type: 'merge.failed',
        entity: execution.entity,
        object: execution.object,
        data: { runId: execution.runId, step, reason },
      });
      throw error;
    }
  }
  await publish(ports, {
    type: 'merge.finished',
    entity: execution.entity,
    object: execution.object,
    data: { runId: execution.runId, steps },
  });
  logger.log('INFO', 'merge finished', { steps });
  return steps;
}
