-- 001_core down: drop everything 001_core.up.sql created, dependents first.

DROP TABLE sessions;
DROP TABLE audit_log;
DROP TABLE app_settings;
DROP TABLE settings;
DROP TABLE services;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE users;
