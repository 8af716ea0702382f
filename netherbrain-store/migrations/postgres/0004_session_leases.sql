-- Version 4: a running session records the process that runs it and a
-- lease that process renews; only sessions whose lease expired are
-- recovered, so a second replica no longer interrupts the first one's runs.
ALTER TABLE sessions
    ADD COLUMN lease_owner TEXT,
    ADD COLUMN lease_expires_at TIMESTAMPTZ;
