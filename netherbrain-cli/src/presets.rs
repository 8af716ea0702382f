//! `netherbrain presets import | list`.

use anyhow::{Context, Result, bail};

use crate::cli::PresetsCommand;
use crate::config::{PresetDoc, Settings, parse_presets};
use crate::local::{import_action, import_presets, open_prepared};

pub(crate) async fn run(settings: &Settings, command: PresetsCommand) -> Result<()> {
    match command {
        PresetsCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let docs = parse_presets(&text).with_context(|| file.display().to_string())?;
            check_profiles(&docs, settings)?;
            let store = open_prepared(settings).await?;
            for item in import_presets(store, &docs).await? {
                println!(
                    "{} preset {} ({})",
                    import_action(item.action),
                    item.preset.name,
                    item.preset.id
                );
            }
            Ok(())
        }
        PresetsCommand::List => {
            let store = open_prepared(settings).await?;
            let presets = store.list_presets().await?;
            if presets.is_empty() {
                eprintln!("no presets; add some with `netherbrain presets import FILE`");
                return Ok(());
            }
            println!("{:<24} {:<36} {:<12} MODEL", "NAME", "ID", "PROFILE");
            for p in presets {
                println!(
                    "{:<24} {:<36} {:<12} {}",
                    p.name, p.id, p.config.profile, p.config.model
                );
            }
            Ok(())
        }
    }
}

/// Every preset must name a configured provider profile.
pub(crate) fn check_profiles(docs: &[PresetDoc], settings: &Settings) -> Result<()> {
    let names = settings.profile_names();
    for doc in docs {
        if !names.contains(&doc.config.profile.as_str()) {
            let configured = if names.is_empty() {
                "none are configured: add [[providers]] to the config file or set OPENAI_API_KEY / ANTHROPIC_API_KEY".to_owned()
            } else {
                format!("configured: {}", names.join(", "))
            };
            bail!(
                "preset `{}` uses provider profile `{}`, which is not configured ({configured})",
                doc.name,
                doc.config.profile
            );
        }
    }
    Ok(())
}
