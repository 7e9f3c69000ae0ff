import { CloudRunServiceIamMember } from '@cdktf/provider-google/lib/cloud-run-service-iam-member/index.js';
import { Cloudfunctions2Function } from '@cdktf/provider-google/lib/cloudfunctions2-function/index.js';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket/index.js';
import { StorageBucketObject } from '@cdktf/provider-google/lib/storage-bucket-object/index.js';
import { AssetType, type ITerraformDependable, TerraformAsset } from 'cdktf';
import { Construct } from 'constructs';
import { LOADER_MEMORY, LOADER_TIMEOUT_SECONDS } from '../../functions/core/loader-limits.js';

export interface LoaderProps {
  readonly prefix: string;
  readonly region: string;
  readonly sourceBucketName: string;
  readonly sourceDir: string;
  readonly bucketName: string;
  readonly serviceAccount: string;
  readonly triggerServiceAccount: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly forceDestroy: boolean;
  /** `projects/P/serviceAccounts/EMAIL` of the account Cloud Build builds the function with. */
  readonly buildServiceAccount: string;
  /** What must exist (and have propagated) before the trigger is created. */
  readonly triggerDependsOn: ITerraformDependable[];
}

/**
 * The loader Cloud Function (gen2): its source archive uploaded to a source bucket, an Eventarc
 * trigger on object finalize in the pipeline bucket with RETRY_POLICY_RETRY, its own runtime
 * service account, and the trigger's right to invoke it. The trigger lives in the bucket's
 * region ("the trigger must also be located in" the bucket's region:
 * https://cloud.google.com/eventarc/docs/understand-locations). Internal-only ingress still
 * receives Eventarc's deliveries (event triggers count as internal:
 * https://cloud.google.com/functions/docs/networking/network-settings).
 */
export class Loader extends Construct {
  readonly function: Cloudfunctions2Function;

  constructor(scope: Construct, id: string, props: LoaderProps) {
    super(scope, id);
    const sources = new StorageBucket(this, 'sources', {
      name: props.sourceBucketName,
      location: props.region,
      uniformBucketLevelAccess: true,
      publicAccessPrevention: 'enforced',
      forceDestroy: props.forceDestroy,
      lifecycleRule: [{ action: { type: 'Delete' }, condition: { age: 30, withState: 'ARCHIVED' } }],
    });
    const asset = new TerraformAsset(this, 'source', { path: props.sourceDir, type: AssetType.ARCHIVE });
    const archive = new StorageBucketObject(this, 'archive', {
      bucket: sources.name,
      name: `loader-${asset.assetHash}.zip`,
      source: asset.path,
    });
    this.function = new Cloudfunctions2Function(this, 'function', {
      name: `${props.prefix}-loader`,
      location: props.region,
      description: 'Loads each file landing in {entity}/in/ into raw, settles it, starts the merge.',
      dependsOn: props.triggerDependsOn,
      buildConfig: {
        // nodejs20 was decommissioned on 2026-10-30 (no function can be created or updated
        // with it); nodejs24 is supported until 2028-10-31.
        // https://cloud.google.com/functions/docs/runtime-support
        runtime: 'nodejs24',
        // Since mid-2024 new projects no longer give the default build account what a function
        // build needs; a dedicated build account with roles/run.builder does.
        // https://cloud.google.com/functions/docs/securing/build-custom-sa
        serviceAccount: props.buildServiceAccount,
        entryPoint: 'onObjectFinalized',
        source: { storageSource: { bucket: sources.name, object: archive.name } },
      },
      serviceConfig: {
        serviceAccountEmail: props.serviceAccount,
        // Streaming: memory does not grow with the file (see loader-limits.ts).
        availableMemory: LOADER_MEMORY,
        timeoutSeconds: LOADER_TIMEOUT_SECONDS,
        maxInstanceCount: 20,
        ingressSettings: 'ALLOW_INTERNAL_ONLY',
        environmentVariables: { ...props.environment },
      },
      eventTrigger: {
        triggerRegion: props.region,
        eventType: 'google.cloud.storage.object.v1.finalized',
        retryPolicy: 'RETRY_POLICY_RETRY',
        serviceAccountEmail: props.triggerServiceAccount,
        eventFilters: [{ attribute: 'bucket', value: props.bucketName }],
      },
    });
    new CloudRunServiceIamMember(this, 'trigger-invokes', {
      location: props.region,
      service: this.function.serviceConfig.service,
      role: 'roles/run.invoker',
      member: `serviceAccount:${props.triggerServiceAccount}`,
    });
  }
}
