//! `netherbrain keys create | list | revoke` against the local database.

use anyhow::{Result, anyhow};
use chrono::Utc;
use netherbrain_core::auth::{self, AuthError, IssueKey, Principal};
use netherbrain_core::store::StoreError;

use crate::cli::KeysCommand;
use crate::config::Settings;
use crate::local::{admin_user, open_prepared, resolve_user};

pub(crate) async fn run(settings: &Settings, command: KeysCommand) -> Result<()> {
    let store = open_prepared(settings).await?;
    match command {
        KeysCommand::Create {
            name,
            user,
            expires_in,
        } => {
            let user = resolve_user(store.as_ref(), user.as_deref()).await?;
            let admin = Principal::of(&admin_user(store.as_ref()).await?);
            let expires_at = expires_in.map(|d| Utc::now() + d);
            let created = auth::issue_api_key(
                store.as_ref(),
                &admin,
                IssueKey::new(name).for_user(user.id).expires_at(expires_at),
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
            let expiry = created.key.expires_at.map_or_else(
                || "never expires".to_owned(),
                |at| format!("expires {}", at.format("%Y-%m-%d %H:%M UTC")),
            );
            eprintln!(
                "created key `{}` ({}) for {}; {expiry}. The token below is shown only once:",
                created.key.name, created.key.id, user.username
            );
            println!("{}", created.secret());
        }
        KeysCommand::List { user } => {
            let user = resolve_user(store.as_ref(), user.as_deref()).await?;
            let keys = store.list_api_keys(user.id).await?;
            if keys.is_empty() {
                eprintln!("{} has no API keys", user.username);
                return Ok(());
            }
            let now = Utc::now();
            println!(
                "{:<36} {:<20} {:<14} {:<17} {:<17} STATUS",
                "ID", "NAME", "PREFIX", "CREATED", "EXPIRES"
            );
            for k in keys {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|at| at <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<36} {:<20} {:<14} {:<17} {:<17} {status}",
                    k.id.to_string(),
                    k.name,
                    k.prefix,
                    k.created_at.format("%Y-%m-%d %H:%M"),
                    k.expires_at.map_or_else(
                        || "never".to_owned(),
                        |at| at.format("%Y-%m-%d %H:%M").to_string()
                    ),
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let key = store.revoke_api_key(id.into()).await.map_err(|e| match e {
                e if e.is_not_found() => anyhow!("no API key with id {id}"),
                StoreError::Conflict(_) => anyhow!("API key {id} is already revoked"),
                e => anyhow!(AuthError::from(e)),
            })?;
            println!("revoked key `{}` ({})", key.name, key.id);
        }
    }
    Ok(())
}
