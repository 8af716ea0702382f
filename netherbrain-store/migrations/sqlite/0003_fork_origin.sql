-- Version 3: a fork's origin is a server-owned column, no longer the
-- user-writable `forked_from` metadata key.
ALTER TABLE conversations ADD COLUMN forked_from_conversation_id BLOB;
ALTER TABLE conversations ADD COLUMN forked_from_session_id BLOB;

-- Forks recorded by earlier versions keep their origin only where the
-- forked session belongs to a conversation of the same owner; anything
-- else in that key was written by a user and is dropped.
UPDATE conversations
SET forked_from_session_id = s.id,
    forked_from_conversation_id = s.conversation_id
FROM sessions s
JOIN conversations src ON src.id = s.conversation_id
WHERE json_type(conversations.metadata, '$.forked_from.session_id') = 'text'
  AND s.id = unhex(replace(json_extract(conversations.metadata, '$.forked_from.session_id'), '-', ''))
  AND src.owner_id = conversations.owner_id;

UPDATE conversations
SET metadata = json_remove(metadata, '$.forked_from')
WHERE json_type(metadata, '$.forked_from') IS NOT NULL;
