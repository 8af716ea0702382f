-- Version 5: the chat gateway's records. A chat (channel + platform chat
-- id) is bound to a conversation, with the last delivered event so a
-- restarted gateway delivers what the chat missed; paired platform users
-- and the pending pairing requests of unknown users.
CREATE TABLE gateway_chats (
    channel              TEXT NOT NULL,
    chat_id              TEXT NOT NULL,
    user_id              BLOB NOT NULL REFERENCES users (id),
    conversation_id      BLOB NOT NULL REFERENCES conversations (id),
    preset_id            BLOB REFERENCES presets (id) ON DELETE SET NULL,
    delivered_session_id BLOB,
    delivered_seq        INTEGER NOT NULL DEFAULT 0,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (channel, chat_id)
);

CREATE TABLE gateway_identities (
    channel    TEXT NOT NULL,
    sender_id  TEXT NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel, sender_id)
);

CREATE TABLE gateway_pairings (
    code         TEXT PRIMARY KEY NOT NULL,
    channel      TEXT NOT NULL,
    sender_id    TEXT NOT NULL,
    display_name TEXT,
    chat_id      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    UNIQUE (channel, sender_id)
);
