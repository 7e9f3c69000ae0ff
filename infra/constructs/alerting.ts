import { LoggingMetric } from '@cdktf/provider-google/lib/logging-metric/index.js';
import { MonitoringAlertPolicy } from '@cdktf/provider-google/lib/monitoring-alert-policy/index.js';
import { Sleep } from '@cdktf/provider-time/lib/sleep/index.js';
import { Construct } from 'constructs';

export interface AlertingProps {
  readonly prefix: string;
  readonly loaderService: string;
  readonly connectorJob: string;
  readonly reconcilerJob: string;
  readonly workflow: string;
  readonly notificationChannels: string[];
}

/**
 * Alert policies: loader errors, merge workflow failures, connector job failures, files landing in
 * failed/ (a log-based metric on the loader's "file failed" entries), and items the reconciler
 * could not heal (a log-based metric on its healed and stuck entries).
 */
export class Alerting extends Construct {
  constructor(scope: Construct, id: string, props: AlertingProps) {
    super(scope, id);
    const loaderLogs = `resource.type="cloud_run_revision" AND resource.labels.service_name="${props.loaderService}"`;
    const filesFailed = new LoggingMetric(this, 'files-failed', {
      name: `${props.prefix}-files-failed`,
      description:
        'Files the loader sent to failed/ (one per file: the loader logs each outcome once, with its event).',
      filter: `${loaderLogs} AND jsonPayload.event="file.failed"`,
      metricDescriptor: { metricKind: 'DELTA', valueType: 'INT64', unit: '1' },
    });
    const loaderErrors = new LoggingMetric(this, 'loader-errors', {
      name: `${props.prefix}-loader-errors`,
      description: 'Errors logged by the loader function.',
      filter: `${loaderLogs} AND severity>=ERROR`,
      metricDescriptor: { metricKind: 'DELTA', valueType: 'INT64', unit: '1' },
    });
    // What the reconciler healed and what it could not, per action: both visible on one metric.
    // Labels come from the entry's fields through extractor expressions
    // (https://cloud.google.com/logging/docs/logs-based-metrics/labels).
    const reconciled = new LoggingMetric(this, 'reconciler-items', {
      name: `${props.prefix}-reconciler-items`,
      description:
        'Items the reconciler healed (outcome "reconcile.healed") or could not heal (outcome "reconcile.stuck"), by action.',
      filter: `resource.type="cloud_run_job" AND resource.labels.job_name="${props.reconcilerJob}" AND (jsonPayload.event="reconcile.healed" OR jsonPayload.event="reconcile.stuck")`,
      labelExtractors: {
        outcome: 'EXTRACT(jsonPayload.event)',
        action: 'EXTRACT(jsonPayload.action)',
      },
      metricDescriptor: {
        metricKind: 'DELTA',
        valueType: 'INT64',
        unit: '1',
        labels: [
          { key: 'outcome', valueType: 'STRING', description: 'reconcile.healed or reconcile.stuck' },
          {
            key: 'action',
            valueType: 'STRING',
            description: 'claim.finished, arrival.loaded or merge.started',
          },
        ],
      },
    });
    // A new log-based metric can take up to 10 minutes before an alert policy may name it
    // (Cloud Monitoring answers 404 "If a metric was created recently, it could take up to 10
    // minutes to become available"): the policies wait for the metrics, then that long.
    // Known issue: https://github.com/hashicorp/terraform-provider-google/issues/11102
    const metricsSettled = new Sleep(this, 'metrics-settle', {
      createDuration: '600s',
      dependsOn: [filesFailed, loaderErrors, reconciled],
    });
    const policy = (name: string, display: string, filter: string, documentation: string) =>
      new MonitoringAlertPolicy(this, name, {
        dependsOn: [metricsSettled],
        displayName: `${props.prefix}: ${display}`,
        combiner: 'OR',
        notificationChannels: props.notificationChannels,
        documentation: { content: documentation, mimeType: 'text/markdown' },
        alertStrategy: { autoClose: '86400s' },
        conditions: [
          {
            displayName: display,
            conditionThreshold: {
              filter,
              comparison: 'COMPARISON_GT',
              thresholdValue: 0,
              duration: '0s',
              aggregations: [{ alignmentPeriod: '300s', perSeriesAligner: 'ALIGN_SUM' }],
            },
          },
        ],
      });
    policy(
      'alert-loader-errors',
      'loader errors',
      `metric.type="logging.googleapis.com/user/${loaderErrors.name}" AND resource.type="cloud_run_revision"`,
      'The loader logged errors. Its logs say which object and why; transient errors are retried by Eventarc.',
    );
    policy(
      'alert-files-failed',
      'files sent to failed/',
      `metric.type="logging.googleapis.com/user/${filesFailed.name}" AND resource.type="cloud_run_revision"`,
      'A file landed in failed/. Its .error.json sidecar says why; fix it and replay it (README, "Replay a file").',
    );
    policy(
      'alert-reconciler-stuck',
      'items the reconciler could not heal',
      `metric.type="logging.googleapis.com/user/${reconciled.name}" AND resource.type="cloud_run_job" AND metric.labels.outcome="reconcile.stuck"`,
      'The reconciler found a file or a load it could not finish. Its "reconcile.stuck" log entries name the object and the reason; it tries again every 15 minutes. Files it healed are counted under outcome "reconcile.healed" and published as reconcile.healed events.',
    );
    policy(
      'alert-workflow-failures',
      'merge workflow failures',
      `metric.type="workflows.googleapis.com/finished_execution_count" AND resource.type="workflows.googleapis.com/Workflow" AND resource.labels.workflow_id="${props.workflow}" AND metric.labels.status="FAILED"`,
      'A merge workflow execution failed. The merge.failed event and the execution say which step and why.',
    );
    policy(
      'alert-connector-failures',
      'connector job failures',
      `metric.type="run.googleapis.com/job/completed_execution_count" AND resource.type="cloud_run_job" AND resource.labels.job_name="${props.connectorJob}" AND metric.labels.result="failed"`,
      'A connector run failed after its retries. The next scheduled run resumes after the last durable page.',
    );
  }
}
