-- Records one merge step and its counts in ops.merges (GoogleSQL; the DuckDB twin is
-- sql/duckdb/record_merge_step.sql). Parameters: @run_id, @entity, @step, @started_at, @now, @counts.
-- Bytes scanned: none (an INSERT of one row).
INSERT INTO ops.merges (merge_id, entity, step, started_at, finished_at, counts)
VALUES (@run_id, @entity, @step, @started_at, @now, PARSE_JSON(@counts));
