//! Where data lives by default.

use std::ffi::OsString;
use std::path::PathBuf;

/// Environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "NETHER_DATA_DIR";
/// Environment variable holding the database URL.
pub const DATABASE_URL_ENV: &str = "NETHER_DATABASE_URL";

/// The data directory: `$NETHER_DATA_DIR`, else the platform's data
/// directory for `netherbrain` (on Linux `$XDG_DATA_HOME/netherbrain`, else
/// `~/.local/share/netherbrain`, as the `directories` crate finds it),
/// else `./netherbrain-data`.
#[must_use]
pub fn default_data_dir() -> PathBuf {
    data_dir_from(&|name| std::env::var_os(name))
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn data_dir_from(get: Lookup<'_>) -> PathBuf {
    if let Some(dir) = get(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("", "", "netherbrain").map_or_else(
        || PathBuf::from("netherbrain-data"),
        |dirs| dirs.data_dir().to_owned(),
    )
}

/// The database URL: `$NETHER_DATABASE_URL`, else
/// `sqlite://<data dir>/netherbrain.db`.
#[must_use]
pub fn default_database_url() -> String {
    database_url_from(&|name| std::env::var_os(name))
}

fn database_url_from(get: Lookup<'_>) -> String {
    if let Some(url) = get(DATABASE_URL_ENV).filter(|v| !v.is_empty()) {
        return url.to_string_lossy().into_owned();
    }
    sqlite_url(&data_dir_from(get).join("netherbrain.db"))
}

/// A `sqlite://` URL for a file path.
pub(crate) fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn data_dir_precedence() {
        let get = env(&[(DATA_DIR_ENV, "/srv/nb")]);
        assert_eq!(data_dir_from(&get), PathBuf::from("/srv/nb"));
        // Unset or empty: the platform's directory for the application.
        let get = env(&[(DATA_DIR_ENV, "")]);
        assert!(data_dir_from(&get).ends_with("netherbrain"));
    }

    #[test]
    fn database_url_precedence() {
        let get = env(&[
            (DATABASE_URL_ENV, "postgres://db/nb"),
            (DATA_DIR_ENV, "/srv/nb"),
        ]);
        assert_eq!(database_url_from(&get), "postgres://db/nb");
        let get = env(&[(DATA_DIR_ENV, "/srv/nb")]);
        assert_eq!(database_url_from(&get), "sqlite:///srv/nb/netherbrain.db");
    }
}
