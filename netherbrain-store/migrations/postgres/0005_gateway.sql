-- Version 5: the chat gateway's records. A chat (channel + platform chat
-- id) is bound to a conversation, with the last delivered event so a
-- restarted gateway delivers what the chat missed; paired platform users
-- and the pending pairing requests of unknown users.
CREATE TABLE gateway_chats (
    channel              TEXT NOT NULL,
    chat_id              TEXT NOT NULL,
    user_id              UUID NOT NULL REFERENCES users (id),
    conversation_id      UUID NOT NULL REFERENCES conversations (id),
    preset_id            UUID REFERENCES presets (id) ON DELETE SET NULL,
    delivered_session_id UUID,
    delivered_seq        BIGINT NOT NULL DEFAULT 0,
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, chat_id)
);

CREATE TABLE gateway_identities (
    channel    TEXT NOT NULL,
    sender_id  TEXT NOT NULL,
    user_id    UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, sender_id)
);

CREATE TABLE gateway_pairings (
    code         TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    sender_id    TEXT NOT NULL,
    display_name TEXT,
    chat_id      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (channel, sender_id)
);
