-- 006_pruner down: the record of the last retention run goes with its table.
DROP TABLE pruner_runs;
