import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError, describeError, isRetryable, TerminalError } from '../../core/errors.js';
import type { PipelineEvent } from '../../core/events.js';
import type { Clock, Randomness } from '../../ports/clock.js';
import type { EventPublisher } from '../../ports/events.js';
import type { Logger } from '../../ports/logger.js';
import type { ProgressListener } from '../../ports/progress.js';
import type { StepCounts, Warehouse } from '../../ports/warehouse.js';
import type { MergeExecution, WorkflowStarter } from '../../ports/workflows.js';
import { WORKFLOW_FUNCTION_NAMES, workflowFunctions } from './workflows/functions.js';
import { runWorkflow, type WorkflowDefinition, WorkflowRaised } from './workflows/interpreter.js';
import { validateWorkflow } from './workflows/validate.js';

/** `"@sql ods_sales.sql"`: where the workflow names a script of sql/ (embedded at deploy time). */
export const SQL_REFERENCE = /^@sql ([a-z0-9_]+)\.sql$/;

/** The Google API connectors the workflow calls, and what stands in for them locally. */
export const LOCAL_CONNECTORS = [
  'googleapis.bigquery.v2.jobs.insert',
  'googleapis.bigquery.v2.jobs.getQueryResults',
  'googleapis.pubsub.v1.projects.topics.publish',
] as const;

/** `@sql X.sql` must name a script that exists in both dialects (sql/bigquery and sql/duckdb). */
export function sqlReferenceCheck(sqlRoot: string): (text: string) => string | undefined {
  return (text) => {
    if (!text.startsWith('@sql')) return undefined;
    const name = SQL_REFERENCE.exec(text)?.[1];
    if (!name) return `malformed SQL reference "${text}"`;
    const missing = ['bigquery', 'duckdb'].filter((d) => !existsSync(join(sqlRoot, d, `${name}.sql`)));
    return missing.length
      ? `${text}: no ${missing.map((d) => `sql/${d}/${name}.sql`).join(' or ')}`
      : undefined;
  };
}

/** Problems of a definition as the service would see them at deploy time (see validate.ts). */
export function workflowProblems(definition: unknown, sqlRoot: string): string[] {
  return validateWorkflow(definition, {
    calls: LOCAL_CONNECTORS,
    functions: WORKFLOW_FUNCTION_NAMES,
    reference: sqlReferenceCheck(sqlRoot),
  });
}

/**
 * Reads a workflow definition and refuses it, as a deploy would, when it breaks a rule Cloud
 * Workflows enforces at deploy time: a definition that runs here also deploys.
 */
export function loadWorkflow(path: string, sqlRoot: string): WorkflowDefinition {
  const definition: unknown = parse(readFileSync(path, 'utf8'));
  const problems = workflowProblems(definition, sqlRoot);
  if (problems.length) {
    throw new ConfigError(`${path} would not deploy: ${problems.join('; ')}`);
  }
  return definition as WorkflowDefinition;
}

/** A connector call as the workflow makes it; `proceed` runs the local stand-in. */
export type ConnectorCall = (
  name: (typeof LOCAL_CONNECTORS)[number],
  args: Record<string, unknown>,
  proceed: () => Promise<unknown>,
) => Promise<unknown>;

interface Ports {
  readonly warehouse: Warehouse;
  readonly events: EventPublisher;
  readonly clock: Clock;
  readonly randomness: Randomness;
  readonly logger: Logger;
  /** Told of each script a merge runs, as it starts it (the CLI's progress display). */
  readonly progress?: ProgressListener | undefined;
  /**
   * Wraps every connector call (default: runs it). Fault-injection tests raise Google's
   * documented error shapes here, at the boundary where the service would raise them.
   */
  readonly connectorCall?: ConnectorCall;
}

/**
 * A BigQuery job that failed, as `googleapis.bigquery.v2.jobs.insert` raises it: the connector
 * waits for the job and raises an OperationError whose `operation` is the job, with
 * `status.errorResult` (reason, message) and `status.errors`.
 * https://cloud.google.com/workflows/docs/reference/googleapis/bigquery/v2/jobs/insert,
 * https://cloud.google.com/bigquery/docs/error-messages
 */
export function failedJobError(
  jobId: string,
  location: string,
  reason: string,
  message: string,
): Record<string, unknown> {
  const errorResult = { reason, message };
  return {
    message,
    tags: ['OperationError'],
    operation: {
      kind: 'bigquery#job',
      jobReference: { jobId, location },
      status: { state: 'DONE', errorResult, errors: [errorResult] },
    },
  };
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
        const jobId = `local_${this.ports.randomness.uuid()}`;
        this.ports.progress?.({ stage: 'merge', entity: execution.entity, step: script });
        try {
          const counts = await this.ports.warehouse.runStep(script, params);
          jobs.set(jobId, counts);
          return { jobReference: { jobId, location: 'local' }, status: { state: 'DONE' } };
        } catch (error) {
          // The job ran and failed: what the connector raises is an OperationError. A failure a
          // retry can cure stands as BigQuery's backendError, any other as invalidQuery.
          throw new WorkflowRaised(
            failedJobError(
              jobId,
              'local',
              isRetryable(error) ? 'backendError' : 'invalidQuery',
              describeError(error),
            ),
          );
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
    const call = this.ports.connectorCall;
    const wrapped = call
      ? Object.fromEntries(
          Object.entries(connectors).map(([name, run]) => [
            name,
            (args: Record<string, unknown>) =>
              call(name as (typeof LOCAL_CONNECTORS)[number], args, () => run(args)),
          ]),
        )
      : connectors;
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
        { connectors: wrapped, functions, sleep: (ms) => this.ports.clock.sleep(ms) },
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
