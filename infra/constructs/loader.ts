import { CloudRunServiceIamMember } from '@cdktf/provider-google/lib/cloud-run-service-iam-member/index.js';
import { Cloudfunctions2Function } from '@cdktf/provider-google/lib/cloudfunctions2-function/index.js';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket/index.js';
import { StorageBucketObject } from '@cdktf/provider-google/lib/storage-bucket-object/index.js';
import { AssetType, TerraformAsset } from 'cdktf';
import { Construct } from 'constructs';

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
}

/**
 * The loader Cloud Function (gen2): its source archive uploaded to a source bucket, an Eventarc
 * trigger on object finalize in the pipeline bucket with RETRY_POLICY_RETRY, its own runtime
 * service account, and the trigger's right to invoke it.
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
      buildConfig: {
        runtime: 'nodejs20',
        entryPoint: 'onObjectFinalized',
        source: { storageSource: { bucket: sources.name, object: archive.name } },
      },
      serviceConfig: {
        serviceAccountEmail: props.serviceAccount,
        availableMemory: '1Gi',
        timeoutSeconds: 540,
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
