import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket/index.js';
import { Construct } from 'constructs';
import { ENTITIES } from '../../functions/core/entities.js';

/** Both buckets: uniform bucket-level access, public access prevention enforced. */
const LOCKED_DOWN = { uniformBucketLevelAccess: true, publicAccessPrevention: 'enforced' } as const;

export interface PipelineBucketProps {
  readonly name: string;
  readonly location: string;
  readonly coldAfterDays: number;
  readonly deleteAfterDays: number;
  readonly forceDestroy: boolean;
}

/**
 * The pipeline bucket: uniform access, public access prevention enforced. Lifecycle rules touch
 * `{entity}/archive/` only (colder class, then deletion); nothing ever ages `in/`, `failed/` or
 * `processing/`. The connector's working area is not here but in the work bucket: a Cloud
 * Storage trigger fires for every object finalized in its bucket, whatever its name.
 */
export class PipelineBucket extends Construct {
  readonly bucket: StorageBucket;

  constructor(scope: Construct, id: string, props: PipelineBucketProps) {
    super(scope, id);
    const archive = ENTITIES.map((e) => `${e}/archive/`);
    this.bucket = new StorageBucket(this, 'bucket', {
      name: props.name,
      location: props.location,
      ...LOCKED_DOWN,
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

export interface WorkBucketProps {
  readonly name: string;
  readonly location: string;
  readonly forceDestroy: boolean;
}

/**
 * The connector's working area (staged pages, cursors, compose parts, leases), in a bucket no
 * trigger watches: writing it never invokes the loader. Same region as the pipeline bucket, so
 * publishing a file into `in/` is a same-region rewrite. No lifecycle rule: an unfinished run's
 * pages are what its resumption needs.
 */
export class WorkBucket extends Construct {
  readonly bucket: StorageBucket;

  constructor(scope: Construct, id: string, props: WorkBucketProps) {
    super(scope, id);
    this.bucket = new StorageBucket(this, 'bucket', {
      name: props.name,
      location: props.location,
      ...LOCKED_DOWN,
      forceDestroy: props.forceDestroy,
    });
  }
}
