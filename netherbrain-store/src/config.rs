//! Where data lives by default.

use std::path::PathBuf;

/// Environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "NETHER_DATA_DIR";
/// Environment variable holding the database URL.
pub const DATABASE_URL_ENV: &str = "NETHER_DATABASE_URL";

/// The data directory: `$NETHER_DATA_DIR`, else `$XDG_DATA_HOME/netherbrain`,
/// else `$HOME/.local/share/netherbrain`, else `./netherbrain-data`.
#[must_use]
pub fn default_data_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty(DATA_DIR_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        let xdg = PathBuf::from(xdg);
        // The XDG spec says relative paths are to be ignored.
        if xdg.is_absolute() {
            return xdg.join("netherbrain");
        }
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".local/share/netherbrain");
    }
    PathBuf::from("netherbrain-data")
}

/// The database URL: `$NETHER_DATABASE_URL`, else
/// `sqlite://<data dir>/netherbrain.db`.
#[must_use]
pub fn default_database_url() -> String {
    if let Some(url) = std::env::var_os(DATABASE_URL_ENV).filter(|v| !v.is_empty()) {
        return url.to_string_lossy().into_owned();
    }
    sqlite_url(&default_data_dir().join("netherbrain.db"))
}

/// A `sqlite://` URL for a file path.
pub(crate) fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}
