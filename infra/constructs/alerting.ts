import { LoggingMetric } from '@cdktf/provider-google/lib/logging-metric/index.js';
import { MonitoringAlertPolicy } from '@cdktf/provider-google/lib/monitoring-alert-policy/index.js';
import { MonitoringNotificationChannel } from '@cdktf/provider-google/lib/monitoring-notification-channel/index.js';
import { Sleep } from '@cdktf/provider-time/lib/sleep/index.js';
import { Fn, TerraformIterator, Token } from 'cdktf';
import { Construct } from 'constructs';

export interface AlertingProps {
  readonly prefix: string;
  readonly projectId: string;
  readonly region: string;
  /** The pipeline bucket: where failed/ files and their sidecars are. */
  readonly bucketName: string;
  readonly loaderService: string;
  readonly connectorJob: string;
  readonly reconcilerJob: string;
  readonly workflow: string;
  /** The API key's secret id (the connector's alert says how to check it). */
  readonly apiKeySecret: string;
  /** Existing notification channel ids (projects/P/notificationChannels/N), given as they are. */
  readonly notificationChannels: string[];
  /** Addresses that get an e-mail notification channel each. */
  readonly alertEmails: string[];
}

/** The log-based metrics, by their plain names (the dashboard charts them). */
export interface PipelineMetrics {
  readonly filesFailed: string;
  readonly loaderErrors: string;
  readonly reconcilerItems: string;
  readonly rowsLoaded: string;
}

/** A log-based metric's type in Cloud Monitoring. */
export const userMetric = (name: string) => `logging.googleapis.com/user/${name}`;

/**
 * What an alert says: a subject for the notification, and markdown saying what happened and
 * what to do. Google's limits: content at most 8,192 Unicode characters and 10,240 UTF-8 bytes,
 * the subject cut to 255 bytes after variable expansion, and both "can be templatized by using
 * variables" - so no "${" may reach them but Terraform's own references, resolved before
 * (https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies#documentation).
 */
interface Runbook {
  readonly subject: string;
  readonly content: string;
}

/**
 * Log-based metrics and alert policies: loader errors, files landing in failed/ (a metric on the
 * "file failed" entries of the loader and the reconciler), merge workflow failures, connector job
 * failures, and items the reconciler could not heal (a metric on its healed and stuck entries);
 * a metric of the files loaded and their rows, for the dashboard. Every policy notifies the
 * given channel ids and one e-mail channel per address of `alertEmails`, and carries a runbook.
 */
export class Alerting extends Construct {
  readonly metrics: PipelineMetrics;
  /** The metrics exist and had time to become usable in Cloud Monitoring. */
  readonly metricsSettled: Sleep;

  constructor(scope: Construct, id: string, props: AlertingProps) {
    super(scope, id);
    // Cloud Run sends what a container writes to stdout/stderr to Cloud Logging and parses each
    // single-line JSON object into jsonPayload (https://cloud.google.com/run/docs/logging): the
    // loader's and the reconciler's entries (functions/adapters/common/json-logger.ts) carry
    // `event`, `entity`, `rows`, `action` as top-level fields of jsonPayload.
    // In the Logging query language OR binds tighter than AND, so every group is bracketed.
    const loaderLogs = `resource.type="cloud_run_revision" AND resource.labels.service_name="${props.loaderService}"`;
    const reconcilerLogs = `resource.type="cloud_run_job" AND resource.labels.job_name="${props.reconcilerJob}"`;
    // The reconciler loads the files whose event was lost through the loader's own code, so a
    // file can be loaded or failed by either of them.
    const loadingLogs = `((${loaderLogs}) OR (${reconcilerLogs}))`;
    const filesFailed = new LoggingMetric(this, 'files-failed', {
      name: `${props.prefix}-files-failed`,
      description:
        'Files the loader or the reconciler sent to failed/ (one per file: each outcome is logged once, with its event).',
      filter: `${loadingLogs} AND jsonPayload.event="file.failed"`,
      metricDescriptor: { metricKind: 'DELTA', valueType: 'INT64', unit: '1' },
    });
    const loaderErrors = new LoggingMetric(this, 'loader-errors', {
      name: `${props.prefix}-loader-errors`,
      description: 'Errors logged by the loader function.',
      filter: `${loaderLogs} AND severity>=ERROR`,
      metricDescriptor: { metricKind: 'DELTA', valueType: 'INT64', unit: '1' },
    });
    // Files loaded into raw and their rows: one entry per file ("file.loaded", with `rows` and the
    // `entity` of the claim), a distribution of the row counts per entity - its count is the
    // files, its sum the rows (https://cloud.google.com/logging/docs/logs-based-metrics/distribution-metrics).
    const rowsLoaded = new LoggingMetric(this, 'rows-loaded', {
      name: `${props.prefix}-rows-loaded`,
      description:
        'Files loaded into raw by the loader or the reconciler (event "file.loaded"), by entity; the value is the rows of the file.',
      filter: `${loadingLogs} AND jsonPayload.event="file.loaded"`,
      valueExtractor: 'EXTRACT(jsonPayload.rows)',
      labelExtractors: { entity: 'EXTRACT(jsonPayload.entity)' },
      bucketOptions: { exponentialBuckets: { numFiniteBuckets: 30, growthFactor: 2, scale: 1 } },
      metricDescriptor: {
        metricKind: 'DELTA',
        valueType: 'DISTRIBUTION',
        unit: '1',
        labels: [{ key: 'entity', valueType: 'STRING', description: 'sales, products or customers' }],
      },
    });
    // What the reconciler healed and what it could not, per action: both visible on one metric.
    // Labels come from the entry's fields through extractor expressions
    // (https://cloud.google.com/logging/docs/logs-based-metrics/labels).
    // The OR is grouped in parentheses, so the filter means what it reads whatever the Logging
    // query language's precedence of AND and OR
    // (https://cloud.google.com/logging/docs/view/logging-query-language#boolean-expressions).
    const reconciled = new LoggingMetric(this, 'reconciler-items', {
      name: `${props.prefix}-reconciler-items`,
      description:
        'Items the reconciler healed (outcome "reconcile.healed") or could not heal (outcome "reconcile.stuck"), by action.',
      filter: `${reconcilerLogs} AND (jsonPayload.event="reconcile.healed" OR jsonPayload.event="reconcile.stuck")`,
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
    this.metrics = {
      filesFailed: `${props.prefix}-files-failed`,
      loaderErrors: `${props.prefix}-loader-errors`,
      reconcilerItems: `${props.prefix}-reconciler-items`,
      rowsLoaded: `${props.prefix}-rows-loaded`,
    };
    // A new log-based metric can take up to 10 minutes before an alert policy may name it
    // (Cloud Monitoring answers 404 "If a metric was created recently, it could take up to 10
    // minutes to become available"): the policies wait for the metrics, then that long.
    // Known issue: https://github.com/hashicorp/terraform-provider-google/issues/11102
    this.metricsSettled = new Sleep(this, 'metrics-settle', {
      createDuration: '600s',
      dependsOn: [filesFailed, loaderErrors, rowsLoaded, reconciled],
    });

    // One e-mail channel per address: type "email", the address in the label email_address
    // (https://cloud.google.com/monitoring/alerts/notification-terraform). Keyed by the address
    // (for_each over the set), so removing one address removes its channel only.
    const emails = TerraformIterator.fromList(props.alertEmails);
    const emailChannels = new MonitoringNotificationChannel(this, 'email', {
      forEach: emails,
      type: 'email',
      displayName: `${props.prefix} alerts: ${emails.value}`,
      description: 'Receives every alert of this retail-pipeline environment (variable alert_emails).',
      labels: { email_address: emails.value },
    });
    // A policy names channels by their resource name, projects/P/notificationChannels/N.
    const channels = Token.asList(
      Fn.concat([
        props.notificationChannels,
        Token.asList(TerraformIterator.fromResources(emailChannels).pluckProperty('name')),
      ]),
    );

    /**
     * `filters`: one condition's, or one per named condition, in the Monitoring filter syntax
     * (metric.type, resource.type, metric.labels.*, resource.labels.* joined by AND:
     * https://cloud.google.com/monitoring/api/v3/filters). A log-based metric is named
     * logging.googleapis.com/user/NAME (userMetric) and its time series carry the monitored
     * resource of the entries it counted
     * (https://cloud.google.com/logging/docs/logs-based-metrics).
     */
    const policy = (
      name: string,
      display: string,
      filters: string | Record<string, string>,
      runbook: Runbook,
    ) =>
      new MonitoringAlertPolicy(this, name, {
        dependsOn: [this.metricsSettled],
        displayName: `${props.prefix}: ${display}`,
        combiner: 'OR',
        notificationChannels: channels,
        documentation: { subject: runbook.subject, content: runbook.content, mimeType: 'text/markdown' },
        alertStrategy: { autoClose: '86400s' },
        conditions: Object.entries(typeof filters === 'string' ? { '': filters } : filters).map(
          ([part, filter]) => ({
            displayName: part ? `${display}: ${part}` : display,
            conditionThreshold: {
              filter,
              comparison: 'COMPARISON_GT',
              thresholdValue: 0,
              duration: '0s',
              aggregations: [{ alignmentPeriod: '300s', perSeriesAligner: 'ALIGN_SUM' }],
            },
          }),
        ),
      });
    const docs = runbooks(props);
    policy(
      'alert-loader-errors',
      'loader errors',
      `metric.type="${userMetric(loaderErrors.name)}" AND resource.type="cloud_run_revision"`,
      docs.loaderErrors,
    );
    // A log-based metric has the monitored resource of its entries: one condition for the
    // loader's (a Cloud Run revision), one for the reconciler's (a Cloud Run job).
    policy(
      'alert-files-failed',
      'files sent to failed/',
      {
        loader: `metric.type="${userMetric(filesFailed.name)}" AND resource.type="cloud_run_revision"`,
        reconciler: `metric.type="${userMetric(filesFailed.name)}" AND resource.type="cloud_run_job"`,
      },
      docs.filesFailed,
    );
    policy(
      'alert-reconciler-stuck',
      'items the reconciler could not heal',
      `metric.type="${userMetric(reconciled.name)}" AND resource.type="cloud_run_job" AND metric.labels.outcome="reconcile.stuck"`,
      docs.reconcilerStuck,
    );
    policy(
      'alert-workflow-failures',
      'merge workflow failures',
      `metric.type="workflows.googleapis.com/finished_execution_count" AND resource.type="workflows.googleapis.com/Workflow" AND resource.labels.workflow_id="${props.workflow}" AND metric.labels.status="FAILED"`,
      docs.workflowFailures,
    );
    policy(
      'alert-connector-failures',
      'connector job failures',
      `metric.type="run.googleapis.com/job/completed_execution_count" AND resource.type="cloud_run_job" AND resource.labels.job_name="${props.connectorJob}" AND metric.labels.result="failed"`,
      docs.connectorFailures,
    );
  }
}

/**
 * The runbook of each alert, with this environment's names: the commands are the README's
 * ("The CLI against the deployed pipeline", "Replay a file from failed/").
 */
function runbooks(p: AlertingProps) {
  const bq = (sql: string) => `\`bq --project_id=${p.projectId} query --use_legacy_sql=false '${sql}'\``;
  const logs = (filter: string) =>
    `\`gcloud logging read '${filter}' --project=${p.projectId} --freshness=1d --limit=20\``;
  const status =
    'The whole picture: `npx retail-pipeline status --gcp` (files per state, rows, orphans, rejects, last connector runs; settings as in the README, "Watch it"), and the dashboard "' +
    `${p.prefix}: pipeline" in Cloud Monitoring.`;
  const replay = [
    `Replay it once the cause is fixed: \`npx retail-pipeline replay gs://${p.bucketName}/FAILED_OBJECT\``,
    `(moves it back to {entity}/in/; its arrival loads it), or \`gcloud storage mv gs://${p.bucketName}/FAILED_OBJECT gs://${p.bucketName}/ENTITY/in/NAME.json\`;`,
    'a corrected file may be uploaded to `{entity}/in/` under any name ending `.json` instead.',
  ].join(' ');
  const page = (subject: string, happened: string, steps: string[]): Runbook => ({
    subject: `[${p.prefix}] ${subject}`,
    content: [
      '## What happened',
      happened,
      '',
      '## What to do',
      ...steps.map((s, i) => `${i + 1}. ${s}`),
      '',
      status,
    ].join('\n'),
  });
  return {
    loaderErrors: page(
      'the loader logged errors',
      `The loader function \`${p.loaderService}\` logged entries at severity ERROR in the last 5 minutes: \`load.error\` (a terminal failure, acknowledged: the file stays in \`in/\` or \`processing/\` for the reconciler), \`merge.not_started\` (the file is loaded into raw, its merge could not be started) or an event without an object generation. Transient failures are WARNING (\`load.retry\`): Eventarc delivers those events again, they do not raise this alert.`,
      [
        `Read the entries, each with its \`object\`, \`generation\`, \`event\` and \`error\`: ${logs(`resource.type="cloud_run_revision" AND resource.labels.service_name="${p.loaderService}" AND severity>=ERROR`)}.`,
        `\`load.error\`: fix the cause (permissions, a BigQuery error), then run a reconciler pass now instead of waiting for the next one (every 15 minutes): \`npx retail-pipeline reconcile --gcp\`. If the file went to \`failed/\` instead, see the alert "files sent to failed/".`,
        `\`merge.not_started\`: nothing is lost - the load is recorded unmerged (${bq('SELECT entity, COUNT(*) AS loads FROM ops.loads WHERE merged_at IS NULL GROUP BY entity')}) and the next merge of the entity, or the reconciler after 15 minutes, merges it.`,
      ],
    ),
    filesFailed: page(
      'a file was sent to failed/',
      `The loader or the reconciler sent a file to \`gs://${p.bucketName}/{entity}/failed/YYYY/MM/DD/HHh/\` (event \`file.failed\`): it is empty, not UTF-8, over the size limit, not named \`.json\`, or a line is not a JSON object of the entity's shape. Nothing of it reached raw; the other files are not held up. Its \`NAME.error.json\` sidecar beside it says why (\`reason\`, \`line\`) and gives the replay command.`,
      [
        `Find it: ${bq('SELECT object_name, settled_object, reason, settled_at FROM ops.files WHERE state = "failed" ORDER BY settled_at DESC LIMIT 20')} (\`settled_object\` is the FAILED_OBJECT), or the entries with \`failedObject\` and \`reason\`: ${logs('jsonPayload.event="file.failed"')}.`,
        `Read why: \`gcloud storage cat gs://${p.bucketName}/FAILED_OBJECT.error.json\`.`,
        `Fix the cause: the source (the Retail API, whoever dropped the file) or the file itself. ${replay}`,
      ],
    ),
    reconcilerStuck: page(
      'the reconciler could not heal an item',
      `A pass of the reconciler job \`${p.reconcilerJob}\` (every 15 minutes) could not heal an item (event \`reconcile.stuck\`, by \`action\`): a claim left in \`processing/\` (\`claim.finished\`), a file waiting in \`in/\` whose event was lost (\`arrival.loaded\`), or a merge of loads left unmerged (\`merge.started\`). Every pass tries again; what it healed is counted under outcome \`reconcile.healed\` and published as \`reconcile.healed\` events.`,
      [
        `Read the entries, each with \`action\`, \`object\`, \`ageSeconds\`, \`reason\` and \`error\`: ${logs(`resource.type="cloud_run_job" AND resource.labels.job_name="${p.reconcilerJob}" AND jsonPayload.event="reconcile.stuck"`)}.`,
        'Fix the cause (permissions, quota, a BigQuery or Workflows error).',
        `Run a pass now and watch it: \`npx retail-pipeline reconcile --gcp\` prints one line per healed item and one \`STUCK\` line per item it still cannot heal (exit 1 while any is stuck); or \`gcloud run jobs execute ${p.reconcilerJob} --region=${p.region} --wait\`.`,
        `A file it loaded that went to \`failed/\`: see the alert "files sent to failed/". ${replay}`,
      ],
    ),
    workflowFailures: page(
      'a merge workflow execution failed',
      `An execution of the merge workflow \`${p.workflow}\` failed: the rows of a file are in raw but not (all) merged into ods and the mart. The workflow published \`merge.failed\` with the step and BigQuery's own message; merges are idempotent, so running one again repeats nothing already done.`,
      [
        `Find the execution and its error (the step and the message): \`gcloud workflows executions list ${p.workflow} --location=${p.region} --limit=5\`, then \`gcloud workflows executions describe EXECUTION_ID --workflow=${p.workflow} --location=${p.region}\`.`,
        `What is recorded: the steps that ran, ${bq('SELECT merge_id, entity, step, started_at, finished_at FROM ops.merges ORDER BY started_at DESC LIMIT 20')}; the loads waiting, ${bq('SELECT entity, COUNT(*) AS loads FROM ops.loads WHERE merged_at IS NULL GROUP BY entity')}.`,
        'Fix the cause (a quota, a concurrent update that outlasted the retries, a schema change).',
        'The reconciler starts the merge of loads left unmerged for 15 minutes, and of mart changes queued in `ops.mart_queue` as long; to do it now: `npx retail-pipeline reconcile --gcp`.',
      ],
    ),
    connectorFailures: page(
      'a connector run failed',
      `An execution of the connector job \`${p.connectorJob}\` failed after its task retries (3). Files already written to \`{entity}/in/\` are loaded as usual; the pages fetched since are kept in the work bucket, and the next run resumes after the last durable page, not from the start.`,
      [
        `Read the one-line error of each attempt, with its \`entity\` and whether a retry could help (\`retryable\`): ${logs(`resource.type="cloud_run_job" AND resource.labels.job_name="${p.connectorJob}" AND severity>=WARNING`)} (a task stopped by SIGTERM logs a WARNING); the tasks' exit codes (1 transient, 2 configuration, 3 other, 143 stopped by SIGTERM) are in \`gcloud run jobs executions describe EXECUTION --region=${p.region}\` (executions: \`gcloud run jobs executions list --job=${p.connectorJob} --region=${p.region}\`).`,
        `Configuration (exit 2): the API key has a version (\`gcloud secrets versions list ${p.apiKeySecret} --project=${p.projectId}\`) and the variable \`retail_api_url\` is right. Transient (exit 1): the Retail API was unavailable longer than the retries.`,
        `When fixed, run it now instead of waiting for the schedule (sales hourly, products and customers daily): \`gcloud run jobs execute ${p.connectorJob} --region=${p.region} --args=--endpoint,ENTITY --wait\`.`,
        `Runs that finished: ${bq('SELECT entity, run_id, finished_at, records, resumed FROM ops.connector_runs ORDER BY finished_at DESC LIMIT 10')}.`,
      ],
    ),
  };
}
