import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { workflowProblems } from '../../functions/adapters/local/local-workflow-runner.js';
import { parseCli } from '../../functions/core/config.js';
import { ENTITIES } from '../../functions/core/entities.js';
import { LOADER_MEMORY } from '../../functions/core/loader-limits.js';
import { ALL_TABLES, bigQuerySchema, VIEWS } from '../../functions/core/schema.js';
import { splitStatements } from '../../functions/core/sql-script.js';
import { runOverrides } from '../../infra/constructs/connector.js';
import { FUNCTION_NODE_MAJOR, prepareFunctionSource } from '../../infra/function-source.js';
import { buildApp, ENVIRONMENTS, STATE_BUCKET_ENV, stateBucketFrom } from '../../infra/main.js';
import { REQUIRED_APIS } from '../../infra/stack.js';

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
  buildApp({ outdir, stateBucket: 'example-tfstate' }).synth();
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
        'build_service_account',
        'api_key_ready',
      ]) {
        assert.ok(stack.variable[name], `variable ${name}`);
        const defaults: Record<string, unknown> = { notification_channels: [], api_key_ready: false };
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
      ['node', 'dist/functions/entrypoints/cli.js', 'reconcile', '--gcp', '--log-format', 'json'],
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
    const filters = policies.map((p: Json) => p.conditions[0].condition_threshold.filter).join('\n');
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
    assert.ok(policies.every((p: Json) => p.notification_channels === '${var.notification_channels}'));
    const failedMetric = resources(stacks.dev, 'google_logging_metric').find(
      (m: Json) => m.name === 'dev-retail-files-failed',
    );
    assert.match(failedMetric.filter, /jsonPayload\.event="file\.failed"/);
    // A new log-based metric can take up to 10 minutes before a policy may name it.
    const wait = Object.entries(stacks.dev.resource.time_sleep).find(([name]) =>
      name.startsWith('alerting_metrics-settle'),
    )?.[1] as Json;
    assert.equal(wait.create_duration, '600s');
    assert.equal(wait.depends_on.filter((d: string) => d.startsWith('google_logging_metric.')).length, 3);
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
