//! `netherbrain db upgrade | current | history`.

use anyhow::{Result, anyhow};
use netherbrain_store::migrate::{self, MigrationInfo};

use crate::cli::DbCommand;
use crate::config::{Settings, redact_url};

fn describe(m: &MigrationInfo) -> String {
    match m.applied_at {
        Some(at) => format!(
            "{:>4}  {}  (applied {})",
            m.version,
            m.description,
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => format!("{:>4}  {}  (pending)", m.version, m.description),
    }
}

pub(crate) async fn run(settings: &Settings, command: DbCommand) -> Result<()> {
    let url = settings.database_url.as_str();
    let shown = redact_url(url);
    let err = |e: netherbrain_store::StoreError| anyhow!("database {shown}: {e}");
    match command {
        DbCommand::Upgrade => {
            let applied = migrate::upgrade(url).await.map_err(err)?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!("applied {} migration(s):", applied.len());
                for m in &applied {
                    println!("{}", describe(m));
                }
            }
            if let Some(m) = migrate::current(url).await.map_err(err)? {
                println!("current version: {} ({})", m.version, m.description);
            }
        }
        DbCommand::Current => match migrate::current(url).await.map_err(err)? {
            Some(m) => println!("{}", describe(&m)),
            None => println!("no migrations applied (run `netherbrain db upgrade`)"),
        },
        DbCommand::History => {
            for m in migrate::history(url).await.map_err(err)? {
                println!("{}", describe(&m));
            }
        }
    }
    Ok(())
}
