-- Netherbrain schema, version 1 (SQLite).
-- Ids are UUIDs stored as 16-byte BLOBs; times are INTEGER microseconds
-- since the Unix epoch (UTC); JSON documents are TEXT.

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    role          TEXT NOT NULL,
    password_hash TEXT,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL UNIQUE,
    hash       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE presets (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    config      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE workspaces (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    project_dirs TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- `pk` is a stable integer key for the external-content FTS index.
CREATE TABLE conversations (
    pk                INTEGER PRIMARY KEY,
    id                BLOB NOT NULL UNIQUE,
    owner_id          BLOB NOT NULL REFERENCES users (id),
    workspace_id      BLOB REFERENCES workspaces (id),
    title             TEXT,
    summary           TEXT,
    default_preset_id BLOB REFERENCES presets (id),
    metadata          TEXT NOT NULL,
    status            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_activity_at  INTEGER NOT NULL
);
CREATE INDEX conversations_activity ON conversations (last_activity_at DESC, id DESC);
CREATE INDEX conversations_owner_activity ON conversations (owner_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_workspace ON conversations (workspace_id);
CREATE INDEX conversations_default_preset ON conversations (default_preset_id);

CREATE TABLE sessions (
    id                  BLOB PRIMARY KEY NOT NULL,
    conversation_id     BLOB NOT NULL REFERENCES conversations (id),
    parent_session_id   BLOB REFERENCES sessions (id),
    status              TEXT NOT NULL,
    preset_id           BLOB REFERENCES presets (id) ON DELETE SET NULL,
    input               TEXT NOT NULL,
    final_message       TEXT,
    deferred_tool_calls TEXT NOT NULL,
    usage               TEXT NOT NULL,
    error               TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    finished_at         INTEGER
);
CREATE INDEX sessions_conversation ON sessions (conversation_id, created_at);
CREATE INDEX sessions_preset ON sessions (preset_id);
-- At most one active (created or running) session per conversation,
-- enforced by the database.
CREATE UNIQUE INDEX sessions_one_running ON sessions (conversation_id)
    WHERE status IN ('created', 'running');

CREATE TABLE session_messages (
    pk              INTEGER PRIMARY KEY,
    session_id      BLOB NOT NULL REFERENCES sessions (id),
    conversation_id BLOB NOT NULL REFERENCES conversations (id),
    seq             INTEGER NOT NULL,
    message         TEXT NOT NULL,
    text            TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE INDEX session_messages_conversation ON session_messages (conversation_id);

CREATE TABLE session_events (
    session_id BLOB NOT NULL REFERENCES sessions (id),
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;

CREATE TABLE mailbox (
    id                BLOB PRIMARY KEY NOT NULL,
    conversation_id   BLOB NOT NULL REFERENCES conversations (id),
    source_session_id BLOB REFERENCES sessions (id),
    content           TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    delivered_at      INTEGER
);
CREATE INDEX mailbox_conversation ON mailbox (conversation_id, created_at);

-- Full-text search: conversation titles and summaries, and message text,
-- as external-content FTS5 indexes kept in sync by triggers (so in the
-- same transaction as the write).
CREATE VIRTUAL TABLE conversation_fts USING fts5 (
    title, summary,
    content = 'conversations', content_rowid = 'pk',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversation_fts (rowid, title, summary) VALUES (new.pk, new.title, new.summary);
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title, summary ON conversations BEGIN
    INSERT INTO conversation_fts (conversation_fts, rowid, title, summary)
        VALUES ('delete', old.pk, old.title, old.summary);
    INSERT INTO conversation_fts (rowid, title, summary) VALUES (new.pk, new.title, new.summary);
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO conversation_fts (conversation_fts, rowid, title, summary)
        VALUES ('delete', old.pk, old.title, old.summary);
END;

CREATE VIRTUAL TABLE message_fts USING fts5 (
    text,
    content = 'session_messages', content_rowid = 'pk',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER session_messages_fts_insert AFTER INSERT ON session_messages BEGIN
    INSERT INTO message_fts (rowid, text) VALUES (new.pk, new.text);
END;
CREATE TRIGGER session_messages_fts_delete AFTER DELETE ON session_messages BEGIN
    INSERT INTO message_fts (message_fts, rowid, text) VALUES ('delete', old.pk, old.text);
END;
