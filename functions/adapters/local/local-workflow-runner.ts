import { type MergePorts, merge } from '../../app/merge.js';
import type { RetryPolicy } from '../../core/retry.js';
import type { MergeExecution, WorkflowStarter } from '../../ports/workflows.js';

/** Runs the merge workflow in-process; the promise settles when the merge has ended. */
export class LocalWorkflowRunner implements WorkflowStarter {
  constructor(
    private readonly ports: MergePorts,
    private readonly retry: RetryPolicy,
  ) {}

  async start(execution: MergeExecution): Promise<void> {
    await merge(execution, this.ports, this.retry);
  }
}
