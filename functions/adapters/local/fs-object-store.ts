import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  copyFile,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rmdir,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { ObjectNotFoundError, PreconditionFailedError, TerminalError } from '../../core/errors.js';
import {
  assertSourceGeneration,
  type CopyOptions,
  type MoveOptions,
  type ObjectInfo,
  type ObjectStore,
  streamCopy,
  type WriteOptions,
} from '../../ports/object-store.js';

const TMP_DIR = '.tmp';

const code = (error: unknown): string | undefined => (error as NodeJS.ErrnoException)?.code;

/**
 * A folder as the bucket. Writes go to a temporary file and are renamed into place, so a reader
 * (or a process killed mid-write) never leaves a half-written object under its real name.
 * "Create only if absent" uses link(2), which fails atomically when the name is taken.
 * Durability is against process crashes (no fsync): a power loss is out of scope locally.
 */
export class FsObjectStore implements ObjectStore {
  readonly location: string;
  /** Generations this store put in place whole (atomic renames), by key. */
  private readonly installed = new Map<string, string>();

  constructor(private readonly root: string) {
    this.location = root;
  }

  /** The file behind an object (DuckDB reads objects from disk). */
  pathOf(key: string): string {
    return this.path(key);
  }

  private path(key: string): string {
    if (
      !key ||
      key.startsWith('/') ||
      key.split('/').some((part) => part === '..' || part === '.' || part === '')
    ) {
      throw new TerminalError(`invalid object name: ${JSON.stringify(key)}`);
    }
    return join(this.root, ...key.split('/'));
  }

  private async tmpPath(): Promise<string> {
    const dir = join(this.root, TMP_DIR);
    await mkdir(dir, { recursive: true });
    return join(dir, randomUUID());
  }

  async read(key: string): Promise<Buffer> {
    try {
      return await readFile(this.path(key));
    } catch (error) {
      if (code(error) === 'ENOENT') throw new ObjectNotFoundError(`no object ${key}`, { cause: error });
      throw error;
    }
  }

  async *readStream(key: string): AsyncIterable<Buffer> {
    const path = this.path(key);
    try {
      for await (const chunk of createReadStream(path)) yield chunk as Buffer;
    } catch (error) {
      if (code(error) === 'ENOENT') throw new ObjectNotFoundError(`no object ${key}`, { cause: error });
      throw error;
    }
  }

  async write(key: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<ObjectInfo> {
    const tmp = await this.tmpPath();
    await writeFile(tmp, data);
    return this.install(tmp, key, options.ifGenerationMatch);
  }

  async writeStream(
    key: string,
    source: AsyncIterable<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<ObjectInfo> {
    this.path(key); // an invalid name fails before anything is consumed
    const tmp = await this.tmpPath();
    const out = await open(tmp, 'w');
    try {
      for await (const chunk of source) await out.write(chunk);
      await out.close();
    } catch (error) {
      await out.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw error;
    }
    return this.install(tmp, key, options.ifGenerationMatch);
  }

  async copyTo(
    key: string,
    target: ObjectStore,
    destination: string,
    options: CopyOptions = {},
  ): Promise<ObjectInfo> {
    if (!(target instanceof FsObjectStore)) return streamCopy(this, key, target, destination, options);
    await assertSourceGeneration(this, key, options.ifSourceGenerationMatch);
    const tmp = await target.tmpPath();
    try {
      await copyFile(this.path(key), tmp);
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      if (code(error) === 'ENOENT') throw new ObjectNotFoundError(`no object ${key}`, { cause: error });
      throw error;
    }
    return target.install(tmp, destination, options.ifDestinationAbsent ? '0' : undefined);
  }

  async compose(sources: readonly string[], destination: string): Promise<ObjectInfo> {
    const tmp = await this.tmpPath();
    const out = await open(tmp, 'w');
    try {
      for (const source of sources) {
        for await (const chunk of createReadStream(this.path(source))) await out.write(chunk as Buffer);
      }
    } catch (error) {
      await out.close();
      await unlink(tmp).catch(() => undefined);
      if (code(error) === 'ENOENT')
        throw new ObjectNotFoundError(`compose into ${destination}: a source is missing`, { cause: error });
      throw error;
    }
    await out.close();
    return this.install(tmp, destination, undefined);
  }

  /** Puts a finished temporary file under its name, honouring the precondition. */
  private async install(
    tmp: string,
    key: string,
    ifGenerationMatch: string | undefined,
  ): Promise<ObjectInfo> {
    const path = this.path(key);
    try {
      await this.withParent(path, async () => {
        if (ifGenerationMatch === '0') {
          await link(tmp, path);
          await unlink(tmp);
          return;
        }
        if (ifGenerationMatch !== undefined) {
          const current = await this.stat(key);
          if (current?.generation !== ifGenerationMatch) {
            throw new PreconditionFailedError(`${key} is not at generation ${ifGenerationMatch}`);
          }
        }
        await rename(tmp, path);
      });
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      if (code(error) === 'EEXIST')
        throw new PreconditionFailedError(`${key} exists already`, { cause: error });
      throw error;
    }
    const info = await this.infoOf(key, path);
    this.installed.set(key, info.generation);
    return info;
  }

  wroteWhole(info: ObjectInfo): boolean {
    return this.installed.get(info.key) === info.generation;
  }

  /**
   * Removes temporary files a killed process left behind. Call it only while no other process
   * writes this store (locally: while holding the warehouse, which one process holds at a time).
   */
  async sweepTemporaryFiles(): Promise<number> {
    const dir = join(this.root, TMP_DIR);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (code(error) === 'ENOENT') return 0;
      throw error;
    }
    for (const name of names) await unlink(join(dir, name)).catch(() => undefined);
    return names.length;
  }

  /** Runs a step that creates `path`, re-creating the folder if a concurrent delete removed it. */
  private async withParent(path: string, step: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await mkdir(dirname(path), { recursive: true });
      try {
        return await step();
      } catch (error) {
        if (code(error) !== 'ENOENT' || attempt >= 3) throw error;
      }
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      return await this.infoOf(key, this.path(key));
    } catch (error) {
      if (code(error) === 'ENOENT' || code(error) === 'ENOTDIR') return undefined;
      throw error;
    }
  }

  private async infoOf(key: string, path: string): Promise<ObjectInfo> {
    const s = await stat(path, { bigint: true });
    if (!s.isFile()) throw Object.assign(new Error(`${key} is a folder`), { code: 'ENOENT' });
    return {
      key,
      size: Number(s.size),
      // inode + change time: a rewrite (new file renamed in) always changes it.
      generation: `${s.ctimeNs}${String(s.ino).padStart(12, '0')}`,
      updated: new Date(Number(s.mtimeMs)),
    };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const cut = prefix.lastIndexOf('/');
    const base = cut >= 0 ? prefix.slice(0, cut) : '';
    const start = base ? join(this.root, ...base.split('/')) : this.root;
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (code(error) === 'ENOENT' || code(error) === 'ENOTDIR') return;
        throw error;
      }
      for (const entry of entries) {
        // Only the store's own temporary folder is not an object: a file named `.x.json` is one,
        // as it is on GCS.
        if (dir === this.root && entry.name === TMP_DIR) continue;
        const path = join(dir, entry.name);
        const key = relative(this.root, path).split(sep).join('/');
        if (entry.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(path);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          const info = await this.stat(key);
          if (info) out.push(info);
        }
      }
    };
    await walk(start);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string, options: { ifGenerationMatch?: string } = {}): Promise<void> {
    const path = this.path(key);
    if (options.ifGenerationMatch !== undefined) {
      const current = await this.stat(key);
      if (!current) return;
      if (current.generation !== options.ifGenerationMatch) {
        throw new PreconditionFailedError(`${key} is not at generation ${options.ifGenerationMatch}`);
      }
    }
    this.installed.delete(key);
    try {
      await unlink(path);
    } catch (error) {
      if (code(error) !== 'ENOENT') throw error;
    }
    await this.pruneEmptyFolders(dirname(path));
  }

  async move(source: string, destination: string, options: MoveOptions = {}): Promise<ObjectInfo> {
    const from = this.path(source);
    const to = this.path(destination);
    await assertSourceGeneration(this, source, options.ifSourceGenerationMatch);
    try {
      await this.withParent(to, async () => {
        if (options.ifDestinationAbsent) {
          await link(from, to);
          await unlink(from);
        } else {
          await rename(from, to);
        }
      });
    } catch (error) {
      if (code(error) === 'EEXIST')
        throw new PreconditionFailedError(`${destination} exists already`, { cause: error });
      if (code(error) === 'ENOENT') throw new ObjectNotFoundError(`no object ${source}`, { cause: error });
      throw error;
    }
    // A moved object is a new object where it lands (as a GCS copy is): its time is now.
    const now = new Date();
    await utimes(to, now, now);
    await this.pruneEmptyFolders(dirname(from));
    const info = await this.infoOf(destination, to);
    this.installed.delete(source);
    this.installed.set(destination, info.generation);
    return info;
  }

  /**
   * Folders are only a view of key prefixes: drop the ones a delete or move left empty, but keep
   * the first two levels (`sales/in/` ...) where people drop files by hand.
   */
  private async pruneEmptyFolders(dir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(this.root) && relative(this.root, current).split(sep).length > 2) {
      try {
        await rmdir(current);
      } catch {
        return;
      }
      current = dirname(current);
    }
  }
}
