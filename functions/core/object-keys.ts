import { createHash } from 'node:crypto';
import { type Entity, isEntity } from './entities.js';
import { compactTimestamp, dayStamp, fileStamp, hourPath } from './time.js';

/**
 * Every object name the pipeline reads or writes, in one place. See DATA_CONTRACT.md for the
 * bucket layout; `{entity}/staging/` is the connector's own area (never loaded, never in `in/`).
 */
export const OBJECT_STATES = ['in', 'processing', 'archive', 'failed', 'staging'] as const;
export type ObjectState = (typeof OBJECT_STATES)[number];

export function connectorFileName(entity: Entity, stamp: string, uuid: string): string {
  return `${entity}_${stamp}_${uuid}.json`;
}

export function inKey(entity: Entity, name: string): string {
  return `${entity}/in/${name}`;
}

export function processingKey(entity: Entity, name: string): string {
  return `${entity}/processing/${name}`;
}

/**
 * Where a loader keeps an object it claimed: the generation it claimed is part of the name, and
 * so is the object's whole path under `in/` (`x.json`, or `sub/x.json` for a file in a
 * subfolder), so that finishing the claim later knows exactly which object it was.
 */
export function claimKey(entity: Entity, generation: string, pathInIn: string): string {
  return `${entity}/processing/${generation}/${pathInIn}`;
}

/**
 * The longest names the layout carries through every state. A file's claim, rows, archive,
 * failed and sidecar names add up to ~60 bytes to its name, and GCS refuses object names over
 * 1,024 bytes of UTF-8 (https://cloud.google.com/storage/docs/naming-objects); a folder bucket's
 * file name is at most 255 bytes (Linux NAME_MAX), to which the rows, sidecar and generation
 * suffixes add up to ~45.
 */
export const MAX_PATH_IN_IN_BYTES = 900;
export const MAX_FILE_NAME_BYTES = 200;

/** The marker that ends the claim name of a file whose name is too long for the layout. */
const TOO_LONG_SUFFIX = '.name-too-long';
/** A shortened name as shortenedName makes it (a file merely named `x.name-too-long` is not one). */
const SHORTENED = /~[0-9a-f]{12}\.name-too-long$/;

/**
 * Why a path under `{entity}/in/` cannot be carried through the layout under its own name, or
 * undefined when it can.
 */
export function nameTooLong(pathInIn: string): string | undefined {
  const path = Buffer.byteLength(pathInIn);
  const longest = Math.max(...pathInIn.split('/').map((part) => Buffer.byteLength(part)));
  if (path <= MAX_PATH_IN_IN_BYTES && longest <= MAX_FILE_NAME_BYTES) return undefined;
  return tooLong(
    `${path} bytes under in/, ${longest} in its longest part; at most ${MAX_PATH_IN_IN_BYTES} and ${MAX_FILE_NAME_BYTES}`,
  );
}

const tooLong = (figures: string) =>
  `its name is too long for the bucket layout (${figures}): rename it shorter and upload it to in/ again`;

/** The reason when the original name is no longer known (a shortened claim finished after a crash). */
export const NAME_TOO_LONG = tooLong(
  `at most ${MAX_PATH_IN_IN_BYTES} bytes under in/ and ${MAX_FILE_NAME_BYTES} in one part`,
);

/**
 * The name a file whose name is too long is claimed and settled in failed/ under: the start of
 * its last part, a digest of its whole path, and a marker that is never loadable (it does not end
 * .json), so a claim finished after a crash knows to fail it too.
 */
export function shortenedName(pathInIn: string): string {
  const digest = createHash('sha256').update(pathInIn).digest('hex').slice(0, 12);
  const start = Buffer.from(baseName(pathInIn))
    .subarray(0, 100)
    .toString('utf8')
    .replace(/\uFFFD+$/, '');
  return `${start}~${digest}${TOO_LONG_SUFFIX}`;
}

export function isShortenedName(name: string): boolean {
  return SHORTENED.test(name);
}

/** The last part of a path (`x.json` of `sub/x.json`). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

const ROWS_SUFFIX = '.rows.ndjson';
const SIDECAR_SUFFIX = '.error.json';

/** The raw rows the loader derived from a claimed file (deleted when the file is settled). */
export function rowsKeyOf(claim: string): string {
  return `${claim}${ROWS_SUFFIX}`;
}

/**
 * Whether `key` is an object the pipeline keeps beside another, given the keys listed around it:
 * a claim's rows file (`{claim}.rows.ndjson` in processing/, while its claim is there: it is
 * deleted before its claim moves on) or a failed file's sidecar (`{file}.error.json` in failed/).
 * A failed file always has its sidecar (written before the file moves in, removed after it moves
 * out on replay), so in failed/ an object so named is a sidecar when its file is there, or when
 * it has no sidecar of its own (one a replay cut short left behind). Anywhere else, and for a
 * file so named that has its own sidecar, the name means nothing: a data file named
 * `a.error.json` or `x.rows.ndjson` is counted, loaded or failed, recovered and replayed like any
 * other.
 */
export function isCompanion(key: string, keys: ReadonlySet<string>): boolean {
  const owner = companionOf(key);
  if (owner === undefined) return false;
  const state = parseObjectKey(key)?.state;
  if (key.endsWith(ROWS_SUFFIX)) return state === 'processing' && keys.has(owner);
  return state === 'failed' && (keys.has(owner) || !keys.has(errorSidecarKey(key)));
}

/** The object `key` would be kept beside, were it a sidecar or a rows file (see isCompanion). */
export function companionOf(key: string): string | undefined {
  for (const suffix of [SIDECAR_SUFFIX, ROWS_SUFFIX])
    if (key.endsWith(suffix)) return key.slice(0, -suffix.length);
  return undefined;
}

export interface ParsedClaim {
  readonly entity: Entity;
  readonly generation: string;
  /** The claimed object's path under `{entity}/in/` (see claimKey). */
  readonly name: string;
}

/**
 * A claim's parts, or undefined for a key outside `{entity}/processing/{generation}/` or a folder
 * (`…/`). The path under in/ may hold an empty part (GCS takes `sales/in//x.json`); whether a key
 * ending `.rows.ndjson` is a claim or a claim's rows file takes the listing (claimsAmong).
 */
export function parseClaimKey(key: string): ParsedClaim | undefined {
  const [entity, state, generation, ...path] = key.split('/');
  const name = path.join('/');
  if (!entity || state !== 'processing' || !generation || !isEntity(entity)) return undefined;
  if (name === '' || name.endsWith('/')) return undefined;
  return { entity, generation, name };
}

/** The claims among objects listed under `{entity}/processing/` (rows files aside, see isCompanion). */
export function claimsAmong<T extends { readonly key: string }>(
  objects: readonly T[],
): { readonly object: T; readonly claim: ParsedClaim }[] {
  const keys = new Set(objects.map((o) => o.key));
  return objects.flatMap((object) => {
    const claim = parseClaimKey(object.key);
    return claim && !isCompanion(object.key, keys) ? [{ object, claim }] : [];
  });
}

/** An object directly in `{entity}/in/` (loadable or not); nested "folders" are not arrivals. */
export function isArrival(key: string): boolean {
  const parts = key.split('/');
  return parts.length === 3 && parts[1] === 'in' && isEntity(parts[0] ?? '') && (parts[2] ?? '') !== '';
}

export function archiveKey(entity: Entity, name: string, at: Date): string {
  return `${entity}/archive/${dayStamp(at)}/${name}`;
}

export function failedKey(entity: Entity, name: string, at: Date): string {
  return `${entity}/failed/${hourPath(at)}/${name}`;
}

export function errorSidecarKey(failedObjectKey: string): string {
  return `${failedObjectKey}${SIDECAR_SUFFIX}`;
}

export interface ParsedKey {
  readonly entity: Entity;
  readonly state: ObjectState;
  /** The object's base name (after the last `/`). */
  readonly name: string;
}

/** Reads an object name back; `undefined` for anything outside the layout. */
export function parseObjectKey(key: string): ParsedKey | undefined {
  const [entity, state, ...rest] = key.split('/');
  const name = rest.at(-1);
  if (!entity || !state || !name || !isEntity(entity)) return undefined;
  if (!(OBJECT_STATES as readonly string[]).includes(state)) return undefined;
  return { entity, state: state as ObjectState, name };
}

/**
 * Anything in `{entity}/in/` the loader acts on: an arrival, or a file in a subfolder (sent to
 * failed/ saying why). A folder placeholder (a name ending in `/`) is not a file.
 */
export function isWaiting(key: string): boolean {
  return parseObjectKey(key)?.state === 'in' && !key.endsWith('/');
}

/** True only for objects that should be loaded: a `.json` file directly in `{entity}/in/`. */
export function isLoadable(key: string): boolean {
  const parts = key.split('/');
  return (
    parts.length === 3 && parts[1] === 'in' && isEntity(parts[0] ?? '') && /\.json$/i.test(parts[2] ?? '')
  );
}

// ---- the connector's staging area -------------------------------------------------------------

export function leaseKey(entity: Entity): string {
  return `${entity}/staging/lease.json`;
}

export function newRunId(at: Date, uuid: string): string {
  return `${compactTimestamp(at)}-${uuid.slice(0, 8)}`;
}

export function runPrefix(entity: Entity, runId: string): string {
  return `${entity}/staging/runs/${runId}/`;
}

/** The run id of any key under `{entity}/staging/runs/`. */
export function runIdOf(key: string): string | undefined {
  return /^[a-z]+\/staging\/runs\/([^/]+)\//.exec(key)?.[1];
}

export const manifestKey = (prefix: string): string => `${prefix}run.json`;
export const cursorKey = (prefix: string): string => `${prefix}cursor.json`;

const PAGE_RE = /\/pages\/(\d{8})_(\d+)_(\d+)\.ndjson$/;
const PART_RE = /\/parts\/(\d{8})-(\d{8})_(\d+)__([^/]+)$/;

export interface StagedPage {
  readonly page: number;
  readonly count: number;
  readonly totalPages: number;
}

/** A fetched page; its record count and the total pages the API announced live in its name. */
export function pageKey(prefix: string, p: StagedPage): string {
  return `${prefix}pages/${String(p.page).padStart(8, '0')}_${p.count}_${p.totalPages}.ndjson`;
}

export function parsePageKey(key: string): StagedPage | undefined {
  const m = PAGE_RE.exec(key);
  return m ? { page: Number(m[1]), count: Number(m[2]), totalPages: Number(m[3]) } : undefined;
}

export interface StagedPart {
  readonly first: number;
  readonly last: number;
  readonly records: number;
  readonly fileName: string;
}

/** An assembled file waiting to be published; the pages it covers are in its name. */
export function partKey(prefix: string, p: StagedPart): string {
  return `${prefix}parts/${String(p.first).padStart(8, '0')}-${String(p.last).padStart(8, '0')}_${p.records}__${p.fileName}`;
}

export function parsePartKey(key: string): StagedPart | undefined {
  const m = PART_RE.exec(key);
  return m?.[4]
    ? { first: Number(m[1]), last: Number(m[2]), records: Number(m[3]), fileName: m[4] }
    : undefined;
}

export { fileStamp };
