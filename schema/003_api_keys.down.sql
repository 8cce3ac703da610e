-- 003_api_keys down: drop everything 003_api_keys.up.sql created.

DROP TABLE api_key_usage_buckets;
DROP TABLE team_api_keys;
