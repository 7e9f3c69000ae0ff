import { CloudRunV2Job } from '@cdktf/provider-google/lib/cloud-run-v2-job/index.js';
import { CloudRunV2JobIamMember } from '@cdktf/provider-google/lib/cloud-run-v2-job-iam-member/index.js';
import { CloudSchedulerJob } from '@cdktf/provider-google/lib/cloud-scheduler-job/index.js';
import { Construct } from 'constructs';
import { LOADER_MEMORY } from '../../functions/core/loader-limits.js';
import { jobRunTarget } from './connector.js';

export interface ReconcilerProps {
  readonly prefix: string;
  readonly projectId: string;
  readonly region: string;
  /** The connector's image: it holds the CLI, whose `reconcile --gcp` this job runs. */
  readonly image: string;
  readonly serviceAccount: string;
  readonly schedulerServiceAccount: string;
  readonly environment: Readonly<Record<string, string>>;
}

/** Every 15 minutes: a stale claim or a lost arrival waits at most that long past its threshold. */
export const RECONCILE_SCHEDULE = '*/15 * * * *';

/**
 * The reconciler: a Cloud Run Job running `retail-pipeline reconcile --gcp` (the same use case as
 * the local command) from the connector's image, with the loader's memory since it may load a
 * file whose event was lost. A Cloud Scheduler job starts it with an OAuth token; executing a job
 * as it is configured takes roles/run.invoker on the job
 * (https://cloud.google.com/run/docs/execute/jobs-on-schedule). No task retry: the next pass, a
 * quarter of an hour later, tries again whatever this one left.
 */
export class Reconciler extends Construct {
  readonly job: CloudRunV2Job;

  constructor(scope: Construct, id: string, props: ReconcilerProps) {
    super(scope, id);
    this.job = new CloudRunV2Job(this, 'job', {
      name: `${props.prefix}-reconciler`,
      location: props.region,
      deletionProtection: false,
      template: {
        taskCount: 1,
        template: {
          serviceAccount: props.serviceAccount,
          maxRetries: 0,
          timeout: '3600s',
          containers: [
            {
              image: props.image,
              // `command` replaces the image's ENTRYPOINT (the connector's), `args` its CMD
              // (https://cloud.google.com/run/docs/reference/rest/v2/Container).
              command: ['node'],
              // INFO: the log-based metrics count its file.loaded and file.failed entries (alerting.ts).
              args: [
                'dist/functions/entrypoints/cli.js',
                'reconcile',
                '--gcp',
                '--log-format',
                'json',
                '--log-level',
                'INFO',
              ],
              resources: { limits: { cpu: '1', memory: LOADER_MEMORY } },
              env: Object.entries(props.environment).map(([name, value]) => ({ name, value })),
            },
          ],
        },
      },
    });
    new CloudRunV2JobIamMember(this, 'scheduler-runs-job', {
      name: this.job.name,
      location: props.region,
      role: 'roles/run.invoker',
      member: `serviceAccount:${props.schedulerServiceAccount}`,
    });
    new CloudSchedulerJob(this, 'schedule', {
      name: `${props.prefix}-reconcile`,
      region: props.region,
      schedule: RECONCILE_SCHEDULE,
      timeZone: 'Etc/UTC',
      attemptDeadline: '180s',
      retryConfig: { retryCount: 1, minBackoffDuration: '60s' },
      httpTarget: jobRunTarget({
        projectId: props.projectId,
        region: props.region,
        jobName: this.job.name,
        serviceAccount: props.schedulerServiceAccount,
      }),
    });
  }
}
