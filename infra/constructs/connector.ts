import { CloudRunV2Job } from '@cdktf/provider-google/lib/cloud-run-v2-job/index.js';
import { CloudRunV2JobIamMember } from '@cdktf/provider-google/lib/cloud-run-v2-job-iam-member/index.js';
import {
  CloudSchedulerJob,
  type CloudSchedulerJobHttpTarget,
} from '@cdktf/provider-google/lib/cloud-scheduler-job/index.js';
import type { IResolvable, ITerraformDependable } from 'cdktf';
import { Construct } from 'constructs';
import { ENTITIES, type Entity } from '../../functions/core/entities.js';

export interface ConnectorProps {
  readonly prefix: string;
  readonly projectId: string;
  readonly region: string;
  readonly image: string;
  readonly serviceAccount: string;
  readonly schedulerServiceAccount: string;
  readonly apiKeySecretId: string;
  readonly environment: Readonly<Record<string, string>>;
  /** False until the API key has a value: the schedules are created paused until then. */
  readonly schedulesPaused: boolean | IResolvable;
  /**
   * What the job needs before it is created: Cloud Run checks at creation that the job's service
   * account may access every secret it references, and fails the creation otherwise
   * (https://cloud.google.com/run/docs/configuring/jobs/secrets).
   */
  readonly jobDependsOn: ITerraformDependable[];
}

/** Sales every hour, products and customers once a day (UTC). */
export const SCHEDULES: Readonly<Record<Entity, string>> = {
  sales: '0 * * * *',
  products: '0 0 * * *',
  customers: '0 0 * * *',
};

/** What a scheduler sends to the Cloud Run Jobs run API: this entity's arguments. */
export function runOverrides(entity: Entity): string {
  return JSON.stringify({ overrides: { containerOverrides: [{ args: ['--endpoint', entity] }] } });
}

/**
 * A Cloud Scheduler target that starts a Cloud Run job through the run API, with an OAuth token
 * of `serviceAccount`; `overrides` (a JSON body) changes its arguments for this run.
 */
export function jobRunTarget(options: {
  projectId: string;
  region: string;
  jobName: string;
  serviceAccount: string;
  overrides?: string;
}): CloudSchedulerJobHttpTarget {
  return {
    httpMethod: 'POST',
    uri: `https://run.googleapis.com/v2/projects/${options.projectId}/locations/${options.region}/jobs/${options.jobName}:run`,
    ...(options.overrides !== undefined
      ? {
          headers: { 'Content-Type': 'application/json' },
          body: Buffer.from(options.overrides).toString('base64'),
        }
      : {}),
    oauthToken: {
      serviceAccountEmail: options.serviceAccount,
      scope: 'https://www.googleapis.com/auth/cloud-platform',
    },
  };
}

/**
 * The connector Cloud Run Job (the API key as a secret environment variable from Secret
 * Manager) and one Cloud Scheduler job per entity, calling the run API with an OAuth token and
 * the entity's argument overrides (`run.jobs.runWithOverrides`, in
 * roles/run.jobsExecutorWithOverrides: https://cloud.google.com/run/docs/reference/rest/v1/namespaces.jobs/run).
 * The schedules stay paused until the secret has a version, so no run starts without a key.
 */
export class Connector extends Construct {
  readonly job: CloudRunV2Job;

  constructor(scope: Construct, id: string, props: ConnectorProps) {
    super(scope, id);
    this.job = new CloudRunV2Job(this, 'job', {
      name: `${props.prefix}-connector`,
      location: props.region,
      deletionProtection: false,
      dependsOn: props.jobDependsOn,
      template: {
        taskCount: 1,
        template: {
          serviceAccount: props.serviceAccount,
          maxRetries: 3,
          timeout: '3600s',
          containers: [
            {
              image: props.image,
              args: ['--endpoint', 'sales'],
              resources: { limits: { cpu: '1', memory: '1Gi' } },
              env: [
                ...Object.entries(props.environment).map(([name, value]) => ({ name, value })),
                {
                  name: 'RETAIL_API_KEY',
                  valueSource: { secretKeyRef: { secret: props.apiKeySecretId, version: 'latest' } },
                },
              ],
            },
          ],
        },
      },
    });
    // The scheduler may run the job with other arguments; nothing else.
    new CloudRunV2JobIamMember(this, 'scheduler-runs-job', {
      name: this.job.name,
      location: props.region,
      role: 'roles/run.jobsExecutorWithOverrides',
      member: `serviceAccount:${props.schedulerServiceAccount}`,
    });
    for (const entity of ENTITIES) {
      new CloudSchedulerJob(this, `schedule-${entity}`, {
        name: `${props.prefix}-extract-${entity}`,
        region: props.region,
        schedule: SCHEDULES[entity],
        paused: props.schedulesPaused,
        timeZone: 'Etc/UTC',
        attemptDeadline: '180s',
        retryConfig: { retryCount: 3, minBackoffDuration: '30s' },
        httpTarget: jobRunTarget({
          projectId: props.projectId,
          region: props.region,
          jobName: this.job.name,
          serviceAccount: props.schedulerServiceAccount,
          overrides: runOverrides(entity),
        }),
      });
    }
  }
}
