//! Pieces shared by the SQLite and Postgres backends: error mapping, time
//! handling and turning rows into records.

use chrono::{DateTime, Utc};
use netherbrain_core::store::{StoreError, StoreResult};
use serde_json::{Map, Value};

/// Current time truncated to whole microseconds, the precision both
/// backends store, so values read back equal what a `create_*` returned.
pub(crate) fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// Truncates a time to whole microseconds.
pub(crate) fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// Microseconds since the epoch (SQLite storage format).
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// Back from microseconds.
pub(crate) fn from_micros(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Backend(format!("timestamp out of range: {v}")))
}

/// Serialises a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("not serialisable: {e}")))
}

/// Builds a record from a JSON object of its fields. Records are
/// `#[non_exhaustive]`, so outside core they are built through their
/// `Deserialize` impls.
pub(crate) fn record<T: serde::de::DeserializeOwned>(
    entity: &str,
    fields: Map<String, Value>,
) -> Result<T, StoreError> {
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| StoreError::Backend(format!("corrupt {entity} row: {e}")))
}

/// Parses a stored JSON document.
pub(crate) fn parse_json(column: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("corrupt JSON in column {column}: {e}")))
}

/// Converts an event sequence number for storage.
pub(crate) fn seq_to_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Invalid(format!("sequence number {seq} too large")))
}

/// Bytes of a message's text that search indexes: the start of a giant
/// answer is enough to find it, and indexing all of it would cost memory
/// in SQLite's tokenizer and exceed Postgres' 1 MB `tsvector` limit, which
/// would refuse the whole turn.
pub(crate) const SEARCH_TEXT_BYTES: usize = 64 * 1024;

/// Searchable text of a message: its text parts separated by spaces, NUL
/// characters removed, at most [`SEARCH_TEXT_BYTES`] (cut at a character
/// boundary).
pub(crate) fn search_text(message: &netherbrain_core::Message) -> String {
    let mut out = String::new();
    for part in message
        .content
        .iter()
        .filter_map(netherbrain_core::ContentPart::as_text)
    {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in part.chars().filter(|c| *c != '\0') {
            if out.len() + c.len_utf8() > SEARCH_TEXT_BYTES {
                return out;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod search_text_tests {
    use netherbrain_core::{ContentPart, Message};

    use super::{SEARCH_TEXT_BYTES, search_text};

    #[test]
    fn parts_are_joined_without_nul_and_bounded() {
        let mut m = Message::user("a\0b");
        m.content.push(ContentPart::text("c"));
        assert_eq!(search_text(&m), "ab c");
        let huge = Message::user("é".repeat(SEARCH_TEXT_BYTES));
        let text = search_text(&huge);
        assert!(text.len() <= SEARCH_TEXT_BYTES && text.len() > SEARCH_TEXT_BYTES - 2);
        assert!(text.chars().all(|c| c == 'é'));
    }
}

/// What went wrong in a database call, in backend-neutral terms.
#[derive(Debug)]
pub(crate) enum DbFailure {
    /// A unique index or primary key was violated; the text names the
    /// constraint (Postgres) or the columns (SQLite).
    Unique(String),
    /// A foreign key was violated.
    ForeignKey(String),
    /// Anything else, already mapped.
    Other(StoreError),
}

/// Classifies a sqlx error. The single place where driver errors become
/// [`StoreError`]s.
pub(crate) fn classify(err: sqlx::Error) -> DbFailure {
    use sqlx::error::ErrorKind;
    match err {
        sqlx::Error::Database(db) => {
            let detail = db
                .constraint()
                .map_or_else(|| db.message().to_owned(), str::to_owned);
            match db.kind() {
                ErrorKind::UniqueViolation => DbFailure::Unique(detail),
                ErrorKind::ForeignKeyViolation => DbFailure::ForeignKey(detail),
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    DbFailure::Other(StoreError::Invalid(db.message().to_owned()))
                }
                _ => {
                    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                    DbFailure::Other(match code.as_str() {
                        // SQLite: SQLITE_BUSY / SQLITE_LOCKED (and extended codes).
                        c if sqlite_code(c, &[5, 6]) => {
                            StoreError::Unavailable(format!("database busy: {}", db.message()))
                        }
                        // SQLite: SQLITE_FULL, SQLITE_IOERR (and extended codes).
                        c if sqlite_code(c, &[13]) => {
                            StoreError::OutOfSpace(db.message().to_owned())
                        }
                        c if sqlite_code(c, &[10]) => {
                            StoreError::Unavailable(format!("database I/O: {}", db.message()))
                        }
                        // Postgres: disk full, out of memory.
                        "53100" => StoreError::OutOfSpace(db.message().to_owned()),
                        "53200" => StoreError::Unavailable(db.message().to_owned()),
                        // Postgres: bad text/JSON input (NUL characters, bad encoding),
                        // value too long, numeric out of range.
                        "22P05" | "22021" | "22001" | "22003" | "22P02" | "54000" => {
                            StoreError::Invalid(db.message().to_owned())
                        }
                        // Postgres: serialisation failure, deadlock, too many connections,
                        // cannot connect now, admin shutdown.
                        "40001" | "40P01" | "53300" | "57P03" | "57P01" | "57P02" => {
                            StoreError::Unavailable(db.message().to_owned())
                        }
                        c if c.starts_with("08") => {
                            StoreError::Unavailable(db.message().to_owned())
                        }
                        _ => StoreError::Backend(db.message().to_owned()),
                    })
                }
            }
        }
        sqlx::Error::PoolTimedOut => DbFailure::Other(StoreError::Unavailable(
            "timed out waiting for a database connection".into(),
        )),
        sqlx::Error::PoolClosed => {
            DbFailure::Other(StoreError::Unavailable("database pool closed".into()))
        }
        sqlx::Error::Io(e) => {
            DbFailure::Other(StoreError::Unavailable(format!("database I/O: {e}")))
        }
        sqlx::Error::Tls(e) => {
            DbFailure::Other(StoreError::Unavailable(format!("database TLS: {e}")))
        }
        sqlx::Error::WorkerCrashed => {
            DbFailure::Other(StoreError::Unavailable("database worker crashed".into()))
        }
        sqlx::Error::Configuration(e) => {
            DbFailure::Other(StoreError::Invalid(format!("database configuration: {e}")))
        }
        sqlx::Error::RowNotFound => DbFailure::Other(StoreError::Backend("row not found".into())),
        other => DbFailure::Other(StoreError::Backend(other.to_string())),
    }
}

/// Whether a driver error code is a SQLite result code (a decimal number
/// of at most four digits; Postgres SQLSTATEs have five characters) whose
/// primary code is one of `primary`.
fn sqlite_code(code: &str, primary: &[i32]) -> bool {
    code.len() <= 4
        && code
            .parse::<i32>()
            .is_ok_and(|c| primary.contains(&(c & 0xff)))
}

/// Maps a sqlx error when no constraint violation is expected.
pub(crate) fn db_err(err: sqlx::Error) -> StoreError {
    match classify(err) {
        DbFailure::Unique(c) => StoreError::Conflict(format!("already exists ({c})")),
        DbFailure::ForeignKey(c) => StoreError::Conflict(format!("still referenced ({c})")),
        DbFailure::Other(e) => e,
    }
}

/// Maps a migration error.
pub(crate) fn migrate_err(err: sqlx::migrate::MigrateError) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::Execute(e) => db_err(e),
        other => StoreError::Backend(format!("migration failed: {other}")),
    }
}

/// Maps a write's result where a unique violation means `taken` (a name,
/// prefix or id already in use); a foreign-key violation is a conflict.
pub(crate) fn unique_or<T>(
    res: Result<T, sqlx::Error>,
    taken: impl FnOnce() -> StoreError,
) -> StoreResult<T> {
    match res.map_err(classify) {
        Ok(v) => Ok(v),
        Err(DbFailure::Unique(_)) => Err(taken()),
        Err(DbFailure::ForeignKey(c)) => {
            Err(StoreError::Conflict(format!("still referenced ({c})")))
        }
        Err(DbFailure::Other(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_are_told_from_sqlstates() {
        assert!(sqlite_code("5", &[5, 6]));
        assert!(sqlite_code("517", &[5, 6])); // SQLITE_BUSY_SNAPSHOT
        assert!(sqlite_code("13", &[13]));
        assert!(sqlite_code("1034", &[10])); // SQLITE_IOERR_FSYNC
        // Postgres 22021 (bad encoding) is 0x5605: not SQLITE_BUSY.
        assert!(!sqlite_code("22021", &[5, 6]));
        assert!(!sqlite_code("40001", &[5, 6, 10, 13]));
    }

    #[test]
    fn truncation_is_micros() {
        let t = Utc::now();
        let u = truncate(t);
        assert_eq!(from_micros(micros(u)).ok(), Some(u));
        assert_eq!(u.timestamp_subsec_nanos() % 1000, 0);
    }
}
