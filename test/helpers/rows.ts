import { ALL_TABLES, type Field, type Table, VIEWS } from '../../functions/core/schema.js';

/**
 * Rows in one canonical text form, whatever engine produced them: NUMERIC without trailing
 * zeros ("12.5"), DATETIME as "2025-07-19T10:15:00", TIMESTAMP as "2025-07-19T10:15:00Z",
 * INT64 as a string, JSON parsed, lists and structs recursively. Golden fixtures are written in
 * this form, so DuckDB and the ZetaSQL evaluator are compared to the same rows.
 */
export type Canonical = string | boolean | null | Canonical[] | { [key: string]: Canonical };

export function tableNamed(name: string): Table {
  const table = [...ALL_TABLES, ...VIEWS].find((t) => `${t.dataset}.${t.name}` === name);
  if (!table) throw new Error(`no table ${name}`);
  return table;
}

function numeric(text: string): string {
  if (!text.includes('.')) return text.replace(/^-0$/, '0');
  const trimmed = text.replace(/0+$/, '').replace(/\.$/, '');
  return trimmed === '-0' ? '0' : trimmed;
}

/** Drops trailing zeros of fractional seconds: "10:15:00.120000" -> "10:15:00.12", ".000" -> "". */
function fraction(text: string): string {
  return text.replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

function scalar(field: Field, value: unknown): Canonical {
  if (value === null || value === undefined) return null;
  switch (field.type) {
    case 'NUMERIC':
      return numeric(String(value));
    case 'INT64':
      return String(value);
    case 'DATETIME':
      return fraction(String(value).replace(' ', 'T'));
    case 'TIMESTAMP': {
      const text = fraction(
        String(value)
          .replace(' ', 'T')
          .replace(/(\+00(:00)?|Z)$/, ''),
      );
      return `${text}Z`;
    }
    case 'JSON':
      return typeof value === 'string' ? (JSON.parse(value) as Canonical) : (value as Canonical);
    case 'BOOL':
      return Boolean(value);
    case 'STRING':
      return String(value);
    case 'STRUCT': {
      const object = value as Record<string, unknown>;
      return Object.fromEntries(
        (field.fields ?? []).map((sub) => [sub.name, canonicalValue(sub, object[sub.name])]),
      );
    }
  }
}

export function canonicalValue(field: Field, value: unknown): Canonical {
  if (field.mode === 'REPEATED') {
    if (value === null || value === undefined) return [];
    return (value as unknown[]).map((element) => scalar(field, element));
  }
  return scalar(field, value);
}

export function canonicalRow(table: Table, row: Record<string, unknown>): Record<string, Canonical> {
  return Object.fromEntries(
    table.fields.map((field) => [field.name, canonicalValue(field, row[field.name])]),
  );
}

/** Rows sorted by their JSON text, for order-independent comparison. */
export function sortRows<T>(rows: T[]): T[] {
  return [...rows].sort((a, b) => {
    const x = JSON.stringify(a);
    const y = JSON.stringify(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** Every row of a table (or view) of a warehouse, canonical and sorted: what a test compares. */
export async function tableRows(
  warehouse: { query(sql: string): Promise<Record<string, unknown>[]> },
  name: string,
): Promise<Record<string, unknown>[]> {
  const table = tableNamed(name);
  return sortRows((await warehouse.query(`SELECT * FROM ${name}`)).map((r) => canonicalRow(table, r)));
}

/** An orphan as the independent computation states it (test/helpers/expected-mart.ts). */
export function orphanKey(o: Record<string, unknown>): Record<string, unknown> {
  return { sale_id: o.sale_id, product_sku: o.product_sku, reason: o.reason };
}
