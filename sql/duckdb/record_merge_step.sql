-- Records one merge step and its counts in ops.merges (DuckDB twin of
-- sql/bigquery/record_merge_step.sql). Parameters: $run_id, $entity, $step, $started_at, $now, $counts.
INSERT INTO ops.merges (merge_id, entity, step, started_at, finished_at, counts)
VALUES ($run_id, $entity, $step, CAST($started_at AS TIMESTAMPTZ), CAST($now AS TIMESTAMPTZ), CAST($counts AS JSON));
