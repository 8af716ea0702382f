-- Netherbrain schema, version 1 (Postgres).
-- Payload documents (messages, events, session input/usage) are `json`
-- (stored verbatim); documents that are queried are `jsonb`.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    role          TEXT NOT NULL,
    password_hash TEXT,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL UNIQUE,
    hash       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE presets (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    config      JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE workspaces (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    project_dirs JSONB NOT NULL,
    metadata     JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE conversations (
    id                UUID PRIMARY KEY,
    owner_id          UUID NOT NULL REFERENCES users (id),
    workspace_id      UUID REFERENCES workspaces (id),
    title             TEXT,
    summary           TEXT,
    default_preset_id UUID REFERENCES presets (id),
    metadata          JSONB NOT NULL,
    status            TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    last_activity_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX conversations_activity ON conversations (last_activity_at DESC, id DESC);
CREATE INDEX conversations_owner_activity ON conversations (owner_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_workspace ON conversations (workspace_id);
CREATE INDEX conversations_default_preset ON conversations (default_preset_id);
CREATE INDEX conversations_metadata ON conversations USING GIN (metadata jsonb_path_ops);
CREATE INDEX conversations_search ON conversations
    USING GIN (to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(summary, '')));

CREATE TABLE sessions (
    id                  UUID PRIMARY KEY,
    conversation_id     UUID NOT NULL REFERENCES conversations (id),
    parent_session_id   UUID REFERENCES sessions (id),
    status              TEXT NOT NULL,
    preset_id           UUID REFERENCES presets (id) ON DELETE SET NULL,
    input               JSON NOT NULL,
    final_message       TEXT,
    deferred_tool_calls JSON NOT NULL,
    usage               JSON NOT NULL,
    error               TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ
);
CREATE INDEX sessions_conversation ON sessions (conversation_id, created_at);
CREATE INDEX sessions_preset ON sessions (preset_id);
-- At most one active (created or running) session per conversation,
-- enforced by the database.
CREATE UNIQUE INDEX sessions_one_running ON sessions (conversation_id)
    WHERE status IN ('created', 'running');

CREATE TABLE session_messages (
    session_id      UUID NOT NULL REFERENCES sessions (id),
    seq             BIGINT NOT NULL,
    conversation_id UUID NOT NULL REFERENCES conversations (id),
    message         JSON NOT NULL,
    text            TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX session_messages_conversation ON session_messages (conversation_id);
CREATE INDEX session_messages_search ON session_messages USING GIN (to_tsvector('simple', text));

CREATE TABLE session_events (
    session_id UUID NOT NULL REFERENCES sessions (id),
    seq        BIGINT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    event      JSON NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE mailbox (
    id                UUID PRIMARY KEY,
    conversation_id   UUID NOT NULL REFERENCES conversations (id),
    source_session_id UUID REFERENCES sessions (id),
    content           JSON NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    delivered_at      TIMESTAMPTZ
);
CREATE INDEX mailbox_conversation ON mailbox (conversation_id, created_at);
