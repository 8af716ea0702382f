-- Version 3: a fork's origin is a server-owned column, no longer the
-- user-writable `forked_from` metadata key.
ALTER TABLE conversations
    ADD COLUMN forked_from_conversation_id UUID,
    ADD COLUMN forked_from_session_id UUID;

-- Forks recorded by earlier versions keep their origin only where the
-- forked session belongs to a conversation of the same owner; anything
-- else in that key was written by a user and is dropped.
UPDATE conversations c
SET forked_from_session_id = s.id,
    forked_from_conversation_id = s.conversation_id
FROM sessions s
JOIN conversations src ON src.id = s.conversation_id
WHERE jsonb_typeof(c.metadata -> 'forked_from' -> 'session_id') = 'string'
  AND s.id = CASE
      WHEN (c.metadata -> 'forked_from' ->> 'session_id')
           ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
      THEN (c.metadata -> 'forked_from' ->> 'session_id')::uuid
  END
  AND src.owner_id = c.owner_id;

UPDATE conversations
SET metadata = metadata - 'forked_from'
WHERE metadata ? 'forked_from';
