-- 009_poll_requests down: pending manual polls are dropped with their table.
DROP TABLE poll_requests;
