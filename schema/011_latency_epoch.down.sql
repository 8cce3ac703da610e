-- 011_latency_epoch down: the triggers and their counter.
DROP TRIGGER latency_history_changed ON dependency_latency_history;
DROP TRIGGER latency_history_backdated ON dependency_latency_history;
DROP FUNCTION depsera_latency_history_epoch();
DROP TABLE latency_history_epoch;
