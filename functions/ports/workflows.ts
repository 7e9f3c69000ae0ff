import type { Entity } from '../core/entities.js';

/** What starts a merge: the file whose arrival caused it. */
export interface MergeExecution {
  readonly entity: Entity;
  readonly object: string;
  readonly generation: string;
  readonly runId: string;
}

/**
 * Starts the merge workflow (Cloud Workflows in production). Locally the execution runs
 * in-process and the promise settles when it ends.
 */
export interface WorkflowStarter {
  start(execution: MergeExecution): Promise<void>;
}
