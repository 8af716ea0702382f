-- Version 7: a password set by an admin (account creation, reset) is
-- temporary; the user must choose a new one before anything else.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
