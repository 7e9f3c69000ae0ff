import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { JsonLogger } from '../../functions/adapters/common/json-logger.js';
import { workflowProblems } from '../../functions/adapters/local/local-workflow-runner.js';
import { ingestObject } from '../../functions/app/ingest-object.js';
import { EXCLUSIVE_RECONCILE_SETTINGS, reconcile } from '../../functions/app/reconcile.js';
import { openLocalRuntime } from '../../functions/compose-local.js';
import { parseCli } from '../../functions/core/config.js';
import { ENTITIES } from '../../functions/core/entities.js';
import { LOADER_MEMORY } from '../../functions/core/loader-limits.js';
import { ALL_TABLES, bigQuerySchema, VIEWS } from '../../functions/core/schema.js';
import { splitStatements } from '../../functions/core/sql-script.js';
import { runOverrides } from '../../infra/constructs/connector.js';
import { promqlName } from '../../infra/constructs/dashboard.js';
import { FUNCTION_NODE_MAJOR, prepareFunctionSource } from '../../infra/function-source.js';
import { ENVIRONMENTS, STATE_BUCKET_ENV, stateBucketFrom, synthApp } from '../../infra/main.js';
import { REQUIRED_APIS } from '../../infra/stack.js';
import { schemaCatalog } from '../helpers/bigquery-script.js';
import { tempDir } from '../helpers/fakes.js';
import { analyze, startServer, stopServer } from '../helpers/zetasql.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The infrastructure, checked on what `npm run synth` writes (cdktf.out/stacks/<env>/cdk.tf.json):
 * no terraform binary or provider download is needed, so every assertion is about the JSON.
 */
// biome-ignore lint/suspicious/noExplicitAny: synthesized Terraform JSON
type Json = any;
let outdir: string;
const stacks: Record<string, Json> = {};

before(() => {
  outdir = mkdtempSync(join(tmpdir(), 'synth-'));
  synthApp({ outdir, stateBucket: 'example-tfstate' });
  for (const { environment } of ENVIRONMENTS) {
    stacks[environment] = JSON.parse(
      readFileSync(join(outdir, 'stacks', environment, 'cdk.tf.json'), 'utf8'),
    );
  }
});
after(() => rmSync(outdir, { recursive: true, force: true }));

const resources = (stack: Json, type: string): Json[] => Object.values(stack.resource?.[type] ?? {});
const one = (stack: Json, type: string): Json => {
  const all = resources(stack, type);
  assert.equal(all.length, 1, `one ${type}`);
  return all[0];
};
/**
 * The Terraform reference in a value, without CDKTF's hash suffixes:
 * "${google_storage_bucket.bucket_3056591E.name}" -> "google_storage_bucket.bucket.name".
 */
const ref = (value: string) =>
  (/^(?:serviceAccount:)?\$\{([^}]+)\}$/.exec(value)?.[1] ?? value).replace(/_[0-9A-F]{8}(?=[.[]|$)/g, '');

describe('CDKTF synthesis', () => {
  test('one stack per environment, nothing about a project or region hard-coded', () => {
    assert.deepEqual(Object.keys(stacks).sort(), ['dev', 'prod']);
    for (const stack of Object.values(stacks)) {
      const provider = stack.provider.google[0];
      assert.equal(provider.project, '${var.project_id}');
      assert.equal(provider.region, '${var.region}');
      for (const name of [
        'project_id',
        'region',
        'bigquery_location',
        'connector_image',
        'retail_api_url',
        'analysts_group',
        'notification_channels',
        'alert_emails',
        'build_service_account',
        'api_key_ready',
      ]) {
        assert.ok(stack.variable[name], `variable ${name}`);
        const defaults: Record<string, unknown> = {
          notification_channels: [],
          alert_emails: [],
          api_key_ready: false,
        };
        assert.deepEqual(stack.variable[name].default, defaults[name], `${name}'s default`);
      }
    }
    const names = (s: Json) =>
      resources(s, 'google_service_account')
        .map((a: Json) => a.account_id)
        .sort();
    assert.notDeepEqual(names(stacks.dev), names(stacks.prod), 'environments do not share names');
  });

  test('state lives in a GCS backend, one prefix per environment, and synth refuses to run without one', () => {
    for (const [environment, stack] of Object.entries(stacks)) {
      assert.deepEqual(stack.terraform.backend, {
        gcs: { bucket: 'example-tfstate', prefix: `retail-pipeline/${environment}` },
      });
    }
    assert.throws(() => stateBucketFrom({}), new RegExp(`${STATE_BUCKET_ENV} is not set`));
    assert.equal(stateBucketFrom({ [STATE_BUCKET_ENV]: 'gs://p-tfstate' }), 'p-tfstate');
    const ignored = readFileSync(join(ROOT, '.gitignore'), 'utf8').split('\n');
    for (const pattern of ['cdktf.out/', '*.tfstate', '*.tfstate.*', '.terraform/']) {
      assert.ok(ignored.includes(pattern), `.gitignore lists ${pattern}`);
    }
  });

  test('nothing is created before the APIs are usable, nor before the datasets claimed the project', () => {
    for (const stack of Object.values(stacks)) {
      const wait = stack.resource.time_sleep['apis-ready'];
      assert.equal(wait.create_duration, '60s');
      assert.deepEqual(
        wait.depends_on.sort(),
        REQUIRED_APIS.map((api) => `google_project_service.api-${api.split('.')[0]}`).sort(),
      );
      const datasets = Object.keys(stack.resource.google_bigquery_dataset).map(
        (name) => `google_bigquery_dataset.${name}`,
      );
      for (const [type, byName] of Object.entries(stack.resource as Record<string, Record<string, Json>>)) {
        for (const [name, r] of Object.entries(byName)) {
          const id = `${type}.${name}`;
          if (type === 'google_project_service' || id === 'time_sleep.apis-ready') continue;
          const dependsOn: string[] = r.depends_on ?? [];
          assert.ok(dependsOn.includes('time_sleep.apis-ready'), `${id} waits for the APIs`);
          if (type === 'google_bigquery_dataset') continue;
          for (const d of datasets) assert.ok(dependsOn.includes(d), `${id} waits for ${d}`);
        }
      }
    }
    // A second environment in the same project fails creating its datasets (their names are the
    // project's); the labels say which environment a project's datasets belong to.
    for (const [environment, stack] of Object.entries(stacks)) {
      for (const d of resources(stack, 'google_bigquery_dataset')) {
        assert.deepEqual(d.labels, { 'retail-pipeline-environment': environment });
      }
    }
  });

  test('every required Google API is enabled', () => {
    const enabled = resources(stacks.dev, 'google_project_service').map((s: Json) => s.service);
    assert.deepEqual(enabled.sort(), [...REQUIRED_APIS].sort());
  });

  test('the bucket: uniform access, public access prevented, lifecycle on archive/ only', () => {
    const bucket = resources(stacks.dev, 'google_storage_bucket').find((b: Json) =>
      String(b.name).endsWith('-dev-retail-pipeline'),
    );
    assert.equal(bucket.uniform_bucket_level_access, true);
    assert.equal(bucket.public_access_prevention, 'enforced');
    const prefixes = bucket.lifecycle_rule.flatMap((r: Json) => r.condition.matches_prefix);
    assert.deepEqual([...new Set(prefixes)].sort(), ENTITIES.map((e) => `${e}/archive/`).sort());
    assert.deepEqual(bucket.lifecycle_rule.map((r: Json) => r.action.type).sort(), [
      'Delete',
      'SetStorageClass',
    ]);
    assert.equal(
      bucket.lifecycle_rule.find((r: Json) => r.action.type === 'Delete').condition.age,
      '${var.archive_delete_after_days}',
    );
  });

  test("the connector's work bucket: outside the trigger, its own, no lifecycle", () => {
    const work = resources(stacks.dev, 'google_storage_bucket').find((b: Json) =>
      String(b.name).endsWith('-dev-retail-pipeline-work'),
    );
    assert.equal(work.uniform_bucket_level_access, true);
    assert.equal(work.public_access_prevention, 'enforced');
    assert.equal(work.lifecycle_rule, undefined, 'no rule ages an unfinished run');
    const fn = one(stacks.dev, 'google_cloudfunctions2_function');
    assert.deepEqual(
      fn.event_trigger.event_filters.map((f: Json) => [f.attribute, ref(f.value)]),
      [['bucket', 'google_storage_bucket.bucket.name']],
      'the trigger watches the pipeline bucket only',
    );
    const env = resources(stacks.dev, 'google_cloud_run_v2_job').find((j: Json) =>
      j.name.endsWith('-connector'),
    ).template.template.containers[0].env;
    assert.equal(
      ref(env.find((e: Json) => e.name === 'PIPELINE_WORK_BUCKET').value),
      'google_storage_bucket.work_bucket.name',
    );
    assert.equal(fn.service_config.environment_variables.PIPELINE_WORK_BUCKET, undefined);
  });

  test('every table of the schema, with its schema, description, partitioning and clustering', () => {
    const tables = resources(stacks.dev, 'google_bigquery_table').filter((t: Json) => !t.view);
    assert.equal(tables.length, ALL_TABLES.length);
    for (const table of ALL_TABLES) {
      const t = tables.find(
        (x: Json) => x.table_id === table.name && ref(x.dataset_id).includes(`dataset-${table.dataset}`),
      );
      assert.ok(t, `${table.dataset}.${table.name}`);
      assert.deepEqual(JSON.parse(t.schema), bigQuerySchema(table.fields));
      assert.ok(t.description);
      assert.ok(
        JSON.parse(t.schema).every((f: Json) => f.description),
        'every column is described',
      );
    }
    const partition = (dataset: string, name: string) =>
      tables.find((x: Json) => x.table_id === name && ref(x.dataset_id).includes(`dataset-${dataset}`))
        .time_partitioning;
    for (const e of ENTITIES)
      assert.deepEqual(partition('raw', e), { field: 'SYS_DATE_CREATE', type: 'DAY' });
    assert.deepEqual(partition('ods', 'sales'), { field: 'datetime', type: 'DAY' });
    assert.deepEqual(
      resources(stacks.dev, 'google_bigquery_dataset')
        .map((d: Json) => d.dataset_id)
        .sort(),
      ['dmt', 'ods', 'ops', 'raw'],
    );
    assert.ok(
      resources(stacks.prod, 'google_bigquery_table')
        .filter((t: Json) => !t.view)
        .every((t: Json) => t.deletion_protection === true),
    );
  });

  test('each view: its GoogleSQL query from sql/bigquery, standard SQL; no dataset access entries beside dataset IAM', () => {
    const views = resources(stacks.dev, 'google_bigquery_table').filter((t: Json) => t.view);
    assert.deepEqual(
      views.map((v: Json) => v.table_id),
      VIEWS.map((v) => v.name),
    );
    for (const view of VIEWS) {
      const v = views.find((x: Json) => x.table_id === view.name);
      const [query] = splitStatements(
        readFileSync(new URL(`../../sql/bigquery/${view.sqlFile}.sql`, import.meta.url), 'utf8'),
      );
      assert.equal(v.view.query, query);
      assert.equal(v.view.use_legacy_sql, false, "the provider's default would be legacy SQL");
      assert.match(ref(v.dataset_id), new RegExp(`dataset-${view.dataset}`));
    }
    // the provider's dataset IAM resources remove authorized-view entries and fight with
    // google_bigquery_dataset_access: the views run with their readers' rights instead
    assert.deepEqual(resources(stacks.dev, 'google_bigquery_dataset_access'), []);
  });

  test('the loader function: built source from a source bucket, finalize trigger with retries, its own accounts', () => {
    const fn = one(stacks.dev, 'google_cloudfunctions2_function');
    assert.equal(fn.build_config.entry_point, 'onObjectFinalized');
    assert.equal(fn.build_config.runtime, 'nodejs24', 'nodejs20 was decommissioned on 2026-10-30');
    assert.equal(
      fn.build_config.service_account,
      'projects/${var.project_id}/serviceAccounts/${var.build_service_account}',
    );
    assert.match(ref(fn.build_config.source.storage_source.object), /google_storage_bucket_object\./);
    assert.equal(fn.event_trigger.event_type, 'google.cloud.storage.object.v1.finalized');
    assert.equal(fn.event_trigger.retry_policy, 'RETRY_POLICY_RETRY');
    assert.match(ref(fn.event_trigger.service_account_email), /sa-trigger\.email$/);
    assert.match(ref(fn.service_config.service_account_email), /sa-loader\.email$/);
    assert.equal(ref(fn.event_trigger.event_filters[0].value), 'google_storage_bucket.bucket.name');
    for (const name of [
      'PIPELINE_BUCKET',
      'BIGQUERY_LOCATION',
      'EVENTS_TOPIC',
      'MERGE_WORKFLOW',
      'GOOGLE_CLOUD_PROJECT',
    ]) {
      assert.ok(fn.service_config.environment_variables[name], name);
    }
    const invoker = one(stacks.dev, 'google_cloud_run_service_iam_member');
    assert.equal(invoker.role, 'roles/run.invoker');
    assert.match(ref(invoker.member), /sa-trigger\.email$/);
    const object = one(stacks.dev, 'google_storage_bucket_object');
    assert.match(object.source, /assets\/.*\.zip$/);
  });

  test('the trigger is created after both grants it needs, and after they had time to propagate', () => {
    for (const stack of Object.values(stacks)) {
      const fn = one(stack, 'google_cloudfunctions2_function');
      assert.ok(fn.depends_on.includes('time_sleep.trigger-grants-settle'));
      const wait = stack.resource.time_sleep['trigger-grants-settle'];
      assert.equal(wait.create_duration, '120s');
      assert.ok(wait.depends_on.includes('google_project_iam_member.gcs-agent-publisher'));
      assert.ok(wait.depends_on.includes('google_project_iam_member.trigger-receiver'));
      assert.equal(
        stack.resource.google_project_iam_member['gcs-agent-publisher'].role,
        'roles/pubsub.publisher',
      );
      assert.equal(
        stack.resource.google_project_iam_member['trigger-receiver'].role,
        'roles/eventarc.eventReceiver',
      );
    }
  });

  test('the function ships a bundle of what the loader imports, for Node 24, and nothing of the local runtime', async () => {
    const source = prepareFunctionSource();
    const pkg = JSON.parse(readFileSync(join(source.dir, 'package.json'), 'utf8'));
    assert.equal(pkg.main, 'dist/loader.js');
    assert.deepEqual(pkg.engines, { node: String(FUNCTION_NODE_MAJOR) });
    assert.equal(FUNCTION_NODE_MAJOR, 24);
    assert.deepEqual(Object.keys(pkg.dependencies).sort(), [
      '@google-cloud/bigquery',
      '@google-cloud/functions-framework',
      '@google-cloud/pubsub',
      '@google-cloud/storage',
      '@google-cloud/workflows',
    ]);
    const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    for (const [name, version] of Object.entries(pkg.dependencies))
      assert.equal(version, root.dependencies[name]);
    const bundle = readFileSync(join(source.dir, 'dist', 'loader.js'), 'utf8');
    assert.doesNotMatch(bundle, /duckdb|DuckDB|workflows\/interpreter/i);
    assert.ok(existsSync(join(source.dir, 'sql', 'bigquery', 'ods_sales.sql')));
    // The bundle loads and registers the function target the trigger names. It is imported from
    // inside the repository so that its packages resolve from node_modules.
    const probe = mkdtempSync(join(ROOT, '.function-probe-'));
    try {
      cpSync(source.dir, probe, { recursive: true });
      await import(join(probe, 'dist', 'loader.js'));
      const { getFunction } = await import('@google-cloud/functions-framework/testing');
      assert.equal(typeof getFunction('onObjectFinalized'), 'function');
    } finally {
      rmSync(probe, { recursive: true, force: true });
      rmSync(source.dir, { recursive: true, force: true });
    }
  });

  test('the connector job and its schedules: hourly sales, daily products and customers, OAuth, argument overrides', () => {
    const job = resources(stacks.dev, 'google_cloud_run_v2_job').find((j: Json) =>
      j.name.endsWith('-connector'),
    );
    const container = job.template.template.containers[0];
    assert.equal(container.image, '${var.connector_image}');
    assert.match(ref(job.template.template.service_account), /sa-connector\.email$/);
    const key = container.env.find((e: Json) => e.name === 'RETAIL_API_KEY');
    assert.match(ref(key.value_source.secret_key_ref.secret), /google_secret_manager_secret\.api-key/);
    assert.ok(
      !container.env.some((e: Json) => e.name === 'RETAIL_API_KEY' && e.value),
      'no key value in the job',
    );
    // Creating the job checks that its account may read the secret: the grant comes first.
    assert.ok(job.depends_on.includes('google_secret_manager_secret_iam_member.connector-secret'));
    const schedules = resources(stacks.dev, 'google_cloud_scheduler_job').filter((s: Json) =>
      s.name.includes('-extract-'),
    );
    assert.equal(schedules.length, 3);
    for (const s of schedules) assert.equal(s.paused, '${!var.api_key_ready}', 'paused until the key is set');
    assert.deepEqual(schedules.map((s: Json) => [s.name.split('-').at(-1), s.schedule]).sort(), [
      ['customers', '0 0 * * *'],
      ['products', '0 0 * * *'],
      ['sales', '0 * * * *'],
    ]);
    for (const s of schedules) {
      const entity = s.name.split('-').at(-1);
      assert.equal(s.http_target.http_method, 'POST');
      assert.match(
        s.http_target.uri,
        /^https:\/\/run\.googleapis\.com\/v2\/projects\/\$\{var\.project_id\}\/locations\/\$\{var\.region\}\/jobs\/.+:run$/,
      );
      assert.equal(Buffer.from(s.http_target.body, 'base64').toString(), runOverrides(entity));
      assert.deepEqual(JSON.parse(runOverrides(entity)).overrides.containerOverrides[0].args, [
        '--endpoint',
        entity,
      ]);
      assert.match(ref(s.http_target.oauth_token.service_account_email), /sa-scheduler\.email$/);
      assert.equal(s.http_target.oauth_token.scope, 'https://www.googleapis.com/auth/cloud-platform');
    }
  });

  test('the reconciler: `reconcile --gcp` from the connector image every 15 minutes, its own account, the loader memory', () => {
    const job = resources(stacks.dev, 'google_cloud_run_v2_job').find((j: Json) =>
      j.name.endsWith('-reconciler'),
    );
    const container = job.template.template.containers[0];
    assert.equal(container.image, '${var.connector_image}');
    assert.deepEqual(
      [...container.command, ...container.args],
      [
        'node',
        'dist/functions/entrypoints/cli.js',
        'reconcile',
        '--gcp',
        '--log-format',
        'json',
        '--log-level',
        'INFO',
      ],
    );
    assert.equal(container.resources.limits.memory, LOADER_MEMORY);
    assert.match(ref(job.template.template.service_account), /sa-reconciler\.email$/);
    const env = Object.fromEntries(container.env.map((e: Json) => [e.name, e.value]));
    for (const name of [
      'GOOGLE_CLOUD_PROJECT',
      'PIPELINE_BUCKET',
      'BIGQUERY_LOCATION',
      'EVENTS_TOPIC',
      'MERGE_WORKFLOW',
    ])
      assert.ok(env[name], `${name} set`);
    assert.ok(
      !container.env.some((e: Json) => e.name === 'RETAIL_API_KEY'),
      'no API key: it never calls the API',
    );
    // The image's CLI parses what the job passes.
    const parsed = parseCli(container.args.slice(1), {});
    assert.deepEqual([parsed.command, 'gcp' in parsed && parsed.gcp], ['reconcile', true]);
    const schedule = resources(stacks.dev, 'google_cloud_scheduler_job').find((s: Json) =>
      s.name.endsWith('-reconcile'),
    );
    assert.equal(schedule.schedule, '*/15 * * * *');
    assert.match(
      schedule.http_target.uri,
      /\/jobs\/.+-reconciler:run$|\/jobs\/\$\{google_cloud_run_v2_job\.reconciler_job/,
    );
    assert.equal(schedule.http_target.body, undefined, 'runs the job as configured: no overrides');
    assert.match(ref(schedule.http_target.oauth_token.service_account_email), /sa-scheduler\.email$/);
  });

  test('the merge workflow is workflows/merge.yaml with the BigQuery SQL embedded, run by its own account', () => {
    const wf = one(stacks.dev, 'google_workflows_workflow');
    assert.match(ref(wf.service_account), /sa-workflow\.id$/);
    assert.doesNotMatch(wf.source_contents, /"@sql [a-z_]+\.sql"/, 'every SQL reference is embedded');
    // Workflows refuses a source over 128 KB ("Source code size", a limit, not a quota:
    // https://cloud.google.com/workflows/quotas); the embedded SQL is most of it.
    assert.ok(Buffer.byteLength(wf.source_contents) <= 128 * 1024, "the source fits Workflows' size limit");
    const definition = parse(wf.source_contents);
    assert.deepEqual(
      workflowProblems(definition, join(ROOT, 'sql')),
      [],
      'the deployed source passes the deploy-time checks',
    );
    const scripts = definition.run_sql.steps[0].sources.assign[0].scripts;
    assert.match(scripts.ods_sales, /MERGE INTO ods\.sales/);
    for (const step of ['ods_sales', 'ods_products']) {
      assert.match(
        scripts[step],
        /CREATE TEMP FUNCTION rp_number\(x STRING\)/,
        `${step} carries its functions`,
      );
      assert.doesNotMatch(scripts[step], /^-- @include/m, `${step} has its includes in place`);
    }
    assert.deepEqual(Object.keys(wf.user_env_vars).sort(), ['BIGQUERY_LOCATION', 'EVENTS_TOPIC']);
  });

  test('events: a topic, a dead-letter topic and a subscription that dead-letters', () => {
    const topics = resources(stacks.dev, 'google_pubsub_topic').map((t: Json) => t.name);
    assert.deepEqual(topics.sort(), ['dev-retail-pipeline-events', 'dev-retail-pipeline-events-dead-letter']);
    const subscription = resources(stacks.dev, 'google_pubsub_subscription').find(
      (s: Json) => s.dead_letter_policy,
    );
    assert.match(ref(subscription.dead_letter_policy.dead_letter_topic), /dead-letter/);
  });

  test('the API key secret has no value in code and only the connector reads it', () => {
    assert.equal(resources(stacks.dev, 'google_secret_manager_secret_version').length, 0);
    const readers = resources(stacks.dev, 'google_secret_manager_secret_iam_member');
    assert.deepEqual(
      readers.map((r: Json) => [r.role, ref(r.member)]),
      [['roles/secretmanager.secretAccessor', 'google_service_account.sa-connector.email']],
    );
  });

  test('alert policies: loader errors, workflow failures, connector failures, files in failed/, reconciler stuck', () => {
    const policies = resources(stacks.dev, 'google_monitoring_alert_policy');
    const filters = policies
      .flatMap((p: Json) => p.conditions.map((c: Json) => c.condition_threshold.filter))
      .join('\n');
    assert.match(filters, /workflows\.googleapis\.com\/finished_execution_count.*status="FAILED"/);
    assert.match(filters, /run\.googleapis\.com\/job\/completed_execution_count.*result="failed"/);
    assert.match(
      filters,
      /logging\.googleapis\.com\/user\/\$\{google_logging_metric\.alerting_files-failed_[0-9A-F]{8}\.name\}/,
    );
    assert.match(
      filters,
      /logging\.googleapis\.com\/user\/\$\{google_logging_metric\.alerting_loader-errors_[0-9A-F]{8}\.name\}/,
    );
    const stuck = policies.find((p: Json) => p.display_name.endsWith('items the reconciler could not heal'));
    assert.match(
      stuck.conditions[0].condition_threshold.filter,
      /user\/\$\{google_logging_metric\.alerting_reconciler-items_[0-9A-F]{8}\.name\}.*metric\.labels\.outcome="reconcile\.stuck"/,
    );
    const items = resources(stacks.dev, 'google_logging_metric').find(
      (m: Json) => m.name === 'dev-retail-reconciler-items',
    );
    assert.match(
      items.filter,
      /jsonPayload\.event="reconcile\.healed" OR jsonPayload\.event="reconcile\.stuck"/,
    );
    assert.deepEqual(items.label_extractors, {
      outcome: 'EXTRACT(jsonPayload.event)',
      action: 'EXTRACT(jsonPayload.action)',
    });
    const failedMetric = resources(stacks.dev, 'google_logging_metric').find(
      (m: Json) => m.name === 'dev-retail-files-failed',
    );
    assert.match(failedMetric.filter, /jsonPayload\.event="file\.failed"/);
    // The reconciler loads lost arrivals with the loader's code: its failed files count too, and
    // the alert watches both resource types the metric is written against.
    assert.match(failedMetric.filter, /resource\.type="cloud_run_revision"/);
    assert.match(
      failedMetric.filter,
      /resource\.labels\.job_name="\$\{google_cloud_run_v2_job\.reconciler_job/,
    );
    const failed = policies.find((p: Json) => p.display_name.endsWith('files sent to failed/'));
    assert.deepEqual(
      failed.conditions.map((c: Json) => /resource\.type="([^"]+)"/.exec(c.condition_threshold.filter)?.[1]),
      ['cloud_run_revision', 'cloud_run_job'],
    );
    // A new log-based metric can take up to 10 minutes before a policy may name it.
    const wait = Object.entries(stacks.dev.resource.time_sleep).find(([name]) =>
      name.startsWith('alerting_metrics-settle'),
    )?.[1] as Json;
    assert.equal(wait.create_duration, '600s');
    assert.equal(wait.depends_on.filter((d: string) => d.startsWith('google_logging_metric.')).length, 4);
    for (const p of policies)
      assert.ok(p.depends_on.some((d: string) => d.startsWith('time_sleep.alerting_metrics-settle')));
  });

  test('the connector image is built for Node 24 with logs in Cloud Logging (a user-specified build account requires it)', () => {
    const dockerfile = readFileSync(join(ROOT, 'infra', 'connector', 'Dockerfile'), 'utf8');
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(bases, ['node:24-slim', 'node:24-slim']);
    const build = parse(readFileSync(join(ROOT, 'infra', 'connector', 'cloudbuild.yaml'), 'utf8'));
    assert.equal(build.options.logging, 'CLOUD_LOGGING_ONLY');
    const bootstrap = readFileSync(join(ROOT, 'infra', 'bootstrap.sh'), 'utf8');
    assert.deepEqual(
      [...bootstrap.matchAll(/--role=(\S+)/g)].map((m) => m[1]),
      ['roles/run.builder'],
    );
  });
});

describe("the operators' console: dashboard, alert recipients, runbooks", () => {
  const policies = () => resources(stacks.dev, 'google_monitoring_alert_policy');
  /** Terraform's own references, the only "${" a Monitoring text may hold (Monitoring would expand the rest). */
  const TF_REF = /^\$\{(var\.[a-z_]+|google_[a-z0-9_]+\.[A-Za-z0-9_-]+\.[a-z_]+)\}$/;
  const interpolations = (text: string) => text.match(/\$\{[^}]*\}/g) ?? [];
  /** A text as long as it can get once Terraform filled in its references (names are short). */
  const expanded = (text: string) => text.replace(/\$\{[^}]*\}/g, 'x'.repeat(100));
  const dashboard = (): Json => JSON.parse(one(stacks.dev, 'google_monitoring_dashboard').dashboard_json);
  const widgets = (d: Json): Json[] => d.mosaicLayout.tiles.map((t: Json) => t.widget);
  const queries = (d: Json): string[] =>
    widgets(d).flatMap((w: Json) =>
      (w.xyChart?.dataSets ?? []).map(
        (s: Json) => s.timeSeriesQuery.prometheusQuery ?? s.timeSeriesQuery.timeSeriesFilter.filter,
      ),
    );
  const aggregations = (d: Json): Json[] =>
    widgets(d).flatMap((w: Json) =>
      (w.xyChart?.dataSets ?? []).flatMap((s: Json) => s.timeSeriesQuery.timeSeriesFilter?.aggregation ?? []),
    );
  /** The SQL an operator is told to run: ```sql blocks of the dashboard, `bq query '...'` of the runbooks. */
  const operatorSql = (): string[] => [
    ...widgets(dashboard()).flatMap((w: Json) =>
      [...String(w.text?.content ?? '').matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1] as string),
    ),
    ...policies().flatMap((p: Json) =>
      [...String(p.documentation.content).matchAll(/`bq [^`']*query [^`']*'([^']+)'`/g)].map(
        (m) => m[1] as string,
      ),
    ),
  ];

  test('one e-mail notification channel per address of alert_emails, validated; every policy notifies them and the given ids', () => {
    for (const stack of Object.values(stacks)) {
      const channels = Object.entries(
        stack.resource.google_monitoring_notification_channel as Record<string, Json>,
      );
      assert.equal(channels.length, 1);
      const [key, channel] = channels[0] as [string, Json];
      assert.equal(channel.for_each, '${toset(var.alert_emails)}', 'one channel per distinct address');
      assert.equal(channel.type, 'email');
      assert.deepEqual(channel.labels, { email_address: '${each.value}' });
      const expected = `\${concat(var.notification_channels, [ for key, val in google_monitoring_notification_channel.${key}: val.name])}`;
      assert.ok(policies().length >= 5);
      for (const p of resources(stack, 'google_monitoring_alert_policy')) {
        assert.equal(
          p.notification_channels,
          expected,
          `${p.display_name}: the given ids and the e-mail channels`,
        );
      }
    }
    const variable = stacks.dev.variable.alert_emails;
    assert.equal(variable.type, 'list(string)');
    assert.deepEqual(variable.default, []);
    const [validation] = variable.validation;
    assert.match(
      validation.condition,
      /^\$\{alltrue\(\[for address in var\.alert_emails : can\(regex\("[^"]+", address\)\)\]\)\}$/,
    );
    // The pattern as Terraform's regex (RE2) reads it; this one is the same in JavaScript.
    const pattern = new RegExp(/regex\("([^"]+)"/.exec(validation.condition)?.[1] ?? '(?!)');
    for (const good of ['oncall@example.com', 'data.team+alerts@mail.example.co.uk'])
      assert.ok(pattern.test(good), good);
    for (const bad of [
      '',
      'oncall',
      'oncall@example',
      'on call@example.com',
      'a@b@example.com',
      '@example.com',
      'a@example.',
    ])
      assert.ok(!pattern.test(bad), `"${bad}" is refused`);
    // "\." inside a Terraform expression is an invalid HCL escape (hashicorp/terraform#28232).
    for (const [name, v] of Object.entries(stacks.dev.variable as Record<string, Json>))
      for (const check of v.validation ?? [])
        assert.doesNotMatch(check.condition, /\\/, `${name}: no backslash`);
  });

  test('every alert has a runbook: what happened, what to do with real commands, within Monitoring limits', () => {
    const docs = Object.fromEntries(
      policies().map((p: Json) => [p.display_name.replace(/^dev-retail: /, ''), p.documentation]),
    );
    assert.deepEqual(Object.keys(docs).sort(), [
      'connector job failures',
      'files sent to failed/',
      'items the reconciler could not heal',
      'loader errors',
      'merge workflow failures',
    ]);
    for (const [name, doc] of Object.entries(docs) as [string, Json][]) {
      assert.equal(doc.mime_type, 'text/markdown');
      assert.match(doc.content, /^## What happened\n.+\n\n## What to do\n1\. /s, name);
      assert.match(doc.content, /`(npx retail-pipeline|gcloud|bq) [^`]+`/, `${name} names a command`);
      assert.match(doc.subject, /^\[dev-retail\] /);
      // Content: at most 8,192 characters and 10,240 bytes; subject cut at 255 bytes (AlertPolicy.Documentation).
      assert.ok(expanded(doc.content).length <= 8192, `${name}: content length`);
      assert.ok(Buffer.byteLength(expanded(doc.content)) <= 10240, `${name}: content bytes`);
      assert.ok(Buffer.byteLength(expanded(doc.subject)) <= 255, `${name}: subject`);
      for (const text of [doc.content, doc.subject]) {
        for (const i of interpolations(text))
          assert.match(i, TF_REF, `${name}: ${i} is a Terraform reference`);
        assert.doesNotMatch(text, /%\{/, `${name}: no Terraform template directive`);
      }
    }
    const failed = docs['files sent to failed/'].content;
    assert.match(failed, /\.error\.json/, 'where the reason is');
    assert.match(
      failed,
      /gs:\/\/\$\{google_storage_bucket\.bucket_[0-9A-F]{8}\.name\}\/\{entity\}\/failed\//,
    );
    assert.match(
      failed,
      /`npx retail-pipeline replay gs:\/\/\$\{google_storage_bucket\.bucket_[0-9A-F]{8}\.name\}\/FAILED_OBJECT`/,
    );
    assert.match(
      failed,
      /`gcloud storage mv gs:\/\/[^`]+\/FAILED_OBJECT gs:\/\/[^`]+\/ENTITY\/in\/NAME\.json`/,
    );
    assert.match(failed, /FROM ops\.files WHERE state = "failed"/);
    assert.match(
      docs['items the reconciler could not heal'].content,
      /`npx retail-pipeline reconcile --gcp`/,
    );
    assert.match(
      docs['items the reconciler could not heal'].content,
      /jsonPayload\.event="reconcile\.stuck"/,
    );
    assert.match(
      docs['merge workflow failures'].content,
      /`gcloud workflows executions describe EXECUTION_ID --workflow=\$\{google_workflows_workflow\.merge-workflow\.name\} --location=\$\{var\.region\}`/,
    );
    assert.match(docs['merge workflow failures'].content, /FROM ops\.loads WHERE merged_at IS NULL/);
    assert.match(
      docs['connector job failures'].content,
      /`gcloud run jobs execute \$\{google_cloud_run_v2_job\.connector_job_[0-9A-F]{8}\.name\} --region=\$\{var\.region\} --args=--endpoint,ENTITY --wait`/,
    );
    assert.match(
      docs['loader errors'].content,
      /resource\.labels\.service_name="dev-retail-loader" AND severity>=ERROR/,
    );
  });

  test('the dashboard charts rows and files per entity, failed files, merges, jobs and the reconciler from metrics that exist', () => {
    const d = dashboard();
    assert.equal(d.displayName, 'dev-retail: pipeline');
    assert.equal(d.mosaicLayout.columns, 48);
    const resource = one(stacks.dev, 'google_monitoring_dashboard');
    assert.ok(resource.depends_on.some((x: string) => x.startsWith('time_sleep.alerting_metrics-settle')));
    const all = queries(d);
    const has = (pattern: RegExp, what: string) =>
      assert.ok(
        all.some((q) => pattern.test(q)),
        `${what}: ${pattern}`,
      );
    for (const series of ['sum', 'count']) {
      for (const resourceType of ['cloud_run_revision', 'cloud_run_job'])
        has(
          new RegExp(
            `^sum by \\(entity\\) \\(increase\\(logging_googleapis_com:user_dev_retail_rows_loaded_${series}\\{monitored_resource="${resourceType}"\\}\\[1h\\]\\)\\)$`,
          ),
          `${series === 'sum' ? 'rows' : 'files'} loaded per entity and hour`,
        );
    }
    for (const resourceType of ['cloud_run_revision', 'cloud_run_job'])
      has(
        new RegExp(
          `^metric\\.type="logging\\.googleapis\\.com/user/dev-retail-files-failed" AND resource\\.type="${resourceType}"$`,
        ),
        'files failed',
      );
    has(
      /^metric\.type="workflows\.googleapis\.com\/finished_execution_count" AND resource\.type="workflows\.googleapis\.com\/Workflow" AND resource\.labels\.workflow_id="\$\{google_workflows_workflow\.merge-workflow\.name\}"$/,
      'workflow executions',
    );
    has(/workflows\.googleapis\.com\/execution_times/, 'workflow execution time');
    has(
      /workflows_googleapis_com:finished_execution_count\{workflow_id="[^"]+",status="SUCCEEDED"\}/,
      'workflow success rate',
    );
    for (const job of ['connector', 'reconciler']) {
      has(
        new RegExp(
          `^metric\\.type="run\\.googleapis\\.com/job/completed_execution_count" AND resource\\.type="cloud_run_job" AND resource\\.labels\\.job_name="\\$\\{google_cloud_run_v2_job\\.${job}_job_[0-9A-F]{8}\\.name\\}"$`,
        ),
        `${job} job executions`,
      );
      has(
        new RegExp(
          `run_googleapis_com:job_completed_execution_count\\{job_name="\\$\\{google_cloud_run_v2_job\\.${job}_job_[0-9A-F]{8}\\.name\\}",result="succeeded"\\}`,
        ),
        `${job} success rate`,
      );
    }
    has(
      /^metric\.type="logging\.googleapis\.com\/user\/dev-retail-reconciler-items" AND resource\.type="cloud_run_job"$/,
      'reconciler items',
    );
    const groupings = aggregations(d).map((a: Json) => (a.groupByFields ?? []).join(','));
    for (const g of [
      'metric.labels.status',
      'resource.labels.job_name,metric.labels.result',
      'metric.labels.outcome,metric.labels.action',
    ])
      assert.ok(groupings.includes(g), `a chart grouped by ${g}`);
    // Every log-based metric named, as a filter or in PromQL, is one this stack defines.
    const defined = resources(stacks.dev, 'google_logging_metric').map((m: Json) => m.name as string);
    const named = all.flatMap((q) => [
      ...[...q.matchAll(/logging\.googleapis\.com\/user\/([\w-]+)/g)].map((m) => m[1] as string),
      ...[...q.matchAll(/logging_googleapis_com:user_(\w+?)(?:_sum|_count|_bucket)?\{/g)].map(
        (m) => m[1] as string,
      ),
    ]);
    assert.ok(named.length >= 8);
    for (const name of named)
      assert.ok(
        defined.some(
          (m) =>
            m === name ||
            promqlName(`logging.googleapis.com/user/${m}`) === `logging_googleapis_com:user_${name}`,
        ),
        `${name} is a metric of the stack`,
      );
    // Rejects and orphans are rows in BigQuery: said so, with the way to count them.
    const words = widgets(d)
      .map((w: Json) => w.text?.content ?? '')
      .join('\n');
    for (const phrase of [
      'No metric counts them',
      'ods.rejects',
      'dmt.sales_items_orphans',
      '`npx retail-pipeline status --gcp`',
    ])
      assert.ok(words.includes(phrase), phrase);
    assert.ok(!all.some((q) => /reject|orphan/i.test(q)), 'no chart of a metric nothing writes');
    // Tiles inside the 48 columns, none over another.
    const cells = new Set<string>();
    for (const t of d.mosaicLayout.tiles) {
      assert.ok((t.xPos ?? 0) + t.width <= 48);
      for (let x = t.xPos ?? 0; x < (t.xPos ?? 0) + t.width; x++)
        for (let y = t.yPos ?? 0; y < (t.yPos ?? 0) + t.height; y++) {
          assert.ok(!cells.has(`${x},${y}`), `overlap at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
    }
    // What the API leaves out of what it returns, left out here (no perpetual diff).
    const raw = resource.dashboard_json as string;
    assert.doesNotMatch(raw, /"(xPos|yPos)":0\b|"groupByFields":\[\]/);
    for (const i of interpolations(raw)) assert.match(i, TF_REF);
    // Google's own examples of the PromQL name mapping.
    assert.equal(
      promqlName('logging.googleapis.com/log_entry_count'),
      'logging_googleapis_com:log_entry_count',
    );
    assert.equal(
      promqlName('kubernetes.io/container/cpu/limit_cores'),
      'kubernetes_io:container_cpu_limit_cores',
    );
  });

  test('the SQL the dashboard and the runbooks give operators resolves against the warehouse schema (ZetaSQL)', async () => {
    const sql = operatorSql();
    assert.ok(sql.length >= 8, `${sql.length} queries`);
    // The catalog: every table of the schema, as the parity checks build it.
    const tables = schemaCatalog();
    const check = async (query: string) => (await analyze(query.trim().replace(/;$/, ''), tables)).error;
    await startServer();
    try {
      for (const query of sql) assert.equal(await check(query), undefined, query);
      assert.match(
        (await check('SELECT reasons FROM ods.rejects'))?.message ?? '',
        /Unrecognized name: reasons/,
        'the check can fail',
      );
    } finally {
      await stopServer();
    }
  });

  test('the log-based metrics filter and extract fields the loader and the reconciler really log', async () => {
    // What Cloud Logging receives as jsonPayload: the JSON lines of the production logger.
    const lines: string[] = [];
    const logger = new JsonLogger((line) => lines.push(line), { format: 'json', minSeverity: 'DEBUG' });
    await using dir = await tempDir();
    const rt = await openLocalRuntime(dir.path, logger);
    try {
      // Merges cannot start: loads stay unmerged, and the reconciler gets stuck starting them.
      const ports = { ...rt, workflows: { start: () => Promise.reject(new Error('Workflows unavailable')) } };
      const settings = { maxFileBytes: 1024 * 1024 };
      const sale =
        '{"id":1,"datetime":"2025-07-19T10:00:00Z","total_amount":"5","customer_id":"C1","items":[{"product_sku":"P1","quantity":1,"amount":"5"}]}';
      const drop = async (name: string, body: string) => {
        const written = await rt.store.write(name, body);
        return (await ingestObject({ bucket: 'b', name, generation: written.generation }, ports, settings))
          .status;
      };
      assert.equal(await drop('sales/in/good.json', `${sale}\n`), 'loaded');
      assert.equal(await drop('sales/in/bad.json', 'not json\n'), 'failed');
      await rt.store.write(
        'products/in/lost.json',
        '{"product_sku":"P1","description":"d","unit_amount":"1.50"}\n',
      );
      const report = await reconcile(ports, settings, EXCLUSIVE_RECONCILE_SETTINGS);
      assert.ok(report.healed.length > 0 && report.stuck.length > 0);
    } finally {
      rt.close();
    }
    const entries = lines.map((l) => JSON.parse(l));
    const metrics = resources(stacks.dev, 'google_logging_metric').filter((m: Json) =>
      /jsonPayload\.event=/.test(m.filter),
    );
    assert.deepEqual(metrics.map((m: Json) => m.name).sort(), [
      'dev-retail-files-failed',
      'dev-retail-reconciler-items',
      'dev-retail-rows-loaded',
    ]);
    for (const m of metrics) {
      const events = [...m.filter.matchAll(/jsonPayload\.event="([^"]+)"/g)].map((x) => x[1]);
      const fields = [m.value_extractor, ...Object.values(m.label_extractors ?? {})]
        .filter(Boolean)
        .map((e) => /^EXTRACT\(jsonPayload\.(\w+)\)$/.exec(e as string)?.[1]);
      for (const event of events) {
        const logged = entries.filter((e) => e.event === event);
        assert.ok(logged.length > 0, `${m.name}: "${event}" is logged`);
        for (const field of fields) {
          assert.ok(field, `${m.name}: an extractor of a jsonPayload field`);
          for (const e of logged)
            assert.ok(field && e[field] !== undefined, `${m.name}: ${event} logs ${field}`);
        }
        if (m.value_extractor)
          for (const e of logged)
            assert.equal(typeof e[/\.(\w+)\)$/.exec(m.value_extractor)?.[1] ?? ''], 'number');
      }
    }
    const loaded = entries.filter((e) => e.event === 'file.loaded');
    assert.deepEqual(loaded.map((e) => [e.entity, e.rows]).sort(), [
      ['products', 1],
      ['sales', 1],
    ]);
  });
});

describe('IAM: least privilege', () => {
  const IAM_TYPES = [
    'google_project_iam_member',
    'google_storage_bucket_iam_member',
    'google_bigquery_dataset_iam_member',
    'google_bigquery_table_iam_member',
    'google_storage_managed_folder_iam_member',
    'google_pubsub_topic_iam_member',
    'google_pubsub_subscription_iam_member',
    'google_secret_manager_secret_iam_member',
    'google_cloud_run_v2_job_iam_member',
    'google_cloud_run_service_iam_member',
  ];
  const grants = (stack: Json) =>
    IAM_TYPES.flatMap((type) =>
      resources(stack, type).map((g: Json) => {
        const scope = ref(
          String(
            g.table_id ??
              g.managed_folder ??
              g.dataset_id ??
              g.bucket ??
              g.topic ??
              g.subscription ??
              g.secret_id ??
              g.name ??
              g.service ??
              '',
          ),
        )
          .replace(/\.service_config\[0\]\.service$/, '')
          .replace(/\.(id|name|dataset_id)$/, '');
        const target =
          type === 'google_project_iam_member'
            ? 'project'
            : `${type.replace(/^google_|_iam_member$/g, '')}:${scope}`;
        return {
          member: ref(String(g.member).replace(/^serviceAccount:/, '')),
          role: g.role as string,
          target,
        };
      }),
    );

  test('no primitive role and no public member anywhere', () => {
    for (const stack of Object.values(stacks)) {
      for (const g of grants(stack)) {
        assert.ok(
          !['roles/owner', 'roles/editor', 'roles/viewer'].includes(g.role),
          `${g.member}: ${g.role}`,
        );
        assert.ok(!/allUsers|allAuthenticatedUsers/.test(g.member), g.member);
      }
    }
  });

  test('each principal holds exactly the roles it needs, on the narrowest resource (a broader grant fails here)', () => {
    const sa = (name: string) => `google_service_account.sa-${name}.email`;
    const dataset = (name: string) => `bigquery_dataset:google_bigquery_dataset.warehouse_dataset-${name}`;
    const bucket = 'storage_bucket:google_storage_bucket.bucket';
    const topic = 'pubsub_topic:google_pubsub_topic.events_topic';
    const table = (name: string) =>
      `bigquery_table:google_bigquery_table.warehouse_table-${name.replace('.', '-')}.table_id`;
    const folder = (entity: string) =>
      `storage_managed_folder:google_storage_managed_folder.in-folder-${entity}`;
    const work = 'storage_bucket:google_storage_bucket.work_bucket';
    const expected = [
      [sa('connector'), 'roles/storage.objectUser', work],
      [sa('connector'), 'roles/storage.objectViewer', bucket],
      ...ENTITIES.map((e) => [sa('connector'), 'roles/storage.objectCreator', folder(e)]),
      [sa('connector'), 'roles/bigquery.dataViewer', table('ops.loads')],
      [sa('connector'), 'roles/bigquery.dataEditor', table('ops.connector_runs')],
      [sa('connector'), 'roles/bigquery.jobUser', 'project'],
      [sa('connector'), 'roles/pubsub.publisher', topic],
      [
        sa('connector'),
        'roles/secretmanager.secretAccessor',
        'secret_manager_secret:google_secret_manager_secret.api-key',
      ],
      [sa('loader'), 'roles/storage.objectUser', bucket],
      ...ENTITIES.map((e) => [sa('loader'), 'roles/bigquery.dataEditor', table(`raw.${e}`)]),
      [sa('loader'), 'roles/bigquery.dataEditor', table('ops.loads')],
      [sa('loader'), 'roles/bigquery.dataEditor', table('ops.files')],
      [sa('loader'), 'roles/bigquery.dataEditor', table('ops.schema_fields')],
      [sa('loader'), 'roles/bigquery.jobUser', 'project'],
      [sa('loader'), 'roles/pubsub.publisher', topic],
      [sa('loader'), 'roles/workflows.invoker', 'project'],
      [sa('trigger'), 'roles/eventarc.eventReceiver', 'project'],
      [
        sa('trigger'),
        'roles/run.invoker',
        'cloud_run_service:google_cloudfunctions2_function.loader_function',
      ],
      [
        sa('scheduler'),
        'roles/run.jobsExecutorWithOverrides',
        'cloud_run_v2_job:google_cloud_run_v2_job.connector_job',
      ],
      [sa('reconciler'), 'roles/storage.objectUser', bucket],
      ...ENTITIES.map((e) => [sa('reconciler'), 'roles/bigquery.dataEditor', table(`raw.${e}`)]),
      [sa('reconciler'), 'roles/bigquery.dataEditor', table('ops.loads')],
      [sa('reconciler'), 'roles/bigquery.dataEditor', table('ops.files')],
      [sa('reconciler'), 'roles/bigquery.dataEditor', table('ops.schema_fields')],
      [sa('reconciler'), 'roles/bigquery.dataViewer', table('ops.mart_queue')],
      [sa('reconciler'), 'roles/bigquery.jobUser', 'project'],
      [sa('reconciler'), 'roles/pubsub.publisher', topic],
      [sa('reconciler'), 'roles/workflows.invoker', 'project'],
      [sa('scheduler'), 'roles/run.invoker', 'cloud_run_v2_job:google_cloud_run_v2_job.reconciler_job'],
      [sa('workflow'), 'roles/bigquery.dataViewer', dataset('raw')],
      [sa('workflow'), 'roles/bigquery.dataEditor', dataset('ods')],
      [sa('workflow'), 'roles/bigquery.dataEditor', dataset('dmt')],
      [sa('workflow'), 'roles/bigquery.dataEditor', table('ops.loads')],
      [sa('workflow'), 'roles/bigquery.dataEditor', table('ops.merges')],
      [sa('workflow'), 'roles/bigquery.dataEditor', table('ops.mart_queue')],
      [sa('workflow'), 'roles/bigquery.jobUser', 'project'],
      [sa('workflow'), 'roles/pubsub.publisher', topic],
      [
        'data.google_storage_project_service_account.gcs-agent.email_address',
        'roles/pubsub.publisher',
        'project',
      ],
      ['group:${var.analysts_group}', 'roles/bigquery.dataViewer', dataset('dmt')],
      // the list-price view reads the product history with the analyst's rights
      ['group:${var.analysts_group}', 'roles/bigquery.dataViewer', table('ods.products_history')],
      ['group:${var.analysts_group}', 'roles/bigquery.jobUser', 'project'],
    ];
    assert.ok(
      !grants(stacks.dev).some((g) => g.role === 'roles/logging.logWriter'),
      'Cloud Run and functions write their logs without it',
    );
    const actual = grants(stacks.dev)
      .filter((g) => !g.member.includes('gcp-sa-pubsub')) // the Pub/Sub agent's dead-letter grants, checked below
      .map((g) => [g.member, g.role, g.target]);
    const key = (x: string[]) => x.join(' | ');
    assert.deepEqual(actual.map(key).sort(), expected.map(key).sort());
    const pubsubAgent = grants(stacks.dev)
      .filter((g) => g.member.includes('gcp-sa-pubsub'))
      .map((g) => [g.role, g.target]);
    assert.deepEqual(
      pubsubAgent.map(key).sort(),
      [
        ['roles/pubsub.publisher', 'pubsub_topic:google_pubsub_topic.events_dead-letter'],
        ['roles/pubsub.subscriber', 'pubsub_subscription:google_pubsub_subscription.events_subscription'],
      ]
        .map(key)
        .sort(),
    );
  });
});
