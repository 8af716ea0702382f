-- Version 12: users' scheduled tasks. Each names its owner, a preset, a
-- prompt and optionally one target conversation (kept as a plain id: a
-- task whose conversation is gone records the error when it runs). The
-- schedule is JSON (`{"kind": "cron", ...}` or `{"kind": "every", ...}`).
-- `next_run_at` is the slot the next run is for: processes claim a slot by
-- moving it forward with a compare-and-set, so one slot runs once.
CREATE TABLE scheduled_tasks (
    id              UUID PRIMARY KEY,
    owner_id        UUID NOT NULL REFERENCES users (id),
    name            TEXT NOT NULL,
    schedule        TEXT NOT NULL,
    preset_id       UUID NOT NULL REFERENCES presets (id),
    prompt          TEXT NOT NULL,
    conversation_id UUID,
    catch_up        BOOLEAN NOT NULL,
    enabled         BOOLEAN NOT NULL,
    next_run_at     TIMESTAMPTZ NOT NULL,
    last_run_at     TIMESTAMPTZ,
    last_session_id UUID,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (owner_id, name)
);
CREATE INDEX scheduled_tasks_due ON scheduled_tasks (enabled, next_run_at);

-- Token budgets sum the usage of the sessions started since the day began.
CREATE INDEX sessions_by_created ON sessions (created_at);
