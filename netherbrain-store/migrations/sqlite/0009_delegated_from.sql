-- Version 9: a subagent's conversation records the run that delegated it
-- (the `delegate` tool), in server-owned columns.
ALTER TABLE conversations ADD COLUMN delegated_from_conversation_id BLOB;
ALTER TABLE conversations ADD COLUMN delegated_from_session_id BLOB;
