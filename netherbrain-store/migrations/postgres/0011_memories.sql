-- Version 11: users' long-term memories. Each records its owner, the
-- workspace it is limited to (none: every run of the user), where it came
-- from (conversation and session, kept as plain ids) and, when embeddings
-- are configured, its embedding as a JSON array (ranked in process, so
-- `pgvector` is never required). Full-text search uses a `tsvector`
-- expression index like the conversation search.
CREATE TABLE memories (
    id                     UUID PRIMARY KEY,
    user_id                UUID NOT NULL REFERENCES users (id),
    workspace_id           UUID,
    content                TEXT NOT NULL,
    source_conversation_id UUID,
    source_session_id      UUID,
    embedding              TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
CREATE INDEX memories_by_user ON memories (user_id, created_at);
CREATE INDEX memories_search ON memories USING GIN (to_tsvector('simple', content));
