import type { BigqueryDataset } from '@cdktf/provider-google/lib/bigquery-dataset/index.js';
import { BigqueryDatasetIamMember } from '@cdktf/provider-google/lib/bigquery-dataset-iam-member/index.js';
import { BigqueryTableIamMember } from '@cdktf/provider-google/lib/bigquery-table-iam-member/index.js';
import { DataGoogleProject } from '@cdktf/provider-google/lib/data-google-project/index.js';
import { DataGoogleStorageProjectServiceAccount } from '@cdktf/provider-google/lib/data-google-storage-project-service-account/index.js';
import { ProjectIamMember } from '@cdktf/provider-google/lib/project-iam-member/index.js';
import { ProjectService } from '@cdktf/provider-google/lib/project-service/index.js';
import { GoogleProvider } from '@cdktf/provider-google/lib/provider/index.js';
import { PubsubTopicIamMember } from '@cdktf/provider-google/lib/pubsub-topic-iam-member/index.js';
import { SecretManagerSecret } from '@cdktf/provider-google/lib/secret-manager-secret/index.js';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member/index.js';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account/index.js';
import { StorageBucketIamMember } from '@cdktf/provider-google/lib/storage-bucket-iam-member/index.js';
import { StorageManagedFolder } from '@cdktf/provider-google/lib/storage-managed-folder/index.js';
import { StorageManagedFolderIamMember } from '@cdktf/provider-google/lib/storage-managed-folder-iam-member/index.js';
import { WorkflowsWorkflow } from '@cdktf/provider-google/lib/workflows-workflow/index.js';
import { TimeProvider } from '@cdktf/provider-time/lib/provider/index.js';
import { Sleep } from '@cdktf/provider-time/lib/sleep/index.js';
import {
  Aspects,
  dependable,
  GcsBackend,
  type IAspect,
  Op,
  TerraformDataSource,
  TerraformOutput,
  TerraformResource,
  TerraformStack,
} from 'cdktf';
import type { Construct, IConstruct } from 'constructs';
import { ENTITIES } from '../functions/core/entities.js';
import type { Dataset } from '../functions/core/schema.js';
import { type EnvironmentProps, pipelineVariables } from './config.js';
import { Alerting } from './constructs/alerting.js';
import { Connector } from './constructs/connector.js';
import { PipelineDashboard } from './constructs/dashboard.js';
import { PipelineEvents } from './constructs/events.js';
import { Loader } from './constructs/loader.js';
import { Reconciler } from './constructs/reconciler.js';
import { PipelineBucket, WorkBucket } from './constructs/storage.js';
import { Warehouse } from './constructs/warehouse.js';
import { mergeWorkflowSource } from './workflow-source.js';

export const REQUIRED_APIS = [
  'bigquery.googleapis.com',
  'cloudresourcemanager.googleapis.com',
  'cloudbuild.googleapis.com',
  'cloudfunctions.googleapis.com',
  'cloudscheduler.googleapis.com',
  'eventarc.googleapis.com',
  'iam.googleapis.com',
  'logging.googleapis.com',
  'monitoring.googleapis.com',
  'pubsub.googleapis.com',
  'run.googleapis.com',
  'secretmanager.googleapis.com',
  'storage.googleapis.com',
  'workflowexecutions.googleapis.com',
  'workflows.googleapis.com',
  'artifactregistry.googleapis.com',
] as const;

export interface PipelineStackProps extends EnvironmentProps {
  /** The loader's source folder (see function-source.ts). */
  readonly functionSourceDir: string;
  /** The GCS bucket holding Terraform state; this stack's lives under `retail-pipeline/<env>`. */
  readonly stateBucket: string;
}

/**
 * Makes every resource wait for `first` (unless it is one of `first` or `except`): a way to say
 * "nothing before the APIs are usable and the project is claimed" once, not on each resource.
 */
class DependsOnFirst implements IAspect {
  constructor(
    private readonly first: TerraformResource[],
    private readonly except: (node: IConstruct) => boolean,
  ) {}
  visit(node: IConstruct): void {
    if (!(node instanceof TerraformResource || node instanceof TerraformDataSource)) return;
    if (this.first.includes(node as TerraformResource) || this.except(node)) return;
    const wanted = this.first.map((r) => dependable(r));
    node.dependsOn = [...new Set([...(node.dependsOn ?? []), ...wanted])];
  }
}

/**
 * One environment of the pipeline: every resource, each component with its own service account
 * holding only the predefined roles it needs, on the narrowest resource that carries them.
 */
export class PipelineStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id);
    const v = pipelineVariables(this);
    const prefix = `${props.environment}-retail`;
    // State in GCS (locking included), never in the working copy; a backend cannot take
    // variables, so the bucket is read at synth time.
    // https://developer.hashicorp.com/terraform/language/backend/gcs
    new GcsBackend(this, { bucket: props.stateBucket, prefix: `retail-pipeline/${props.environment}` });
    new GoogleProvider(this, 'google', { project: v.projectId, region: v.region });
    new TimeProvider(this, 'time');
    const apis = REQUIRED_APIS.map(
      (api) =>
        new ProjectService(this, `api-${api.split('.')[0]}`, { service: api, disableOnDestroy: false }),
    );
    // "Service activation is not guaranteed by the time the google_project_service resource is
    // done provisioning" (provider guide, google_project_service): wait before using them.
    const apisReady = new Sleep(this, 'apis-ready', { createDuration: '60s', dependsOn: apis });
    const project = new DataGoogleProject(this, 'project', { projectId: v.projectId });
    // Reading the Cloud Storage service agent makes Google create it if it does not exist yet.
    const gcsAgent = new DataGoogleStorageProjectServiceAccount(this, 'gcs-agent', {});

    const account = (name: string, purpose: string) =>
      new ServiceAccount(this, `sa-${name}`, {
        accountId: `${props.environment}-retail-${name}`,
        displayName: `retail-pipeline ${props.environment}: ${purpose}`,
        dependsOn: apis,
      });
    const sa = {
      connector: account('connector', 'the connector (Cloud Run Job)'),
      scheduler: account('scheduler', 'Cloud Scheduler starting the connector and the reconciler'),
      loader: account('loader', 'the loader (Cloud Function)'),
      trigger: account('trigger', 'the Eventarc trigger of the loader'),
      workflow: account('workflow', 'the merge workflow'),
      reconciler: account('reconciler', 'the reconciler (Cloud Run Job)'),
    };
    const member = (a: ServiceAccount) => `serviceAccount:${a.email}`;

    const forceDestroy = !props.deletionProtection;
    const bucket = new PipelineBucket(this, 'bucket', {
      name: `${v.projectId}-${props.environment}-retail-pipeline`,
      location: v.region,
      coldAfterDays: v.archiveColdAfterDays,
      deleteAfterDays: v.archiveDeleteAfterDays,
      forceDestroy,
    }).bucket;
    const workBucket = new WorkBucket(this, 'work', {
      name: `${v.projectId}-${props.environment}-retail-pipeline-work`,
      location: v.region,
      forceDestroy: true,
    }).bucket;
    const warehouse = new Warehouse(this, 'warehouse', {
      location: v.bigqueryLocation,
      deletionProtection: props.deletionProtection,
      environment: props.environment,
    });
    // One project per environment. The datasets' names are the project's (raw, ods, dmt, ops):
    // a second environment applied to the same project fails creating them (409), and since
    // everything else waits for them, it fails before creating anything the first one shares.
    const claim: BigqueryDataset[] = Object.values(warehouse.datasets);
    for (const dataset of claim) dataset.dependsOn = [dependable(apisReady)];
    const events = new PipelineEvents(this, 'events', {
      prefix,
      pubsubServiceAgent: `service-${project.number}@gcp-sa-pubsub.iam.gserviceaccount.com`,
    });
    const secret = new SecretManagerSecret(this, 'api-key', {
      secretId: `${prefix}-api-key`,
      replication: { auto: {} },
      dependsOn: apis,
    });

    const workflow = new WorkflowsWorkflow(this, 'merge-workflow', {
      name: `${prefix}-merge`,
      region: v.region,
      description: 'Merges raw into ods and the mart after each loaded file (workflows/merge.yaml).',
      serviceAccount: sa.workflow.id,
      sourceContents: mergeWorkflowSource(),
      userEnvVars: { BIGQUERY_LOCATION: v.bigqueryLocation, EVENTS_TOPIC: events.topic.name },
      deletionProtection: false,
      dependsOn: apis,
    });
    const workflowPath = `projects/${v.projectId}/locations/${v.region}/workflows/${workflow.name}`;

    // ---- who may do what (README, "Service accounts and roles") -------------------------------
    // Each account holds predefined roles on the narrowest resource that carries them: tables
    // rather than datasets, managed folders rather than buckets where the documentation allows.
    // No runtime account gets roles/logging.logWriter: Cloud Run and Cloud Run functions send
    // what a container writes to stdout/stderr to Cloud Logging themselves
    // (https://cloud.google.com/run/docs/logging), and the workflow uses neither sys.log nor
    // call logging.
    const grant = {
      project: (name: string, role: string, who: string) =>
        new ProjectIamMember(this, name, { project: v.projectId, role, member: who }),
      bucket: (name: string, target: { name: string }, role: string, who: string) =>
        new StorageBucketIamMember(this, name, { bucket: target.name, role, member: who }),
      dataset: (name: string, dataset: Dataset, role: string, who: string) =>
        new BigqueryDatasetIamMember(this, name, {
          datasetId: warehouse.datasets[dataset].datasetId,
          role,
          member: who,
        }),
      // A grant on one table (table-level access control: a role given on a table applies to it
      // alone, https://cloud.google.com/bigquery/docs/control-access-to-resources-iam).
      table: (name: string, table: string, role: string, who: string) => {
        const t = warehouse.tables[table];
        if (!t) throw new Error(`no table ${table}`);
        return new BigqueryTableIamMember(this, name, {
          project: v.projectId,
          datasetId: t.datasetId,
          tableId: t.tableId,
          role,
          member: who,
        });
      },
      publisher: (name: string, who: string) =>
        new PubsubTopicIamMember(this, name, {
          topic: events.topic.id,
          role: 'roles/pubsub.publisher',
          member: who,
        }),
    };

    // The connector: its working area (work bucket); in the pipeline bucket it reads (the sales
    // watermark counts files waiting in in/ and processing/) and creates files in {entity}/in/
    // only, through a managed folder per entity ("the access granted in the policy applies to any
    // object within the bucket that uses the managed folder path as a prefix":
    // https://cloud.google.com/storage/docs/managed-folders); it reads the ledger, appends its run
    // log, publishes events and is the only reader of the API key.
    grant.bucket('connector-work', workBucket, 'roles/storage.objectUser', member(sa.connector));
    grant.bucket('connector-objects-read', bucket, 'roles/storage.objectViewer', member(sa.connector));
    for (const entity of ENTITIES) {
      const folder = new StorageManagedFolder(this, `in-folder-${entity}`, {
        bucket: bucket.name,
        name: `${entity}/in/`,
        forceDestroy: true,
      });
      new StorageManagedFolderIamMember(this, `connector-in-${entity}`, {
        bucket: bucket.name,
        managedFolder: folder.name,
        role: 'roles/storage.objectCreator',
        member: member(sa.connector),
      });
    }
    grant.table('connector-loads', 'ops.loads', 'roles/bigquery.dataViewer', member(sa.connector));
    grant.table('connector-runs', 'ops.connector_runs', 'roles/bigquery.dataEditor', member(sa.connector));
    grant.project('connector-jobs', 'roles/bigquery.jobUser', member(sa.connector));
    grant.publisher('connector-events', member(sa.connector));
    const connectorSecret = new SecretManagerSecretIamMember(this, 'connector-secret', {
      secretId: secret.id,
      role: 'roles/secretmanager.secretAccessor',
      member: member(sa.connector),
    });
    // The loader: claims and settles files anywhere in the pipeline bucket; load jobs into the
    // three raw tables and its ledger (ops.loads, ops.files, ops.schema_fields) - no other table;
    // events; starting the merge workflow. The reconciler does what the loader does (it finishes
    // claims and loads arrivals through the loader's own code) and starts merges: the loader's
    // grants on its own account, and it reads the mart queue (keys no merge has carried yet).
    for (const who of ['loader', 'reconciler'] as const) {
      grant.bucket(`${who}-objects`, bucket, 'roles/storage.objectUser', member(sa[who]));
      for (const entity of ENTITIES) {
        grant.table(`${who}-raw-${entity}`, `raw.${entity}`, 'roles/bigquery.dataEditor', member(sa[who]));
      }
      grant.table(`${who}-loads`, 'ops.loads', 'roles/bigquery.dataEditor', member(sa[who]));
      grant.table(`${who}-files`, 'ops.files', 'roles/bigquery.dataEditor', member(sa[who]));
      grant.table(`${who}-fields`, 'ops.schema_fields', 'roles/bigquery.dataEditor', member(sa[who]));
      grant.project(`${who}-jobs`, 'roles/bigquery.jobUser', member(sa[who]));
      grant.publisher(`${who}-events`, member(sa[who]));
      grant.project(`${who}-workflows`, 'roles/workflows.invoker', member(sa[who]));
    }
    grant.table('reconciler-queue', 'ops.mart_queue', 'roles/bigquery.dataViewer', member(sa.reconciler));
    // The Eventarc trigger receives events (its right to invoke the function is in Loader), and
    // Cloud Storage's service agent publishes the bucket's events for direct Cloud Storage
    // triggers (https://cloud.google.com/eventarc/docs/roles-permissions).
    const triggerReceiver = grant.project(
      'trigger-receiver',
      'roles/eventarc.eventReceiver',
      member(sa.trigger),
    );
    const gcsAgentPublisher = grant.project(
      'gcs-agent-publisher',
      'roles/pubsub.publisher',
      `serviceAccount:${gcsAgent.emailAddress}`,
    );
    // The merge workflow: reads raw, writes ods and dmt, marks loads merged, queues and carries
    // the changed keys (ops.mart_queue) and records its steps in ops; publishes its outcome.
    grant.dataset('workflow-raw', 'raw', 'roles/bigquery.dataViewer', member(sa.workflow));
    grant.dataset('workflow-ods', 'ods', 'roles/bigquery.dataEditor', member(sa.workflow));
    grant.dataset('workflow-dmt', 'dmt', 'roles/bigquery.dataEditor', member(sa.workflow));
    grant.table('workflow-loads', 'ops.loads', 'roles/bigquery.dataEditor', member(sa.workflow));
    grant.table('workflow-merges', 'ops.merges', 'roles/bigquery.dataEditor', member(sa.workflow));
    grant.table('workflow-queue', 'ops.mart_queue', 'roles/bigquery.dataEditor', member(sa.workflow));
    grant.project('workflow-jobs', 'roles/bigquery.jobUser', member(sa.workflow));
    grant.publisher('workflow-events', member(sa.workflow));
    // Analysts: read the mart, run their queries.
    grant.dataset('analysts-dmt', 'dmt', 'roles/bigquery.dataViewer', `group:${v.analystsGroup}`);
    // The list-price view (dmt.sales_items_list_price) reads the product history with the
    // analyst's own rights (see Warehouse): read on that one table, the history of prices.
    grant.table(
      'analysts-products-history',
      'ods.products_history',
      'roles/bigquery.dataViewer',
      `group:${v.analystsGroup}`,
    );
    grant.project('analysts-jobs', 'roles/bigquery.jobUser', `group:${v.analystsGroup}`);

    // ---- the runtime --------------------------------------------------------------------------
    const runtime = {
      GOOGLE_CLOUD_PROJECT: v.projectId,
      PIPELINE_BUCKET: bucket.name,
      BIGQUERY_LOCATION: v.bigqueryLocation,
      EVENTS_TOPIC: events.topic.name,
      MERGE_WORKFLOW: workflowPath,
    };
    const connector = new Connector(this, 'connector', {
      prefix,
      projectId: v.projectId,
      region: v.region,
      image: v.connectorImage,
      serviceAccount: sa.connector.email,
      schedulerServiceAccount: sa.scheduler.email,
      apiKeySecretId: secret.secretId,
      environment: { ...runtime, PIPELINE_WORK_BUCKET: workBucket.name, RETAIL_API_URL: v.retailApiUrl },
      schedulesPaused: Op.not(v.apiKeyReady),
      jobDependsOn: [connectorSecret],
    });
    // Grants reach Google's systems in "typically 2 minutes, potentially 7 minutes or longer"
    // (https://cloud.google.com/iam/docs/access-change-propagation), and creating a Cloud Storage
    // trigger before the service agent may publish fails: the trigger waits for both grants, then
    // that long.
    const triggerGrantsSettled = new Sleep(this, 'trigger-grants-settle', {
      createDuration: '120s',
      dependsOn: [triggerReceiver, gcsAgentPublisher],
    });
    const loader = new Loader(this, 'loader', {
      prefix,
      region: v.region,
      sourceBucketName: `${v.projectId}-${props.environment}-${v.functionSourceBucketSuffix}`,
      sourceDir: props.functionSourceDir,
      bucketName: bucket.name,
      serviceAccount: sa.loader.email,
      triggerServiceAccount: sa.trigger.email,
      environment: runtime,
      forceDestroy,
      buildServiceAccount: `projects/${v.projectId}/serviceAccounts/${v.buildServiceAccount}`,
      triggerDependsOn: [triggerGrantsSettled],
    });

    const reconciler = new Reconciler(this, 'reconciler', {
      prefix,
      projectId: v.projectId,
      region: v.region,
      image: v.connectorImage,
      serviceAccount: sa.reconciler.email,
      schedulerServiceAccount: sa.scheduler.email,
      environment: runtime,
    });

    const alerting = new Alerting(this, 'alerting', {
      prefix,
      projectId: v.projectId,
      region: v.region,
      bucketName: bucket.name,
      loaderService: `${prefix}-loader`,
      connectorJob: connector.job.name,
      reconcilerJob: reconciler.job.name,
      workflow: workflow.name,
      apiKeySecret: secret.secretId,
      notificationChannels: v.notificationChannels,
      alertEmails: v.alertEmails,
    });
    new PipelineDashboard(this, 'dashboard', {
      prefix,
      connectorJob: connector.job.name,
      reconcilerJob: reconciler.job.name,
      workflow: workflow.name,
      metrics: alerting.metrics,
      dependsOn: [alerting.metricsSettled],
    });

    // Nothing is created before the APIs are usable; nothing but the APIs and the datasets before
    // the datasets claimed the project for this environment.
    Aspects.of(this).add(
      new DependsOnFirst([apisReady, ...claim], (node) => node instanceof ProjectService || node === project),
    );

    new TerraformOutput(this, 'bucket_name', { value: bucket.name });
    new TerraformOutput(this, 'work_bucket_name', { value: workBucket.name });
    new TerraformOutput(this, 'api_key_secret', { value: secret.secretId });
    new TerraformOutput(this, 'connector_job', { value: connector.job.name });
    new TerraformOutput(this, 'loader_function', { value: loader.function.name });
    new TerraformOutput(this, 'reconciler_job', { value: reconciler.job.name });
    new TerraformOutput(this, 'merge_workflow', { value: workflowPath });
    new TerraformOutput(this, 'events_topic', { value: events.topic.name });
    new TerraformOutput(this, 'events_subscription', { value: events.subscription.name });
  }
}
