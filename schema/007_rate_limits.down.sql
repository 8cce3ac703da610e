-- 007_rate_limits down: limiter state is disposable.
DROP FUNCTION depsera_window_lease(text, text, bigint, bigint, bigint, bigint, bigint);
DROP FUNCTION depsera_bucket_lease(text, bigint, bigint, bigint, double precision);
DROP TABLE rate_limit_state;
