//! Netherbrain state store backends (SQLite, Postgres) and blob storage.
