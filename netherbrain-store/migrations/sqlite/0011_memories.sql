-- Version 11: users' long-term memories. Each records its owner, the
-- workspace it is limited to (none: every run of the user), where it came
-- from (conversation and session, kept as plain ids: the memory outlives
-- neither) and, when embeddings are configured, its embedding as a JSON
-- array. `pk` is the stable integer key of the external-content FTS5 index,
-- kept in sync by triggers like the conversation indexes.
CREATE TABLE memories (
    pk                     INTEGER PRIMARY KEY,
    id                     BLOB NOT NULL UNIQUE,
    user_id                BLOB NOT NULL REFERENCES users (id),
    workspace_id           BLOB,
    content                TEXT NOT NULL,
    source_conversation_id BLOB,
    source_session_id      BLOB,
    embedding              TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX memories_by_user ON memories (user_id, created_at);

CREATE VIRTUAL TABLE memory_fts USING fts5 (
    content,
    content = 'memories', content_rowid = 'pk',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memory_fts (rowid, content) VALUES (new.pk, new.content);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, content) VALUES ('delete', old.pk, old.content);
    INSERT INTO memory_fts (rowid, content) VALUES (new.pk, new.content);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, content) VALUES ('delete', old.pk, old.content);
END;
