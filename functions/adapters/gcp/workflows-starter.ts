import type { ExecutionsClient } from '@google-cloud/workflows';
import type { MergeExecution, WorkflowStarter } from '../../ports/workflows.js';
import { classifyGrpcError } from './grpc-errors.js';

/**
 * Starts an execution of the merge workflow (Cloud Workflows) with the file that caused it. The
 * promise settles once the execution is created; the workflow reports its own outcome as events.
 */
export class WorkflowsStarter implements WorkflowStarter {
  constructor(
    private readonly client: Pick<ExecutionsClient, 'createExecution'>,
    /** `projects/P/locations/L/workflows/W` */
    private readonly workflow: string,
  ) {}

  async start(execution: MergeExecution): Promise<void> {
    try {
      await this.client.createExecution({
        parent: this.workflow,
        execution: {
          argument: JSON.stringify({
            entity: execution.entity,
            object: execution.object,
            generation: execution.generation,
            run_id: execution.runId,
          }),
        },
      });
    } catch (error) {
      throw classifyGrpcError(`starting the merge workflow for ${execution.object}`, error);
    }
  }
}
