import { BigqueryDataset } from '@cdktf/provider-google/lib/bigquery-dataset/index.js';
import { BigqueryTable } from '@cdktf/provider-google/lib/bigquery-table/index.js';
import { Construct } from 'constructs';
import { ALL_TABLES, bigQuerySchema, DATASETS, type Dataset } from '../../functions/core/schema.js';

export interface WarehouseProps {
  readonly location: string;
  readonly deletionProtection: boolean;
  /** Labels every dataset: which environment of the pipeline owns this project's datasets. */
  readonly environment: string;
}

const DATASET_DESCRIPTIONS: Record<Dataset, string> = {
  raw: 'Files as loaded: every API field as text, append only, partitioned by load day.',
  ods: 'Typed, deduplicated business entities (latest load wins) and the rejects.',
  dmt: 'What analysts query: sales_items and its orphans.',
  ops: "The pipeline's own bookkeeping: loads, files, merges, connector runs.",
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
    this.tables = tables;
  }
}
