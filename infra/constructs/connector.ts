import { CloudRunV2Job } from '@cdktf/provider-google/lib/cloud-run-v2-job/index.js';
import { CloudRunV2JobIamMember } from '@cdktf/provider-google/lib/cloud-run-v2-job-iam-member/index.js';
import { CloudSchedulerJob } from '@cdktf/provider-google/lib/cloud-scheduler-job/index.js';
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
 * The connector Cloud Run Job (the API key as a secret environment variable from Secret
 * Manager) and one Cloud Scheduler job per entity, calling the run API with an OAuth token and
 * the entity's argument overrides.
 */
export class Connector extends Construct {
  readonly job: CloudRunV2Job;

  constructor(scope: Construct, id: string, props: ConnectorProps) {
    super(scope, id);
    this.job = new CloudRunV2Job(this, 'job', {
      name: `${props.prefix}-connector`,
      location: props.region,
      deletionProtection: false,
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
        timeZone: 'Etc/UTC',
        attemptDeadline: '180s',
        retryConfig: { retryCount: 3, minBackoffDuration: '30s' },
        httpTarget: {
          httpMethod: 'POST',
          uri: `https://run.googleapis.com/v2/projects/${props.projectId}/locations/${props.region}/jobs/${this.job.name}:run`,
          headers: { 'Content-Type': 'application/json' },
          body: Buffer.from(runOverrides(entity)).toString('base64'),
          oauthToken: {
            serviceAccountEmail: props.schedulerServiceAccount,
            scope: 'https://www.googleapis.com/auth/cloud-platform',
          },
        },
      });
    }
  }
}
