import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describeError, isRetryable, TerminalError } from '../../core/errors.js';
import type { PipelineEvent } from '../../core/events.js';
import { workflowFunctions } from '../../core/workflow-functions.js';
import { runWorkflow, type WorkflowDefinition, WorkflowRaised } from '../../core/workflow-interpreter.js';
import type { Clock, Randomness } from '../../ports/clock.js';
import type { EventPublisher } from '../../ports/events.js';
import type { Logger } from '../../ports/logger.js';
import type { StepCounts, Warehouse } from '../../ports/warehouse.js';
import type { MergeExecution, WorkflowStarter } from '../../ports/workflows.js';

/** `"@sql ods_sales.sql"`: where the workflow names a script of sql/ (embedded at deploy time). */
export const SQL_REFERENCE = /^@sql ([a-z0-9_]+)\.sql$/;

/** The Google API connectors the workflow calls, and what stands in for them locally. */
export const LOCAL_CONNECTORS = [
  'googleapis.bigquery.v2.jobs.insert',
  'googleapis.bigquery.v2.jobs.getQueryResults',
  'googleapis.pubsub.v1.projects.topics.publish',
] as const;

export function loadWorkflow(path: string): WorkflowDefinition {
  return parse(readFileSync(path, 'utf8')) as WorkflowDefinition;
}

interface Ports {
  readonly warehouse: Warehouse;
  readonly events: EventPublisher;
  readonly clock: Clock;
  readonly randomness: Randomness;
  readonly logger: Logger;
}

/**
 * The local WorkflowStarter: walks workflows/merge.yaml step by step in-process. BigQuery jobs
 * become the DuckDB twin of the named script, Pub/Sub publishes go to the event log; the promise
 * settles when the workflow ends (an error says which step and why).
 */
export class LocalWorkflowRunner implements WorkflowStarter {
  constructor(
    private readonly workflow: WorkflowDefinition,
    private readonly ports: Ports,
  ) {}

  async start(execution: MergeExecution): Promise<void> {
    const jobs = new Map<string, StepCounts>();
    const logger = this.ports.logger.child({ entity: execution.entity, run: execution.runId });
    const connectors = {
      'googleapis.bigquery.v2.jobs.insert': async (args: Record<string, unknown>) => {
        const configuration = (
          args.body as { configuration: { query: { query: string; queryParameters: unknown[] } } }
        ).configuration.query;
        const script = SQL_REFERENCE.exec(configuration.query)?.[1];
        if (!script)
          throw new WorkflowRaised({ message: 'the local runner runs only "@sql" scripts', code: 400 });
        const params = Object.fromEntries(
          (configuration.queryParameters as { name: string; parameterValue: { value: string } }[]).map(
            (p) => [p.name, p.parameterValue.value],
          ),
        );
        try {
          const counts = await this.ports.warehouse.runStep(script, params);
          const jobId = `local_${this.ports.randomness.uuid()}`;
          jobs.set(jobId, counts);
          return { jobReference: { jobId, location: 'local' }, status: { state: 'DONE' } };
        } catch (error) {
          const retryable = isRetryable(error);
          throw new WorkflowRaised({
            message: describeError(error),
            code: retryable ? 503 : 400,
            tags: ['HttpError'],
          });
        }
      },
      'googleapis.bigquery.v2.jobs.getQueryResults': async (args: Record<string, unknown>) => {
        const counts = jobs.get(String(args.jobId)) ?? {};
        const names = Object.keys(counts);
        if (names.length === 0) return { schema: { fields: [] }, totalRows: '0' };
        return {
          schema: { fields: names.map((name) => ({ name, type: 'INTEGER' })) },
          rows: [{ f: names.map((name) => ({ v: String(counts[name]) })) }],
          totalRows: '1',
        };
      },
      'googleapis.pubsub.v1.projects.topics.publish': async (args: Record<string, unknown>) => {
        const messages = (args.body as { messages: { data: string }[] }).messages;
        for (const message of messages) {
          await this.ports.events.publish(
            JSON.parse(Buffer.from(message.data, 'base64').toString('utf8')) as PipelineEvent,
          );
        }
        return { messageIds: messages.map(() => this.ports.randomness.uuid()) };
      },
    };
    const functions = workflowFunctions({
      env: {
        GOOGLE_CLOUD_PROJECT_ID: 'local',
        BIGQUERY_LOCATION: 'local',
        EVENTS_TOPIC: 'events',
        GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID: execution.runId,
      },
      nowSeconds: () => this.ports.clock.now().getTime() / 1000,
      log: (text) => logger.log('INFO', String(text)),
    });
    try {
      const counts = await runWorkflow(
        this.workflow,
        { connectors, functions, sleep: (ms) => this.ports.clock.sleep(ms) },
        {
          entity: execution.entity,
          object: execution.object,
          generation: execution.generation,
          run_id: execution.runId,
        },
      );
      logger.log('INFO', 'merge finished', { steps: counts });
    } catch (error) {
      const reason = error instanceof WorkflowRaised ? error.message : describeError(error);
      logger.log('ERROR', 'merge failed', { reason });
      throw new TerminalError(`merge of ${execution.entity} failed: ${reason}`, { cause: error });
    }
  }
}
