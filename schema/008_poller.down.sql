-- 008_poller down: the schedule is derived state (every service is due again after an up).
DROP TRIGGER services_poll_schedule_update ON services;
DROP TRIGGER services_poll_schedule_insert ON services;
DROP FUNCTION depsera_poll_schedule_sync();
DROP FUNCTION depsera_poll_host(text);
DROP INDEX idx_sph_service_time;
DROP TABLE poll_schedule;
