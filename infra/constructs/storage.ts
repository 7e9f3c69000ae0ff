import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket/index.js';
import { Construct } from 'constructs';
import { ENTITIES } from '../../functions/core/entities.js';

export interface PipelineBucketProps {
  readonly name: string;
  readonly location: string;
  readonly coldAfterDays: number;
  readonly deleteAfterDays: number;
  readonly forceDestroy: boolean;
}

/**
 * The pipeline bucket: uniform access, public access prevention enforced. Lifecycle rules touch
 * `{entity}/archive/` only (colder class, then deletion); nothing ever ages `in/`, `failed/`,
 * `processing/` or the connector's `staging/`.
 */
export class PipelineBucket extends Construct {
  readonly bucket: StorageBucket;

  constructor(scope: Construct, id: string, props: PipelineBucketProps) {
    super(scope, id);
    const archive = ENTITIES.map((e) => `${e}/archive/`);
    this.bucket = new StorageBucket(this, 'bucket', {
      name: props.name,
      location: props.location,
      uniformBucketLevelAccess: true,
      publicAccessPrevention: 'enforced',
      forceDestroy: props.forceDestroy,
      lifecycleRule: [
        {
          action: { type: 'SetStorageClass', storageClass: 'COLDLINE' },
          condition: { age: props.coldAfterDays, matchesPrefix: archive },
        },
        { action: { type: 'Delete' }, condition: { age: props.deleteAfterDays, matchesPrefix: archive } },
      ],
    });
  }
}
