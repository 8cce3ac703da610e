-- 004_spans down: drop everything 004_spans.up.sql created.  Dropping the
-- partitioned table drops all of its partitions (spans_YYYYMMDD).

DROP FUNCTION depsera_ensure_span_partition(date);
DROP TABLE spans;
DROP TABLE span_resources;
