-- Version 2: find a session's children (forks, continuations) and a
-- conversation's undelivered mailbox entries without scanning.
CREATE INDEX sessions_parent ON sessions (parent_session_id);
CREATE INDEX mailbox_undelivered ON mailbox (conversation_id, created_at) WHERE delivered_at IS NULL;
