-- Version 10: provider profiles added from Settings (the web UI or the
-- API), beside the config file's. The API key is stored only sealed: an
-- AEAD ciphertext (tag included) and its nonce, encrypted with the key
-- file in the data directory, so the database alone holds no usable key.
CREATE TABLE provider_profiles (
    name               TEXT PRIMARY KEY NOT NULL,
    kind               TEXT NOT NULL,
    base_url           TEXT,
    models             TEXT NOT NULL,
    default_model      TEXT,
    headers            TEXT NOT NULL,
    api_key_ciphertext BLOB,
    api_key_nonce      BLOB,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CHECK ((api_key_ciphertext IS NULL) = (api_key_nonce IS NULL))
);
