import { fileURLToPath } from 'node:url';
import { BigqueryDataset } from '@cdktf/provider-google/lib/bigquery-dataset/index.js';
import { BigqueryTable } from '@cdktf/provider-google/lib/bigquery-table/index.js';
import { Construct } from 'constructs';
import { bigQueryScript } from '../../functions/adapters/gcp/sql-files.js';
import { ALL_TABLES, bigQuerySchema, DATASETS, type Dataset, VIEWS } from '../../functions/core/schema.js';
import { splitStatements } from '../../functions/core/sql-script.js';

const BIGQUERY_SQL = fileURLToPath(new URL('../../sql/bigquery/', import.meta.url));

export interface WarehouseProps {
  readonly location: string;
  readonly deletionProtection: boolean;
  /** Labels every dataset: which environment of the pipeline owns this project's datasets. */
  readonly environment: string;
}

const DATASET_DESCRIPTIONS: Record<Dataset, string> = {
  raw: 'Files as loaded: every API field as text, append only, partitioned by load day.',
  ods: 'Typed, deduplicated business entities (latest load wins), their history (SCD2) and the rejects.',
  dmt: 'What analysts query: sales_items, its orphans, and the list-price view.',
  ops: "The pipeline's own bookkeeping: loads, files, merges, connector runs, the mart queue, new fields.",
};

/** The datasets raw, ods, dmt, ops and every table, from the schemas defined once in functions/core/schema.ts. */
export class Warehouse extends Construct {
  readonly datasets: Record<Dataset, BigqueryDataset>;
  /** Every table, by `dataset.name`. */
  readonly tables: Readonly<Record<string, BigqueryTable>>;

  constructor(scope: Construct, id: string, props: WarehouseProps) {
    super(scope, id);
    this.datasets = Object.fromEntries(
      DATASETS.map((name) => [
        name,
        new BigqueryDataset(this, `dataset-${name}`, {
          datasetId: name,
          location: props.location,
          description: DATASET_DESCRIPTIONS[name],
          deleteContentsOnDestroy: !props.deletionProtection,
          labels: { 'retail-pipeline-environment': props.environment },
        }),
      ]),
    ) as Record<Dataset, BigqueryDataset>;
    const tables: Record<string, BigqueryTable> = {};
    for (const table of ALL_TABLES) {
      tables[`${table.dataset}.${table.name}`] = new BigqueryTable(
        this,
        `table-${table.dataset}-${table.name}`,
        {
          datasetId: this.datasets[table.dataset].datasetId,
          tableId: table.name,
          description: table.description,
          schema: JSON.stringify(bigQuerySchema(table.fields)),
          deletionProtection: props.deletionProtection,
          ...(table.partitionBy ? { timePartitioning: { type: 'DAY', field: table.partitionBy } } : {}),
          ...(table.clusterBy ? { clustering: [...table.clusterBy] } : {}),
        },
      );
    }
    // A view runs with its reader's rights on the tables it reads
    // (https://cloud.google.com/bigquery/docs/views), so whoever may query a view is also granted
    // read on those tables (infra/stack.ts). Not an authorized view: that is an entry in the
    // dataset's access list, and the google_bigquery_dataset_iam_* resources the datasets' grants
    // use "remove any authorized view permissions from the dataset" and cannot be mixed with
    // google_bigquery_dataset_access
    // (https://registry.terraform.io/providers/hashicorp/google/latest/docs/resources/bigquery_dataset_iam).
    // A view must name its tables with their dataset and cannot take query parameters
    // (https://cloud.google.com/bigquery/docs/views#view_limitations).
    for (const view of VIEWS) {
      const [query] = splitStatements(bigQueryScript(BIGQUERY_SQL, `${view.sqlFile}.sql`));
      const created = new BigqueryTable(this, `view-${view.dataset}-${view.name}`, {
        datasetId: this.datasets[view.dataset].datasetId,
        tableId: view.name,
        description: view.description,
        // The provider's default for use_legacy_sql is legacy SQL (true); set it explicitly
        // (https://registry.terraform.io/providers/hashicorp/google/latest/docs/resources/bigquery_table).
        view: { query: query ?? '', useLegacySql: false },
        deletionProtection: false,
        dependsOn: Object.values(tables),
      });
      tables[`${view.dataset}.${view.name}`] = created;
    }
    this.tables = tables;
  }
}
