/**
 * Every table of the pipeline, defined once. Rendered into DuckDB DDL (local runtime), BigQuery
 * table schemas (infra) and the ZetaSQL catalog (SQL parity checks).
 */
export const DATASETS = ['raw', 'ods', 'dmt', 'ops'] as const;
export type Dataset = (typeof DATASETS)[number];

export const SCALAR_TYPES = ['STRING', 'INT64', 'NUMERIC', 'DATETIME', 'TIMESTAMP', 'JSON', 'BOOL'] as const;
export type ScalarType = (typeof SCALAR_TYPES)[number];

export interface Field {
  readonly name: string;
  readonly type: ScalarType | 'STRUCT';
  readonly mode: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  readonly description: string;
  readonly fields?: readonly Field[];
}

export interface Table {
  readonly dataset: Dataset;
  readonly name: string;
  readonly description: string;
  readonly fields: readonly Field[];
  /** BigQuery day partitioning column. */
  readonly partitionBy?: string;
  readonly clusterBy?: readonly string[];
  /** The business key, where there is one. */
  readonly key?: readonly string[];
}

const f = (name: string, type: ScalarType, description: string, mode: Field['mode'] = 'NULLABLE'): Field => ({
  name,
  type,
  mode,
  description,
});
const struct = (
  name: string,
  fields: Field[],
  description: string,
  mode: Field['mode'] = 'REPEATED',
): Field => ({
  name,
  type: 'STRUCT',
  mode,
  description,
  fields,
});

const SYS = [
  f('SYS_DATE_CREATE', 'TIMESTAMP', 'When the row was loaded into raw (the load of its file).', 'REQUIRED'),
  f(
    'SYS_FILE_NAME',
    'STRING',
    'The object name the row came from, as it arrived in {entity}/in/.',
    'REQUIRED',
  ),
];

const RAW_NOTE = 'as received (numbers as their JSON text)';

/** Fields the API sends that the schema does not name yet: kept, never dropped. */
const extras = (more = ''): Field =>
  f(
    'extras',
    'JSON',
    `Fields of the record that this schema does not name (a field the API added), as received, numbers as their JSON text${more}; NULL when none.`,
  );

export const RAW_TABLES = {
  sales: {
    dataset: 'raw',
    name: 'sales',
    description:
      'Sales as received from the Retail API, one row per record of each loaded file. Append only.',
    fields: [
      f('id', 'STRING', `Sale id, ${RAW_NOTE}.`),
      f('datetime', 'STRING', `Sale time, ${RAW_NOTE}.`),
      f('total_amount', 'STRING', `Sale total, ${RAW_NOTE}.`),
      f('customer_id', 'STRING', `Customer id, ${RAW_NOTE}.`),
      struct(
        'items',
        [
          f('product_sku', 'STRING', `Product SKU, ${RAW_NOTE}.`),
          f('quantity', 'STRING', `Units, ${RAW_NOTE}.`),
          f('amount', 'STRING', `Amount paid for the line, ${RAW_NOTE}.`),
        ],
        'Sale lines.',
      ),
      extras(
        ', and under "items" one object per sale line with the fields of that line the schema does not name',
      ),
      ...SYS,
    ],
    partitionBy: 'SYS_DATE_CREATE',
  },
  products: {
    dataset: 'raw',
    name: 'products',
    description: 'Products as received from the Retail API (full refresh files). Append only.',
    fields: [
      f('product_sku', 'STRING', `Product SKU, ${RAW_NOTE}.`),
      f('description', 'STRING', `Description, ${RAW_NOTE}.`),
      f('unit_amount', 'STRING', `List price of one unit, ${RAW_NOTE}.`),
      f('supplier', 'STRING', `Supplier, ${RAW_NOTE}.`),
      extras(),
      ...SYS,
    ],
    partitionBy: 'SYS_DATE_CREATE',
  },
  customers: {
    dataset: 'raw',
    name: 'customers',
    description: 'Customers as received from the Retail API (full refresh files). Append only.',
    fields: [
      f('customer_id', 'STRING', `Customer id, ${RAW_NOTE}.`),
      f('emails', 'STRING', `E-mail addresses, ${RAW_NOTE}.`, 'REPEATED'),
      f('phone_numbers', 'STRING', `Phone numbers, ${RAW_NOTE}.`, 'REPEATED'),
      extras(),
      ...SYS,
    ],
    partitionBy: 'SYS_DATE_CREATE',
  },
} as const satisfies Record<string, Table>;

const ODS_CURRENT = {
  sales: {
    dataset: 'ods',
    name: 'sales',
    description: 'Typed, deduplicated sales: one row per id, the most recently loaded version.',
    fields: [
      f('id', 'INT64', 'Sale id.', 'REQUIRED'),
      f('datetime', 'DATETIME', 'Sale time in UTC.'),
      f('total_amount', 'NUMERIC', 'Sale total.'),
      f('customer_id', 'STRING', 'Customer id.'),
      struct(
        'items',
        [
          f('product_sku', 'STRING', 'Product SKU.'),
          f('quantity', 'INT64', 'Units.'),
          f('amount', 'NUMERIC', 'Amount paid for the line (all units).'),
        ],
        'Sale lines as received (a SKU may appear on several lines).',
      ),
      ...SYS,
    ],
    partitionBy: 'datetime',
    clusterBy: ['id'],
    key: ['id'],
  },
  products: {
    dataset: 'ods',
    name: 'products',
    description: 'Typed products: one row per SKU, the most recently loaded version. Never deleted.',
    fields: [
      f('product_sku', 'STRING', 'Product SKU.', 'REQUIRED'),
      f('description', 'STRING', 'Description.'),
      f('unit_amount', 'NUMERIC', 'List price of one unit.'),
      f('supplier', 'STRING', 'Supplier.'),
      ...SYS,
    ],
    clusterBy: ['product_sku'],
    key: ['product_sku'],
  },
  customers: {
    dataset: 'ods',
    name: 'customers',
    description: 'Typed customers: one row per customer id, the most recently loaded version. Never deleted.',
    fields: [
      f('customer_id', 'STRING', 'Customer id.', 'REQUIRED'),
      f('emails', 'STRING', 'E-mail addresses.', 'REPEATED'),
      f('phone_numbers', 'STRING', 'Phone numbers.', 'REPEATED'),
      ...SYS,
    ],
    clusterBy: ['customer_id'],
    key: ['customer_id'],
  },
  rejects: {
    dataset: 'ods',
    name: 'rejects',
    description:
      'Records that broke a typing rule or lacked their key, with the reason. Nothing is dropped silently.',
    fields: [
      f('entity', 'STRING', 'sales, products or customers.', 'REQUIRED'),
      f('record_key', 'STRING', 'The business key as received, as text (NULL when missing).'),
      f('reason', 'STRING', 'The first rule the record broke.', 'REQUIRED'),
      f('SYS_FILE_NAME', 'STRING', 'The object name the record came from.', 'REQUIRED'),
      f('SYS_DATE_CREATE', 'TIMESTAMP', 'When its file was loaded into raw.', 'REQUIRED'),
      f('record', 'JSON', 'The raw row (API fields as received).'),
    ],
    partitionBy: 'SYS_DATE_CREATE',
    clusterBy: ['entity'],
  },
} as const satisfies Record<string, Table>;

/**
 * The history (SCD2) of an ODS table: its business columns, SYS_ columns that date the version
 * (the load of the file that first carried it), and its validity interval.
 */
function historyOf(table: Table, what: string): Table {
  return {
    dataset: table.dataset,
    name: `${table.name}_history`,
    description: `Every version of every ${what} (SCD2): a new version only when a value changes, valid from the load of the file that first carried it.`,
    fields: [
      ...table.fields.filter((field) => !field.name.startsWith('SYS_')),
      f(
        'SYS_DATE_CREATE',
        'TIMESTAMP',
        'When the file that first carried this version was loaded.',
        'REQUIRED',
      ),
      f('SYS_FILE_NAME', 'STRING', 'The object name of that file.', 'REQUIRED'),
      f('valid_from', 'TIMESTAMP', 'Start of validity (= SYS_DATE_CREATE), inclusive.', 'REQUIRED'),
      f(
        'valid_to',
        'TIMESTAMP',
        "End of validity, exclusive: the next version's valid_from; NULL for the current version.",
      ),
    ],
    ...(table.clusterBy ? { clusterBy: table.clusterBy } : {}),
    key: [...(table.key ?? []), 'valid_from'],
  };
}

const { rejects: ODS_REJECTS, ...ODS_ENTITY_TABLES } = ODS_CURRENT;

export const ODS_TABLES = {
  ...ODS_ENTITY_TABLES,
  products_history: historyOf(ODS_CURRENT.products, 'product'),
  customers_history: historyOf(ODS_CURRENT.customers, 'customer'),
  rejects: ODS_REJECTS,
} as const satisfies Record<string, Table>;

export const DMT_TABLES = {
  sales_items: {
    dataset: 'dmt',
    name: 'sales_items',
    description:
      'One row per (sale, product SKU) whose product and customer are known; follows ods (a changed sale replaces its rows, a changed product updates its rows).',
    fields: [
      f('id', 'STRING', 'CAST(sale id AS STRING) || "-" || product_sku.', 'REQUIRED'),
      f('sales_datetime', 'DATETIME', 'The sale time (UTC).'),
      f('item_amount', 'NUMERIC', 'Amount of all lines of this SKU in the sale, summed.'),
      f('product_sku', 'STRING', 'Product SKU.'),
      f('item_quantity', 'INT64', 'Units of all lines of this SKU in the sale, summed.'),
      f('product_description', 'STRING', 'ods.products.description.'),
      f(
        'discount_perc',
        'NUMERIC',
        'ROUND(100 * (1 - item_amount / (unit_amount * item_quantity)), 2); NULL when unit_amount * item_quantity is 0; negative above list price.',
      ),
      f('sale_id', 'INT64', 'Sale id (ods.sales.id).', 'REQUIRED'),
      f('customer_id', 'STRING', "The sale's customer id."),
    ],
    partitionBy: 'sales_datetime',
    clusterBy: ['product_sku'],
    key: ['id'],
  },
  sales_items_orphans: {
    dataset: 'dmt',
    name: 'sales_items_orphans',
    description: 'Sale lines waiting for their product or customer; moved into sales_items when it arrives.',
    fields: [
      f('sale_id', 'INT64', 'Sale id.', 'REQUIRED'),
      f('product_sku', 'STRING', 'Product SKU.', 'REQUIRED'),
      f('customer_id', 'STRING', "The sale's customer id."),
      f('reason', 'STRING', 'missing_product (checked first) or missing_customer.', 'REQUIRED'),
      f('first_seen', 'TIMESTAMP', 'When the line was first found orphaned.', 'REQUIRED'),
      f('sales_datetime', 'DATETIME', 'The sale time (UTC).'),
    ],
    key: ['sale_id', 'product_sku'],
  },
} as const satisfies Record<string, Table>;

export const OPS_TABLES = {
  loads: {
    dataset: 'ops',
    name: 'loads',
    description:
      'One row per file loaded into raw (object name + generation): the load ledger that makes loading idempotent.',
    fields: [
      f(
        'load_id',
        'STRING',
        '{object name}#{generation}: the same object delivered twice is loaded once.',
        'REQUIRED',
      ),
      f('entity', 'STRING', 'sales, products or customers.', 'REQUIRED'),
      f(
        'object_name',
        'STRING',
        'The object name as it arrived in {entity}/in/ (= raw SYS_FILE_NAME).',
        'REQUIRED',
      ),
      f('generation', 'STRING', 'The object generation that was loaded.', 'REQUIRED'),
      f('loaded_at', 'TIMESTAMP', 'The load time (= raw SYS_DATE_CREATE of its rows).', 'REQUIRED'),
      f('row_count', 'INT64', 'Rows appended to raw.', 'REQUIRED'),
      f('max_sale_id', 'INT64', 'Sales: the largest valid id in the file; where the next extract starts.'),
      f('merged_at', 'TIMESTAMP', 'When its rows were merged into ods (NULL: not yet).'),
      f('mart_at', 'TIMESTAMP', 'When the mart merge carried its changes into dmt (NULL: not yet).'),
    ],
    partitionBy: 'loaded_at',
    clusterBy: ['entity'],
  },
  files: {
    dataset: 'ops',
    name: 'files',
    description: 'How each file that entered {entity}/in/ was settled: archived or failed (with the reason).',
    fields: [
      f('object_name', 'STRING', 'The object name in {entity}/in/.', 'REQUIRED'),
      f('generation', 'STRING', 'Its generation.', 'REQUIRED'),
      f('entity', 'STRING', 'sales, products or customers.', 'REQUIRED'),
      f('state', 'STRING', 'archived or failed.', 'REQUIRED'),
      f('settled_object', 'STRING', 'Where it is now (archive/... or failed/...).', 'REQUIRED'),
      f('row_count', 'INT64', 'Rows loaded (archived files).'),
      f('reason', 'STRING', 'Why it failed (failed files).'),
      f('settled_at', 'TIMESTAMP', 'When it was settled.', 'REQUIRED'),
    ],
    partitionBy: 'settled_at',
  },
  merges: {
    dataset: 'ops',
    name: 'merges',
    description: 'One row per merge step run (raw -> ods, ods -> dmt) with its row counts.',
    fields: [
      f('merge_id', 'STRING', 'The workflow run id.', 'REQUIRED'),
      f('entity', 'STRING', 'The entity whose file triggered the merge.', 'REQUIRED'),
      f('step', 'STRING', 'The SQL step (file name).', 'REQUIRED'),
      f('started_at', 'TIMESTAMP', 'Start.', 'REQUIRED'),
      f('finished_at', 'TIMESTAMP', 'End.', 'REQUIRED'),
      f('counts', 'JSON', 'Row counts reported by the step.'),
    ],
    partitionBy: 'started_at',
  },
  mart_queue: {
    dataset: 'ops',
    name: 'mart_queue',
    description:
      'Keys changed in ods and not yet carried into dmt: written by the ods merges, consumed by the mart merge in the same transaction that applies them.',
    fields: [
      f('entity', 'STRING', 'sales, products or customers.', 'REQUIRED'),
      f(
        'change_key',
        'STRING',
        'The business key that changed (sale id as text, product SKU, customer id).',
        'REQUIRED',
      ),
      f(
        'sales_datetime',
        'DATETIME',
        'Sales: a sale time whose mart rows the change touches (the new one, and the old one when it moved).',
      ),
      f('queued_at', 'TIMESTAMP', 'When the ods merge queued it.', 'REQUIRED'),
    ],
  },
  schema_fields: {
    dataset: 'ops',
    name: 'schema_fields',
    description:
      'Fields the API sent that the raw schema does not name (kept in raw extras), one row per entity and field path, with the file that first carried it.',
    fields: [
      f('entity', 'STRING', 'sales, products or customers.', 'REQUIRED'),
      f('field', 'STRING', 'The field path, e.g. loyalty_tier or items[].discount_code.', 'REQUIRED'),
      f('first_seen', 'TIMESTAMP', 'Load time of the first file that carried it.', 'REQUIRED'),
      f('first_object', 'STRING', 'That file (object name in {entity}/in/).', 'REQUIRED'),
    ],
    key: ['entity', 'field'],
  },
  connector_runs: {
    dataset: 'ops',
    name: 'connector_runs',
    description: 'One row per connector run (extract of one entity).',
    fields: [
      f('run_id', 'STRING', 'Run id (also the staging folder name).', 'REQUIRED'),
      f('entity', 'STRING', 'sales, products or customers.', 'REQUIRED'),
      f('finished_at', 'TIMESTAMP', 'When it finished.', 'REQUIRED'),
      f('resumed', 'BOOL', 'Whether it continued a crashed run.', 'REQUIRED'),
      f('start_sales_id', 'INT64', 'Sales: the first id asked for.'),
      f('pages_fetched', 'INT64', 'Pages requested by this invocation.', 'REQUIRED'),
      f('pages_reused', 'INT64', 'Pages made durable by a crashed invocation and reused.', 'REQUIRED'),
      f('records', 'INT64', 'Records written into files.', 'REQUIRED'),
      f('files', 'STRING', 'Files published into {entity}/in/.', 'REPEATED'),
    ],
    partitionBy: 'finished_at',
  },
} as const satisfies Record<string, Table>;

export interface View {
  readonly dataset: Dataset;
  readonly name: string;
  readonly description: string;
  readonly fields: readonly Field[];
  /** Its query: sql/bigquery/{sqlFile}.sql in production, sql/duckdb/{sqlFile}.sql locally. */
  readonly sqlFile: string;
}

export const VIEWS: readonly View[] = [
  {
    dataset: 'dmt',
    name: 'sales_items_list_price',
    description:
      "dmt.sales_items with the product's list price and description at the sale's time (from ods.products_history): the list price on the day of the sale.",
    fields: [
      ...DMT_TABLES.sales_items.fields.map((field) => ({ ...field, mode: 'NULLABLE' as const })),
      f(
        'list_unit_amount',
        'NUMERIC',
        "The product's unit_amount in the version valid at the sale's time (NULL: none known yet then).",
      ),
      f('list_description', 'STRING', "The product's description in that version."),
      f('list_valid_from', 'TIMESTAMP', 'Since when that version was valid (its load).'),
    ],
    sqlFile: 'view_sales_items_list_price',
  },
];

export const ALL_TABLES: readonly Table[] = [
  ...Object.values(RAW_TABLES),
  ...Object.values(ODS_TABLES),
  ...Object.values(DMT_TABLES),
  ...Object.values(OPS_TABLES),
];

/** The API fields of a raw table (everything but the SYS_ columns). */
export function apiFields(table: Table): readonly Field[] {
  return table.fields.filter((field) => !field.name.startsWith('SYS_'));
}

// ---- rendering ------------------------------------------------------------------------------

const DUCKDB_TYPES: Record<ScalarType, string> = {
  STRING: 'VARCHAR',
  INT64: 'BIGINT',
  NUMERIC: 'DECIMAL(38,9)',
  DATETIME: 'TIMESTAMP',
  TIMESTAMP: 'TIMESTAMPTZ',
  JSON: 'JSON',
  BOOL: 'BOOLEAN',
};

/** The DuckDB type of a field (a REPEATED field is a list). */
export function duckDbType(field: Field): string {
  const base =
    field.type === 'STRUCT'
      ? `STRUCT(${(field.fields ?? []).map((s) => `${quoteIdent(s.name)} ${duckDbType(s)}`).join(', ')})`
      : DUCKDB_TYPES[field.type];
  return field.mode === 'REPEATED' ? `${base}[]` : base;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function duckDbDdl(table: Table): string {
  const columns = table.fields.map(
    (field) =>
      `  ${quoteIdent(field.name)} ${duckDbType(field)}${field.mode === 'REQUIRED' ? ' NOT NULL' : ''}`,
  );
  return `CREATE TABLE IF NOT EXISTS ${table.dataset}.${table.name} (\n${columns.join(',\n')}\n);`;
}

/** A field as the BigQuery API (and the Terraform google provider) takes it. */
export interface BigQueryField {
  name: string;
  type: string;
  mode: Field['mode'];
  description: string;
  fields?: BigQueryField[];
}

const BIGQUERY_TYPES: Record<ScalarType | 'STRUCT', string> = {
  STRING: 'STRING',
  INT64: 'INTEGER',
  NUMERIC: 'NUMERIC',
  DATETIME: 'DATETIME',
  TIMESTAMP: 'TIMESTAMP',
  JSON: 'JSON',
  BOOL: 'BOOLEAN',
  STRUCT: 'RECORD',
};

export function bigQuerySchema(fields: readonly Field[]): BigQueryField[] {
  return fields.map((field) => ({
    name: field.name,
    type: BIGQUERY_TYPES[field.type],
    mode: field.mode,
    description: field.description,
    ...(field.fields ? { fields: bigQuerySchema(field.fields) } : {}),
  }));
}

/** The GoogleSQL type of a field, e.g. `ARRAY<STRUCT<product_sku STRING, quantity INT64>>`. */
export function googleSqlType(field: Field): string {
  const base =
    field.type === 'STRUCT'
      ? `STRUCT<${(field.fields ?? []).map((s) => `${s.name} ${googleSqlType(s)}`).join(', ')}>`
      : field.type;
  return field.mode === 'REPEATED' ? `ARRAY<${base}>` : base;
}
