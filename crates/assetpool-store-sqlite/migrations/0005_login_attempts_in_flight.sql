-- Login attempts in flight: counted when an attempt is admitted (before its
-- password is checked), settled as a failure or taken back when it succeeds.
-- A real failure alone moves last_failure, so successful logins never keep a
-- counter's window open.
ALTER TABLE login_failures ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_failures ADD COLUMN last_attempt INTEGER NOT NULL DEFAULT 0;
