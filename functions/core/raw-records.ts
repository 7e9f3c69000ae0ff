import type { Entity } from './entities.js';
import { plainInteger } from './json-text.js';
import { apiFields, type Field, RAW_TABLES } from './schema.js';

/**
 * Turning one line of a landed file into one raw row. Raw keeps every API field as received, as
 * text: numbers (and booleans) become strings holding their exact JSON text, so `59.90` stays
 * "59.90" and no digit is lost. Fields the schema does not name (the API added one) are kept in
 * the row's `extras` JSON, never an error, never dropped: top-level ones by name, a sale line's
 * under `extras.items` (one object per line, in line order). Extras are written as a JSON object,
 * not as a string holding JSON: a NDJSON load puts a JSON column's raw value in as it is
 * (https://cloud.google.com/bigquery/docs/json-data, "Load from newline delimited JSON files"),
 * and one column on the row rather than one per line keeps JSON out of the REPEATED record, which
 * the documentation does not settle. A line that is
 * not a JSON object, or holds an object where a single value belongs (or a non-list where a list
 * belongs), cannot be a raw row: the file is rejected with the line number.
 */

/** Why one line cannot be loaded; the file fails with it. */
export class RecordShapeError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
    this.name = 'RecordShapeError';
  }
}

const QUOTE = 0x22;

/** The same JSON with every number and boolean token turned into a string of its exact text. */
export function quoteScalars(text: string): string {
  let out = '';
  let runStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === QUOTE) break;
      }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39) || c === 0x74 || c === 0x66) {
      // number, true, false
      let j = i + 1;
      while (j < text.length) {
        const d = text.charCodeAt(j);
        if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09)
          break;
        j++;
      }
      out += `${text.slice(runStart, i)}"${text.slice(i, j)}"`;
      runStart = j;
      i = j - 1;
    }
  }
  return runStart === 0 ? text : out + text.slice(runStart);
}

type Json = string | null | Json[] | { [key: string]: Json };

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A value's place in its record (`items[2].amount`), spelled out only when it is wrong. */
function pathOf(name: string, index?: number, sub?: string): string {
  return index === undefined ? name : sub === undefined ? `${name}[${index}]` : `${name}[${index}].${sub}`;
}

function scalar(
  value: Json | undefined,
  line: number,
  name: string,
  index?: number,
  sub?: string,
): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  throw new RecordShapeError(
    line,
    `${pathOf(name, index, sub)} is ${kindOf(value)}, expected a single value`,
  );
}

/** The fields of `record` that `known` does not name, or undefined when there are none. */
function extrasOf(
  record: { readonly [key: string]: Json },
  known: ReadonlySet<string>,
): { [key: string]: Json } | undefined {
  let out: { [key: string]: Json } | undefined;
  for (const key in record) {
    if (known.has(key)) continue;
    out ??= {};
    out[key] = record[key] as Json;
  }
  return out;
}

function project(field: Field, value: Json | undefined, line: number): Json {
  const name = field.name;
  if (field.mode !== 'REPEATED') return scalar(value, line, name);
  // A missing or null list is an empty list (BigQuery's REPEATED fields cannot be NULL).
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RecordShapeError(line, `${name} is ${kindOf(value)}, expected a list`);
  const subFields = field.fields ?? [];
  const out: Json[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const element = value[i] as Json;
    if (field.type !== 'STRUCT') {
      if (element === null)
        throw new RecordShapeError(line, `${pathOf(name, i)} is null; a list cannot hold null`);
      out[i] = scalar(element, line, name, i);
      continue;
    }
    if (typeof element !== 'object' || element === null || Array.isArray(element)) {
      throw new RecordShapeError(line, `${pathOf(name, i)} is ${kindOf(element)}, expected an object`);
    }
    const projected: { [key: string]: Json } = {};
    for (const sub of subFields) projected[sub.name] = scalar(element[sub.name], line, name, i, sub.name);
    out[i] = projected;
  }
  return out;
}

/** What a raw table names, worked out once per entity (every line of every file asks). */
interface RawShape {
  /** The API fields, extras aside. */
  readonly fields: readonly Field[];
  readonly names: ReadonlySet<string>;
  /** The list of sub-records (a sale's items), whose unknown fields go under extras too. */
  readonly lines: { readonly field: Field; readonly names: ReadonlySet<string> } | undefined;
}

const SHAPES = new Map<Entity, RawShape>();

function shapeOf(entity: Entity): RawShape {
  let shape = SHAPES.get(entity);
  if (!shape) {
    const fields = apiFields(RAW_TABLES[entity]).filter((field) => field.name !== 'extras');
    const lines = fields.find((field) => field.type === 'STRUCT');
    shape = {
      fields,
      names: new Set(fields.map((field) => field.name)),
      lines: lines && { field: lines, names: new Set((lines.fields ?? []).map((field) => field.name)) },
    };
    SHAPES.set(entity, shape);
  }
  return shape;
}

export interface RawRow {
  /** The row as newline-delimited JSON with exactly the raw table's API fields, every value text. */
  readonly json: string;
  /** Sales: the id, when it is an integer. */
  readonly saleId: bigint | undefined;
  /** Paths of the fields kept in extras, e.g. `loyalty_tier`, `items[].discount_code`. */
  readonly extraFields: readonly string[];
}

/** One line of a landed file as a raw row; throws RecordShapeError when it cannot be one. */
export function toRawRow(
  entity: Entity,
  line: string,
  lineNumber: number,
  sys?: { readonly SYS_DATE_CREATE: string; readonly SYS_FILE_NAME: string },
): RawRow {
  let parsed: unknown;
  try {
    parsed = JSON.parse(quoteScalars(line));
  } catch (error) {
    throw new RecordShapeError(lineNumber, `not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new RecordShapeError(lineNumber, `a record must be a JSON object, found ${kindOf(parsed)}`);
  }
  const record = parsed as { [key: string]: Json };
  const shape = shapeOf(entity);
  const row: { [key: string]: Json } = {};
  for (const field of shape.fields) row[field.name] = project(field, record[field.name], lineNumber);
  const extras = extrasOf(record, shape.names);
  const extraFields = Object.keys(extras ?? {});
  const items = shape.lines ? record[shape.lines.field.name] : undefined;
  if (shape.lines && Array.isArray(items)) {
    const { field, names } = shape.lines;
    // project() above has checked that every line is an object
    const perLine = items.map((item) => extrasOf(item as { [key: string]: Json }, names));
    if (perLine.some(Boolean)) {
      for (const name of new Set(perLine.flatMap((e) => Object.keys(e ?? {}))))
        extraFields.push(`${field.name}[].${name}`);
      row.extras = { ...extras, [field.name]: perLine.map((e) => e ?? {}) };
    }
  }
  row.extras ??= extras ?? null;
  const saleId = entity === 'sales' && typeof row.id === 'string' ? plainInteger(row.id) : undefined;
  if (sys) {
    row.SYS_DATE_CREATE = sys.SYS_DATE_CREATE;
    row.SYS_FILE_NAME = sys.SYS_FILE_NAME;
  }
  return { json: JSON.stringify(row), saleId, extraFields };
}
