import { type IResolvable, TerraformVariable } from 'cdktf';
import type { Construct } from 'constructs';

/**
 * Everything that differs between deployments, as Terraform variables (set per stack in a
 * .tfvars file or TF_VAR_*): nothing about a project, region or name is hard-coded. Per
 * environment, only the prefix and a few safety defaults (deletion protection) differ.
 */
export interface EnvironmentProps {
  /** dev, prod ... : part of every resource name. */
  readonly environment: string;
  /** Protect datasets, tables and the bucket from `cdktf destroy` (prod). */
  readonly deletionProtection: boolean;
}

export interface PipelineSettings {
  readonly projectId: string;
  readonly region: string;
  readonly bigqueryLocation: string;
  readonly connectorImage: string;
  readonly retailApiUrl: string;
  readonly analystsGroup: string;
  readonly notificationChannels: string[];
  readonly alertEmails: string[];
  readonly archiveColdAfterDays: number;
  readonly archiveDeleteAfterDays: number;
  readonly functionSourceBucketSuffix: string;
  readonly buildServiceAccount: string;
  readonly apiKeyReady: IResolvable;
}

export function pipelineVariables(scope: Construct): PipelineSettings {
  const variable = (name: string, description: string, extra: Record<string, unknown> = {}) =>
    new TerraformVariable(scope, name, { description, ...extra });
  return {
    projectId: variable('project_id', 'Google Cloud project id').stringValue,
    region: variable('region', 'Region of Cloud Run, Functions, Workflows, Scheduler (e.g. europe-west1)')
      .stringValue,
    bigqueryLocation: variable('bigquery_location', 'Location of the BigQuery datasets (EU, US, or a region)')
      .stringValue,
    connectorImage: variable(
      'connector_image',
      'Connector image, e.g. europe-west1-docker.pkg.dev/P/retail-pipeline/connector:v1',
    ).stringValue,
    retailApiUrl: variable('retail_api_url', 'Base URL of the Retail API').stringValue,
    analystsGroup: variable('analysts_group', 'Google group (e-mail) given read access to the dmt dataset')
      .stringValue,
    notificationChannels: variable(
      'notification_channels',
      'Cloud Monitoring notification channel ids for the alerts',
      {
        type: 'list(string)',
        default: [],
      },
    ).listValue,
    // One e-mail notification channel per address (infra/constructs/alerting.ts). No backslash in
    // the pattern: a quoted Terraform string knows only the escapes \n \r \t \" \\ \uNNNN \UNNNNNNNN
    // (https://developer.hashicorp.com/terraform/language/expressions/strings#escape-sequences),
    // so "\." is refused before the regex sees it; "[.]" says the same.
    alertEmails: variable(
      'alert_emails',
      'E-mail addresses that receive every alert: one Cloud Monitoring e-mail notification channel each',
      {
        type: 'list(string)',
        default: [],
        validation: [
          {
            condition:
              '${alltrue([for address in var.alert_emails : can(regex("^[^@ ]+@[^@ ]+[.][^@ .]+$", address))])}',
            errorMessage: 'alert_emails must be e-mail addresses (NAME@DOMAIN), e.g. ["oncall@example.com"].',
          },
        ],
      },
    ).listValue,
    archiveColdAfterDays: variable(
      'archive_coldline_after_days',
      'Days before archived files move to Coldline',
      {
        type: 'number',
        default: 30,
      },
    ).numberValue,
    archiveDeleteAfterDays: variable('archive_delete_after_days', 'Days before archived files are deleted', {
      type: 'number',
      default: 365,
    }).numberValue,
    buildServiceAccount: variable(
      'build_service_account',
      'E-mail of the build service account (infra/bootstrap.sh creates it): builds the loader and the connector image',
      {
        validation: [
          {
            condition:
              '${can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+[.]iam[.]gserviceaccount[.]com$", var.build_service_account))}',
            errorMessage:
              'build_service_account must be a service account e-mail (NAME@PROJECT.iam.gserviceaccount.com).',
          },
        ],
      },
    ).stringValue,
    apiKeyReady: variable(
      'api_key_ready',
      'Set to true once the API key secret has a version: until then the schedules are created paused',
      { type: 'bool', default: false },
    ).booleanValue,
    functionSourceBucketSuffix: variable(
      'function_source_bucket_suffix',
      'Suffix of the bucket holding function source archives',
      {
        default: 'retail-pipeline-sources',
      },
    ).stringValue,
  };
}
