import { ObjectNotFoundError, PreconditionFailedError } from '../core/errors.js';

/** An object in the bucket (GCS) or the bucket folder (local). */
export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** Changes whenever the object is written anew; a move keeps the content, not always the generation. */
  readonly generation: string;
  readonly updated: Date;
}

export interface WriteOptions {
  /** `'0'`: only if the object does not exist yet; otherwise only if this is its generation. */
  readonly ifGenerationMatch?: string;
}

export interface MoveOptions {
  readonly ifSourceGenerationMatch?: string;
  /** Fail with PreconditionFailedError instead of replacing an existing destination. */
  readonly ifDestinationAbsent?: boolean;
}

/** A copy takes the same preconditions as a move. */
export type CopyOptions = MoveOptions;

/**
 * The bucket. Every write is atomic: readers see the old object, the whole new one, or nothing.
 * Precondition failures throw PreconditionFailedError; a missing object on read/move throws
 * ObjectNotFoundError.
 */
export interface ObjectStore {
  /** Human-readable location, e.g. `gs://bucket` or a folder path. */
  readonly location: string;
  read(key: string): Promise<Buffer>;
  readStream(key: string): AsyncIterable<Buffer>;
  write(key: string, data: string | Uint8Array, options?: WriteOptions): Promise<ObjectInfo>;
  /**
   * Writes what `source` yields as one object without holding it in memory. Nothing is visible
   * under `key` until the whole object is (a failed or abandoned write leaves no object).
   */
  writeStream(key: string, source: AsyncIterable<Uint8Array>, options?: WriteOptions): Promise<ObjectInfo>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix`, at any depth, sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Deletes; a missing object is not an error. */
  delete(key: string, options?: { ifGenerationMatch?: string }): Promise<void>;
  /** Concatenates the sources, in order, into `destination` (GCS compose). */
  compose(sources: readonly string[], destination: string): Promise<ObjectInfo>;
  move(source: string, destination: string, options?: MoveOptions): Promise<ObjectInfo>;
  /**
   * Copies an object of this store to `destination` in `target` (this store or another one, e.g.
   * the connector's work bucket into the pipeline bucket); the source stays. Server-side where
   * both stores are of one kind, streamed otherwise.
   */
  copyTo(key: string, target: ObjectStore, destination: string, options?: CopyOptions): Promise<ObjectInfo>;
  /**
   * Where an object can be seen before it is whole (a folder, into which a person copies a file):
   * true when this store itself put this generation in place, whole. Absent where every object
   * is whole once listed: a GCS object exists, and is listed, only once its upload succeeded
   * (https://cloud.google.com/storage/docs/consistency; the pipeline's buckets are regional, not
   * zonal buckets with appendable objects).
   */
  wroteWhole?(info: ObjectInfo): boolean;
}

/**
 * Whether an object can be taken from `in/`: whole by construction (a store that lists only whole
 * objects, or one this store wrote itself), or unchanged for `quietMs` (a file a person copies
 * into a folder: a copy still running keeps changing it).
 */
export function settledFor(store: ObjectStore, info: ObjectInfo, quietMs: number, now: Date): boolean {
  if (store.wroteWhole === undefined || store.wroteWhole(info)) return true;
  return now.getTime() - info.updated.getTime() >= quietMs;
}

/** copyTo between stores of different kinds: the bytes stream through, create-only if asked. */
export async function streamCopy(
  source: ObjectStore,
  key: string,
  target: ObjectStore,
  destination: string,
  options: CopyOptions = {},
): Promise<ObjectInfo> {
  await assertSourceGeneration(source, key, options.ifSourceGenerationMatch);
  return target.writeStream(
    destination,
    source.readStream(key),
    options.ifDestinationAbsent ? { ifGenerationMatch: '0' } : {},
  );
}

/**
 * For stores that check a source precondition themselves (no server to do it): with a generation,
 * the object must exist (ObjectNotFoundError) at exactly that generation (PreconditionFailedError).
 */
export async function assertSourceGeneration(
  store: ObjectStore,
  key: string,
  generation: string | undefined,
): Promise<void> {
  if (generation === undefined) return;
  const current = await store.stat(key);
  if (!current) throw new ObjectNotFoundError(`no object ${store.location}/${key}`);
  if (current.generation !== generation) {
    throw new PreconditionFailedError(`${key} is not at generation ${generation}`);
  }
}
