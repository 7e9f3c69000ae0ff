import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Bucket, File } from '@google-cloud/storage';
import {
  describeError,
  ObjectNotFoundError,
  PreconditionFailedError,
  TerminalError,
  TransientError,
} from '../../core/errors.js';
import {
  type CopyOptions,
  type MoveOptions,
  type ObjectInfo,
  type ObjectStore,
  streamCopy,
  type WriteOptions,
} from '../../ports/object-store.js';

/** GCS compose takes at most 32 sources per call. */
export const COMPOSE_LIMIT = 32;

/** How often an unconditional change is pinned again after losing a race to another writer. */
const PINNED_ATTEMPTS = 5;

interface GcsMetadata {
  name?: string;
  size?: string | number;
  generation?: string | number;
  updated?: string;
  timeCreated?: string;
}

/** A storage client error as the pipeline's errors: 404, 412, transient (429, 5xx, network), terminal. */
export function classifyStorageError(what: string, error: unknown): Error {
  const e = error as { code?: unknown; status?: unknown };
  const code = Number(e?.code ?? e?.status);
  const message = `${what}: ${describeError(error)}`;
  if (code === 404) return new ObjectNotFoundError(message, { cause: error });
  if (code === 412) return new PreconditionFailedError(message, { cause: error });
  if (
    code === 408 ||
    code === 429 ||
    code >= 500 ||
    Number.isNaN(code) ||
    /ECONNRESET|ETIMEDOUT|socket hang up/.test(message)
  ) {
    return new TransientError(message, { cause: error });
  }
  return new TerminalError(message, { cause: error });
}

function info(key: string, metadata: GcsMetadata): ObjectInfo {
  return {
    key,
    size: Number(metadata.size ?? 0),
    generation: String(metadata.generation ?? ''),
    updated: new Date(metadata.timeCreated ?? metadata.updated ?? 0),
  };
}

/**
 * The bucket on Google Cloud Storage. Writes are single requests (atomic); preconditions use
 * generation numbers (`ifGenerationMatch: 0` = create only). A move is a copy (rewrite) pinned to
 * the source generation, then a delete pinned to it too, so a newer upload of the same name is
 * never deleted by an older move. The Bucket handle (and its client) comes from the caller.
 */
export class GcsObjectStore implements ObjectStore {
  readonly location: string;

  constructor(private readonly bucket: Bucket) {
    this.location = `gs://${bucket.name}`;
  }

  private file(key: string, generation?: string): File {
    return generation === undefined
      ? this.bucket.file(key)
      : this.bucket.file(key, { generation: Number(generation) });
  }

  async read(key: string): Promise<Buffer> {
    try {
      const [data] = await this.file(key).download();
      return data;
    } catch (error) {
      throw classifyStorageError(`reading ${this.location}/${key}`, error);
    }
  }

  async *readStream(key: string): AsyncIterable<Buffer> {
    try {
      for await (const chunk of this.file(key).createReadStream()) yield chunk as Buffer;
    } catch (error) {
      throw classifyStorageError(`reading ${this.location}/${key}`, error);
    }
  }

  async write(key: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<ObjectInfo> {
    if (options.ifGenerationMatch !== undefined) return this.save(key, data, options.ifGenerationMatch);
    return this.pinned(key, (generation) => this.save(key, data, generation));
  }

  private async save(key: string, data: string | Uint8Array, generation: string): Promise<ObjectInfo> {
    const file = this.file(key);
    try {
      await file.save(typeof data === 'string' ? data : Buffer.from(data), {
        resumable: false,
        preconditionOpts: { ifGenerationMatch: Number(generation) },
      });
    } catch (error) {
      throw classifyStorageError(`writing ${this.location}/${key}`, error);
    }
    return info(key, file.metadata as GcsMetadata);
  }

  /**
   * Every request this adapter sends carries a generation precondition. The storage client
   * retries only requests it can tell are idempotent, and one write without a precondition
   * switches retries off for the whole client, never to switch them on again (@google-cloud/storage
   * 7.x, File#save; https://cloud.google.com/storage/docs/retry-strategy#idempotency). A change the
   * caller wants unconditional is pinned to the object's current generation (0: absent) and made
   * again if another writer moved it on in between.
   */
  /** The generation a change is pinned to: the object's current one, or 0 when it is absent. */
  private async currentGeneration(key: string): Promise<string> {
    return (await this.stat(key))?.generation ?? '0';
  }

  private async pinned<T>(key: string, change: (generation: string) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const generation = await this.currentGeneration(key);
      try {
        return await change(generation);
      } catch (error) {
        if (!(error instanceof PreconditionFailedError) || attempt >= PINNED_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * A resumable upload: the object exists only once the last chunk is in, so an interrupted
   * write leaves nothing under `key` (https://cloud.google.com/storage/docs/resumable-uploads).
   */
  async writeStream(
    key: string,
    source: AsyncIterable<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<ObjectInfo> {
    // A stream is read once: an unconditional write pinned to a generation another writer moved
    // on cannot be made again here; the caller is told to try again (transient).
    const pinned = options.ifGenerationMatch === undefined;
    const generation = options.ifGenerationMatch ?? (await this.currentGeneration(key));
    const file = this.file(key);
    // An error of the source (e.g. reading another object) is its own, not this upload's.
    let sourceError: { error: unknown } | undefined;
    const guarded = async function* (): AsyncIterable<Uint8Array> {
      try {
        yield* source;
      } catch (error) {
        sourceError = { error };
        throw error;
      }
    };
    try {
      await pipeline(
        Readable.from(guarded(), { objectMode: false }),
        file.createWriteStream({
          resumable: true,
          preconditionOpts: { ifGenerationMatch: Number(generation) },
        }),
      );
    } catch (error) {
      if (sourceError) throw sourceError.error;
      const classified = classifyStorageError(`writing ${this.location}/${key}`, error);
      if (pinned && classified instanceof PreconditionFailedError) {
        throw new TransientError(`${this.location}/${key} was written by another writer meanwhile`, {
          cause: classified,
        });
      }
      throw classified;
    }
    return info(key, file.metadata as GcsMetadata);
  }

  /** Another bucket: a server-side rewrite (the bytes never pass through this process). */
  async copyTo(
    key: string,
    target: ObjectStore,
    destination: string,
    options: CopyOptions = {},
  ): Promise<ObjectInfo> {
    if (!(target instanceof GcsObjectStore)) return streamCopy(this, key, target, destination, options);
    const copy = async (generation: string): Promise<ObjectInfo> => {
      const copied = target.file(destination);
      try {
        await this.file(key, options.ifSourceGenerationMatch).copy(copied, {
          preconditionOpts: { ifGenerationMatch: Number(generation) },
        });
        const [metadata] = await copied.getMetadata();
        return info(destination, metadata as GcsMetadata);
      } catch (error) {
        throw classifyStorageError(
          `copying ${this.location}/${key} to ${target.location}/${destination}`,
          error,
        );
      }
    };
    return options.ifDestinationAbsent ? copy('0') : target.pinned(destination, copy);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const [metadata] = await this.file(key).getMetadata();
      return info(key, metadata as GcsMetadata);
    } catch (error) {
      const classified = classifyStorageError(`reading ${this.location}/${key}`, error);
      if (classified instanceof ObjectNotFoundError) return undefined;
      throw classified;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    try {
      const [files] = await this.bucket.getFiles({ prefix, autoPaginate: true });
      return files
        .map((f) => info(f.name, f.metadata as GcsMetadata))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    } catch (error) {
      throw classifyStorageError(`listing ${this.location}/${prefix}`, error);
    }
  }

  async delete(key: string, options: { ifGenerationMatch?: string } = {}): Promise<void> {
    if (options.ifGenerationMatch !== undefined) return this.deleteGeneration(key, options.ifGenerationMatch);
    await this.pinned(key, (generation) =>
      generation === '0' ? Promise.resolve() : this.deleteGeneration(key, generation),
    );
  }

  private async deleteGeneration(key: string, generation: string): Promise<void> {
    try {
      await this.file(key).delete({ ifGenerationMatch: Number(generation) });
    } catch (error) {
      const classified = classifyStorageError(`deleting ${this.location}/${key}`, error);
      if (classified instanceof ObjectNotFoundError) return;
      throw classified;
    }
  }

  async compose(sources: readonly string[], destination: string): Promise<ObjectInfo> {
    // More than 32 sources: compose groups into intermediate objects, then those, and so on.
    let current = [...sources];
    const intermediates: string[] = [];
    try {
      for (let round = 0; current.length > COMPOSE_LIMIT; round++) {
        const next: string[] = [];
        for (let i = 0; i < current.length; i += COMPOSE_LIMIT) {
          const key = `${destination}.compose-${round}-${i / COMPOSE_LIMIT}`;
          intermediates.push(key);
          await this.combine(current.slice(i, i + COMPOSE_LIMIT), key);
          next.push(key);
        }
        current = next;
      }
      return await this.combine(current, destination);
    } finally {
      // Whether the compose succeeded or not, its intermediate objects go (a failed cleanup is
      // left to the next try, which composes under the same names and removes them).
      for (const key of intermediates) await this.delete(key).catch(() => undefined);
    }
  }

  private combine(sources: readonly string[], destination: string): Promise<ObjectInfo> {
    return this.pinned(destination, (generation) => this.combineAt(sources, destination, generation));
  }

  private async combineAt(
    sources: readonly string[],
    destination: string,
    generation: string,
  ): Promise<ObjectInfo> {
    const target = this.file(destination);
    try {
      await this.bucket.combine(
        sources.map((s) => this.file(s)),
        target,
        { ifGenerationMatch: Number(generation) },
      );
      const [metadata] = await target.getMetadata();
      return info(destination, metadata as GcsMetadata);
    } catch (error) {
      throw classifyStorageError(`composing ${this.location}/${destination}`, error);
    }
  }

  async move(source: string, destination: string, options: MoveOptions = {}): Promise<ObjectInfo> {
    const current = options.ifSourceGenerationMatch ?? (await this.stat(source))?.generation;
    if (current === undefined) throw new ObjectNotFoundError(`no object ${this.location}/${source}`);
    const target = this.file(destination);
    const copy = async (generation: string): Promise<void> => {
      try {
        await this.file(source, current).copy(target, {
          preconditionOpts: { ifGenerationMatch: Number(generation) },
        });
      } catch (error) {
        throw classifyStorageError(`moving ${this.location}/${source} to ${destination}`, error);
      }
    };
    if (options.ifDestinationAbsent) await copy('0');
    else await this.pinned(destination, copy);
    // Delete exactly the generation that was copied; a newer upload under the same name stays.
    await this.delete(source, { ifGenerationMatch: current }).catch((error: unknown) => {
      if (!(error instanceof PreconditionFailedError)) throw error;
    });
    try {
      const [metadata] = await target.getMetadata();
      return info(destination, metadata as GcsMetadata);
    } catch (error) {
      throw classifyStorageError(`reading ${this.location}/${destination}`, error);
    }
  }
}
