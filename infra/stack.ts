import { BigqueryDatasetIamMember } from '@cdktf/provider-google/lib/bigquery-dataset-iam-member/index.js';
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
import { WorkflowsWorkflow } from '@cdktf/provider-google/lib/workflows-workflow/index.js';
import { TerraformOutput, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { Dataset } from '../functions/core/schema.js';
import { type EnvironmentProps, pipelineVariables } from './config.js';
import { Alerting } from './constructs/alerting.js';
import { Connector } from './constructs/connector.js';
import { PipelineEvents } from './constructs/events.js';
import { Loader } from './constructs/loader.js';
import { PipelineBucket } from './constructs/storage.js';
import { Warehouse } from './constructs/warehouse.js';
import { mergeWorkflowSource } from './workflow-source.js';

export const REQUIRED_APIS = [
  'bigquery.googleapis.com',
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
    new GoogleProvider(this, 'google', { project: v.projectId, region: v.region });
    const apis = REQUIRED_APIS.map(
      (api) =>
        new ProjectService(this, `api-${api.split('.')[0]}`, { service: api, disableOnDestroy: false }),
    );
    const project = new DataGoogleProject(this, 'project', { projectId: v.projectId });
    const gcsAgent = new DataGoogleStorageProjectServiceAccount(this, 'gcs-agent', { dependsOn: apis });

    const account = (name: string, purpose: string) =>
      new ServiceAccount(this, `sa-${name}`, {
        accountId: `${props.environment}-retail-${name}`,
        displayName: `retail-pipeline ${props.environment}: ${purpose}`,
        dependsOn: apis,
      });
    const sa = {
      connector: account('connector', 'the connector (Cloud Run Job)'),
      scheduler: account('scheduler', 'Cloud Scheduler starting the connector'),
      loader: account('loader', 'the loader (Cloud Function)'),
      trigger: account('trigger', 'the Eventarc trigger of the loader'),
      workflow: account('workflow', 'the merge workflow'),
    };
    const member = (a: ServiceAccount) => `serviceAccount:${a.email}`;

    const bucket = new PipelineBucket(this, 'bucket', {
      name: `${v.projectId}-${props.environment}-retail-pipeline`,
      location: v.region,
      coldAfterDays: v.archiveColdAfterDays,
      deleteAfterDays: v.archiveDeleteAfterDays,
      forceDestroy: !props.deletionProtection,
    }).bucket;
    const warehouse = new Warehouse(this, 'warehouse', {
      location: v.bigqueryLocation,
      deletionProtection: props.deletionProtection,
    });
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
      environment: { ...runtime, RETAIL_API_URL: v.retailApiUrl },
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
      forceDestroy: !props.deletionProtection,
    });

    // ---- who may do what (README, "Service accounts and roles") -------------------------------
    const grants: [string, () => void][] = [];
    const projectRole = (name: string, role: string, who: string) =>
      grants.push([
        name,
        () => new ProjectIamMember(this, name, { project: v.projectId, role, member: who }),
      ]);
    const bucketRole = (name: string, role: string, who: string) =>
      grants.push([
        name,
        () => new StorageBucketIamMember(this, name, { bucket: bucket.name, role, member: who }),
      ]);
    const datasetRole = (name: string, dataset: Dataset, role: string, who: string) =>
      grants.push([
        name,
        () =>
          new BigqueryDatasetIamMember(this, name, {
            datasetId: warehouse.datasets[dataset].datasetId,
            role,
            member: who,
          }),
      ]);
    const topicRole = (name: string, who: string) =>
      grants.push([
        name,
        () =>
          new PubsubTopicIamMember(this, name, {
            topic: events.topic.id,
            role: 'roles/pubsub.publisher',
            member: who,
          }),
      ]);

    // The connector: its files and staging in the bucket, the sales watermark and its run log in
    // ops, its events, and the API key (the only reader of the secret).
    bucketRole('connector-objects', 'roles/storage.objectUser', member(sa.connector));
    datasetRole('connector-ops', 'ops', 'roles/bigquery.dataEditor', member(sa.connector));
    projectRole('connector-jobs', 'roles/bigquery.jobUser', member(sa.connector));
    topicRole('connector-events', member(sa.connector));
    projectRole('connector-logs', 'roles/logging.logWriter', member(sa.connector));
    grants.push([
      'connector-secret',
      () =>
        new SecretManagerSecretIamMember(this, 'connector-secret', {
          secretId: secret.id,
          role: 'roles/secretmanager.secretAccessor',
          member: member(sa.connector),
        }),
    ]);
    // The loader: claims and settles files, load jobs into raw, the ledger in ops, events, and
    // starting the merge workflow.
    bucketRole('loader-objects', 'roles/storage.objectUser', member(sa.loader));
    datasetRole('loader-raw', 'raw', 'roles/bigquery.dataEditor', member(sa.loader));
    datasetRole('loader-ops', 'ops', 'roles/bigquery.dataEditor', member(sa.loader));
    projectRole('loader-jobs', 'roles/bigquery.jobUser', member(sa.loader));
    topicRole('loader-events', member(sa.loader));
    projectRole('loader-workflows', 'roles/workflows.invoker', member(sa.loader));
    projectRole('loader-logs', 'roles/logging.logWriter', member(sa.loader));
    // The Eventarc trigger receives events (its right to invoke the function is in Loader).
    projectRole('trigger-receiver', 'roles/eventarc.eventReceiver', member(sa.trigger));
    // The merge workflow: reads raw, writes ods, dmt, ops; publishes its outcome.
    datasetRole('workflow-raw', 'raw', 'roles/bigquery.dataViewer', member(sa.workflow));
    datasetRole('workflow-ods', 'ods', 'roles/bigquery.dataEditor', member(sa.workflow));
    datasetRole('workflow-dmt', 'dmt', 'roles/bigquery.dataEditor', member(sa.workflow));
    datasetRole('workflow-ops', 'ops', 'roles/bigquery.dataEditor', member(sa.workflow));
    projectRole('workflow-jobs', 'roles/bigquery.jobUser', member(sa.workflow));
    topicRole('workflow-events', member(sa.workflow));
    projectRole('workflow-logs', 'roles/logging.logWriter', member(sa.workflow));
    // Cloud Storage's service agent publishes the bucket's events for Eventarc.
    projectRole('gcs-agent-publisher', 'roles/pubsub.publisher', `serviceAccount:${gcsAgent.emailAddress}`);
    // Analysts: read the mart, run their queries.
    datasetRole('analysts-dmt', 'dmt', 'roles/bigquery.dataViewer', `group:${v.analystsGroup}`);
    projectRole('analysts-jobs', 'roles/bigquery.jobUser', `group:${v.analystsGroup}`);
    for (const [, create] of grants) create();

    new Alerting(this, 'alerting', {
      prefix,
      loaderService: `${prefix}-loader`,
      connectorJob: connector.job.name,
      workflow: workflow.name,
      notificationChannels: v.notificationChannels,
    });

    new TerraformOutput(this, 'bucket_name', { value: bucket.name });
    new TerraformOutput(this, 'api_key_secret', { value: secret.secretId });
    new TerraformOutput(this, 'connector_job', { value: connector.job.name });
    new TerraformOutput(this, 'loader_function', { value: loader.function.name });
    new TerraformOutput(this, 'merge_workflow', { value: workflowPath });
    new TerraformOutput(this, 'events_topic', { value: events.topic.name });
    new TerraformOutput(this, 'events_subscription', { value: events.subscription.name });
  }
}
