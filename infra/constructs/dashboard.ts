import { MonitoringDashboard } from '@cdktf/provider-google/lib/monitoring-dashboard/index.js';
import type { ITerraformDependable } from 'cdktf';
import { Construct } from 'constructs';
import { type PipelineMetrics, userMetric } from './alerting.js';

// The part of Cloud Monitoring's dashboard JSON this dashboard uses
// (https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.dashboards, layouts and
// widgets as in https://cloud.google.com/monitoring/dashboards/api-examples): a mosaic of tiles,
// each a chart of time series or a markdown text.

/** Aggregation of a time-series filter: align each series over a period, then combine them. */
export interface Aggregation {
  readonly alignmentPeriod: string;
  readonly perSeriesAligner: 'ALIGN_SUM' | 'ALIGN_DELTA' | 'ALIGN_PERCENTILE_50' | 'ALIGN_PERCENTILE_95';
  readonly crossSeriesReducer?: 'REDUCE_SUM' | 'REDUCE_NONE';
  readonly groupByFields?: readonly string[];
}

/** The data of a chart: a Monitoring filter, or a PromQL query. */
export type TimeSeriesQuery =
  | { readonly timeSeriesFilter: { readonly filter: string; readonly aggregation: Aggregation } }
  | { readonly prometheusQuery: string };

export interface DataSet {
  readonly timeSeriesQuery: TimeSeriesQuery;
  readonly plotType: 'LINE' | 'STACKED_BAR' | 'STACKED_AREA';
  readonly targetAxis: 'Y1';
}

export interface Widget {
  readonly title: string;
  readonly xyChart?: {
    readonly dataSets: readonly DataSet[];
    readonly yAxis: { readonly label: string; readonly scale: 'LINEAR' };
  };
  readonly text?: { readonly content: string; readonly format: 'MARKDOWN' };
}

/** A tile's place and size in grid cells; a position of 0 is left out (see tileAt). */
export interface Tile {
  readonly xPos?: number;
  readonly yPos?: number;
  readonly width: number;
  readonly height: number;
  readonly widget: Widget;
}

export interface Dashboard {
  readonly displayName: string;
  /** A grid of at most 48 columns; tiles are placed by column and row. */
  readonly mosaicLayout: { readonly columns: number; readonly tiles: readonly Tile[] };
}

/**
 * A metric type as PromQL names it: the first "/" becomes ":", every other character that is not
 * a letter, digit or "_" becomes "_"; a distribution is read through its _count, _sum and _bucket
 * series (https://cloud.google.com/monitoring/promql/promql-mapping).
 */
export function promqlName(metricType: string): string {
  const slash = metricType.indexOf('/');
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_');
  return `${clean(metricType.slice(0, slash))}:${clean(metricType.slice(slash + 1))}`;
}

export interface DashboardProps {
  readonly prefix: string;
  readonly connectorJob: string;
  readonly reconcilerJob: string;
  readonly workflow: string;
  readonly metrics: PipelineMetrics;
}

const HOUR = '3600s';
const COLUMNS = 48;

const filter = (
  query: string,
  aggregation: Aggregation,
  plotType: DataSet['plotType'] = 'STACKED_BAR',
): DataSet => ({
  timeSeriesQuery: { timeSeriesFilter: { filter: query, aggregation } },
  plotType,
  targetAxis: 'Y1',
});
const promql = (query: string, plotType: DataSet['plotType'] = 'STACKED_BAR'): DataSet => ({
  timeSeriesQuery: { prometheusQuery: query },
  plotType,
  targetAxis: 'Y1',
});
const chart = (title: string, label: string, dataSets: DataSet[]): Widget => ({
  title,
  xyChart: { dataSets, yAxis: { label, scale: 'LINEAR' } },
});
const text = (title: string, content: string): Widget => ({ title, text: { content, format: 'MARKDOWN' } });
/** Sums a counter per hour, per the given labels. */
const hourly = (...groupByFields: string[]): Aggregation => ({
  alignmentPeriod: HOUR,
  perSeriesAligner: 'ALIGN_SUM',
  crossSeriesReducer: 'REDUCE_SUM',
  ...(groupByFields.length ? { groupByFields } : {}),
});
/**
 * The Monitoring API leaves out zero positions and empty lists when it returns a dashboard, and
 * the provider compares that to the JSON it was given: a 0 or [] written here would show as a
 * change on every plan (https://github.com/hashicorp/terraform-provider-google/issues/16173).
 */
const tileAt = (xPos: number, yPos: number, width: number, height: number, widget: Widget): Tile => ({
  ...(xPos ? { xPos } : {}),
  ...(yPos ? { yPos } : {}),
  width,
  height,
  widget,
});

/**
 * The operators' console: what was loaded (rows and files per entity and hour), what failed,
 * how the merges and the jobs fare (executions, success rate, run time), what the reconciler
 * healed or could not - and, in words, where rejects and orphans are, since nothing writes them
 * to Cloud Monitoring (they are rows in BigQuery).
 */
export function dashboardDefinition(p: DashboardProps): Dashboard {
  const rowsLoaded = promqlName(userMetric(p.metrics.rowsLoaded));
  // A log-based metric may map to several monitored resource types (here the loader's Cloud Run
  // revision and the reconciler's Cloud Run job); PromQL then needs the monitored_resource label
  // (https://cloud.google.com/monitoring/promql/promql-mapping, "Specifying a monitored
  // resource type"). `increase` over 1h: the rows (files) of the hour before each point.
  const perEntity = (series: '_sum' | '_count') =>
    (['cloud_run_revision', 'cloud_run_job'] as const).map((resource) =>
      promql(`sum by (entity) (increase(${rowsLoaded}${series}{monitored_resource="${resource}"}[1h]))`),
    );
  // Built-in metrics, sent without setup: Workflows' finished_execution_count (label status:
  // SUCCEEDED, FAILED, ...) and execution_times (a distribution) on the resource
  // workflows.googleapis.com/Workflow (https://cloud.google.com/workflows/docs/monitor), Cloud
  // Run's job/completed_execution_count (label result: succeeded, failed) on cloud_run_job
  // (https://cloud.google.com/run/docs/monitoring); names and labels as listed in
  // https://cloud.google.com/monitoring/api/metrics_gcp.
  const jobs = [p.connectorJob, p.reconcilerJob];
  const completed = 'run.googleapis.com/job/completed_execution_count';
  const jobSuccess = (job: string) => {
    const series = (extra: string) =>
      `sum(increase(${promqlName(completed)}{job_name="${job}"${extra}}[1d]))`;
    return promql(`${series(',result="succeeded"')} / ${series('')}`, 'LINE');
  };
  const finished = 'workflows.googleapis.com/finished_execution_count';
  const workflowSeries = (extra: string) =>
    `sum(increase(${promqlName(finished)}{workflow_id="${p.workflow}"${extra}}[1d]))`;
  const workflowFilter = (metricType: string) =>
    `metric.type="${metricType}" AND resource.type="workflows.googleapis.com/Workflow" AND resource.labels.workflow_id="${p.workflow}"`;
  const jobFilter = (metricType: string, job: string) =>
    `metric.type="${metricType}" AND resource.type="cloud_run_job" AND resource.labels.job_name="${job}"`;

  const widgets: Widget[][] = [
    [
      text(
        'About this dashboard',
        [
          `Files and rows come from the log-based metrics \`${p.metrics.rowsLoaded}\` and \`${p.metrics.filesFailed}\` (the loader's and the reconciler's \`file.loaded\` and \`file.failed\` entries); merges from the built-in Workflows metrics of \`${p.workflow}\`; jobs from the built-in Cloud Run job metrics of \`${p.connectorJob}\` and \`${p.reconcilerJob}\`; healing from \`${p.metrics.reconcilerItems}\`.`,
          'Every alert says what to do. The whole picture from a terminal: `npx retail-pipeline status --gcp` (README, "The CLI against the deployed pipeline").',
        ].join('\n\n'),
      ),
    ],
    [
      chart('Rows loaded into raw per entity and hour (loader, then reconciler)', 'rows', perEntity('_sum')),
      chart('Files loaded per entity and hour (loader, then reconciler)', 'files', perEntity('_count')),
    ],
    [
      chart(
        'Files sent to failed/ per hour (loader, then reconciler)',
        'files',
        (['cloud_run_revision', 'cloud_run_job'] as const).map((resource) =>
          filter(
            `metric.type="${userMetric(p.metrics.filesFailed)}" AND resource.type="${resource}"`,
            hourly(),
          ),
        ),
      ),
      text(
        'Rejects and orphans (BigQuery only)',
        [
          'No metric counts them: rejected records are rows of `ods.rejects`, orphaned sale lines rows of `dmt.sales_items_orphans`, written by the merges in BigQuery and never logged. Their counts: `npx retail-pipeline status --gcp`. Per entity and hour of loading, beside the rows loaded (`bq query --use_legacy_sql=false`):',
          '```sql',
          'WITH loaded AS (',
          '  SELECT entity, TIMESTAMP_TRUNC(loaded_at, HOUR) AS hour, SUM(row_count) AS rows_loaded',
          '  FROM ops.loads WHERE loaded_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)',
          '  GROUP BY entity, hour),',
          'rejected AS (',
          '  SELECT entity, TIMESTAMP_TRUNC(SYS_DATE_CREATE, HOUR) AS hour, COUNT(*) AS rejects',
          '  FROM ods.rejects WHERE SYS_DATE_CREATE >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)',
          '  GROUP BY entity, hour)',
          'SELECT entity, hour, rows_loaded, IFNULL(rejects, 0) AS rejects,',
          '  SAFE_DIVIDE(IFNULL(rejects, 0), rows_loaded) AS reject_rate',
          'FROM loaded LEFT JOIN rejected USING (entity, hour)',
          'ORDER BY hour DESC, entity;',
          '```',
          'The orphan rate of the mart, by reason (a line stays an orphan until its product or customer arrives):',
          '```sql',
          'SELECT reason, COUNT(*) AS orphans,',
          '  SAFE_DIVIDE(COUNT(*), (SELECT COUNT(*) FROM dmt.sales_items) + (SELECT COUNT(*) FROM dmt.sales_items_orphans)) AS orphan_rate',
          'FROM dmt.sales_items_orphans GROUP BY reason;',
          '```',
          'Why records were rejected:',
          '```sql',
          'SELECT entity, reason, COUNT(*) AS records FROM ods.rejects GROUP BY entity, reason ORDER BY records DESC;',
          '```',
        ].join('\n'),
      ),
    ],
    [
      chart('Merge workflow executions by status', 'executions', [
        filter(workflowFilter(finished), hourly('metric.labels.status')),
      ]),
      chart('Merge workflow success rate (last 24 h)', 'succeeded / finished', [
        promql(`${workflowSeries(',status="SUCCEEDED"')} / ${workflowSeries('')}`, 'LINE'),
      ]),
      chart(
        'Merge workflow execution time, p50 and p95 per hour',
        'ms',
        (['ALIGN_PERCENTILE_50', 'ALIGN_PERCENTILE_95'] as const).map((aligner) =>
          filter(
            workflowFilter('workflows.googleapis.com/execution_times'),
            { alignmentPeriod: HOUR, perSeriesAligner: aligner },
            'LINE',
          ),
        ),
      ),
    ],
    [
      chart(
        'Connector and reconciler executions by result',
        'executions',
        jobs.map((job) =>
          filter(jobFilter(completed, job), hourly('resource.labels.job_name', 'metric.labels.result')),
        ),
      ),
      chart(
        'Connector and reconciler success rate (last 24 h)',
        'succeeded / completed',
        jobs.map(jobSuccess),
      ),
      // No duration per job execution is among Cloud Run's documented job metrics
      // (https://cloud.google.com/run/docs/monitoring); billable instance time is how long the
      // job's instances ran - one task per execution here - summed per hour.
      chart(
        'Connector and reconciler run time per hour (billable instance time)',
        's',
        jobs.map((job) =>
          filter(
            jobFilter('run.googleapis.com/container/billable_instance_time', job),
            hourly('resource.labels.job_name'),
          ),
        ),
      ),
    ],
    [
      chart('Reconciler: items healed and stuck, by action', 'items', [
        filter(
          `metric.type="${userMetric(p.metrics.reconcilerItems)}" AND resource.type="cloud_run_job"`,
          hourly('metric.labels.outcome', 'metric.labels.action'),
        ),
      ]),
      chart('Loader errors per hour', 'entries', [
        filter(
          `metric.type="${userMetric(p.metrics.loaderErrors)}" AND resource.type="cloud_run_revision"`,
          hourly(),
        ),
      ]),
    ],
  ];
  const tiles: Tile[] = [];
  let yPos = 0;
  for (const row of widgets) {
    const height = row.length === 1 ? 8 : 16;
    const width = COLUMNS / row.length;
    row.forEach((widget, i) => {
      tiles.push(tileAt(i * width, yPos, width, height, widget));
    });
    yPos += height;
  }
  return { displayName: `${p.prefix}: pipeline`, mosaicLayout: { columns: COLUMNS, tiles } };
}

/** The dashboard in Cloud Monitoring, created once the log-based metrics it charts are usable. */
export class PipelineDashboard extends Construct {
  readonly dashboard: MonitoringDashboard;

  constructor(scope: Construct, id: string, props: DashboardProps & { dependsOn: ITerraformDependable[] }) {
    super(scope, id);
    const { dependsOn, ...definition } = props;
    this.dashboard = new MonitoringDashboard(this, 'dashboard', {
      dashboardJson: JSON.stringify(dashboardDefinition(definition)),
      dependsOn,
    });
  }
}
