//! `config show`: the effective configuration as a config file, each value
//! annotated with its source, credentials redacted.

use netherbrain_core::provider::ProviderProfile;
use serde::Serialize;

use super::{PresetDoc, Settings};

/// A document of presets: `[[presets]]`, as `config show` writes it.
#[derive(Debug, Serialize)]
struct PresetsDoc<'a> {
    presets: &'a [PresetDoc],
}

pub(super) const REDACTED: &str = "<redacted>";

/// Whether a URL query parameter likely holds a credential.
fn is_secret_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("password")
        || lower.contains("key")
        || lower.contains("token")
        || lower.contains("secret")
        || lower.contains("signature")
        || lower.contains("credential")
        || lower == "sig"
        || lower == "auth"
}

/// A URL with its credentials replaced: the password of the userinfo (the
/// whole userinfo when it is a bare token with no `user:` part, unless the
/// URL is a database URL where it is the user name) and query parameters
/// like `password=`, `key=`, `api_key=`, `token=`, `sig=`.
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            let web = out[..scheme_end].eq_ignore_ascii_case("http")
                || out[..scheme_end].eq_ignore_ascii_case("https");
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, REDACTED);
            } else if web && !userinfo.is_empty() {
                out.replace_range(rest_start..rest_start + at, REDACTED);
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_param(k) => {
                    format!("{k}={REDACTED}")
                }
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The effective configuration as TOML, secrets redacted, each value
/// annotated with where it came from.
pub(crate) fn render(settings: &Settings) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Effective netherbrain configuration (secrets redacted)."
    );
    match &settings.config_file {
        Some(path) => {
            let _ = writeln!(out, "# config file: {}", path.display());
        }
        None => {
            let _ = writeln!(out, "# config file: none");
        }
    }
    let mut line = |key: &'static str, value: Option<String>| {
        let source = settings.source(key);
        match value {
            Some(v) => {
                let _ = writeln!(out, "{key} = {v}  # {source}");
            }
            None => {
                let _ = writeln!(out, "# {key} = (not set)");
            }
        }
    };
    line("host", Some(toml_str(&settings.host.to_string())));
    line("port", Some(settings.port.to_string()));
    line(
        "data_dir",
        Some(toml_str(&settings.data_dir.display().to_string())),
    );
    line(
        "database_url",
        Some(toml_str(&redact_url(&settings.database_url))),
    );
    line(
        "redis_url",
        settings
            .redis_url
            .as_deref()
            .map(|u| toml_str(&redact_url(u))),
    );
    line(
        "drain_delay",
        Some(settings.drain_delay.as_secs().to_string()),
    );
    line(
        "auth_token",
        settings.auth_token.as_ref().map(|_| toml_str(REDACTED)),
    );
    line(
        "graceful_shutdown_timeout",
        Some(settings.graceful_shutdown_timeout.as_secs().to_string()),
    );
    line("log", Some(toml_str(&settings.log)));
    line(
        "log_format",
        Some(toml_str(&settings.log_format.to_string())),
    );
    line("body_limit", Some(settings.body_limit.to_string()));
    line(
        "session_lease",
        Some(settings.session_lease.as_secs().to_string()),
    );
    let roots: Vec<String> = settings
        .workspace_roots
        .iter()
        .map(|r| toml_str(&r.display().to_string()))
        .collect();
    line("workspace_roots", Some(format!("[{}]", roots.join(", "))));
    line("metrics_public", Some(settings.metrics_public.to_string()));
    line(
        "max_runs_per_user",
        Some(settings.max_runs_per_user.to_string()),
    );
    line(
        "max_ws_subscriptions",
        Some(settings.max_ws_subscriptions.to_string()),
    );
    line(
        "default_max_tokens",
        Some(settings.default_max_tokens.unwrap_or(0).to_string()),
    );
    line(
        "trusted_proxies",
        Some(
            toml::Value::Array(
                settings
                    .trusted_proxies
                    .iter()
                    .map(|n| toml::Value::String(n.to_string()))
                    .collect(),
            )
            .to_string(),
        ),
    );

    if let Ok(Some(s3)) = netherbrain_store::blob::S3Config::from_env() {
        // Not a config file setting: shown as comments so the output still
        // loads as a config file.
        let _ = writeln!(
            out,
            "\n# blob storage: env NETHER_S3_* (not a config file setting)"
        );
        if let Some(endpoint) = &s3.endpoint {
            let _ = writeln!(out, "#   endpoint = {}", toml_str(&redact_url(endpoint)));
        }
        let _ = writeln!(out, "#   bucket = {}", toml_str(&s3.bucket));
        let _ = writeln!(out, "#   region = {}", toml_str(&s3.region));
        if s3.access_key_id.is_some() {
            let _ = writeln!(out, "#   access_key_id = {}", toml_str(REDACTED));
        }
        if s3.secret_access_key.is_some() {
            let _ = writeln!(out, "#   secret_access_key = {}", toml_str(REDACTED));
        }
        let _ = writeln!(out, "#   path_style = {}", s3.path_style);
        let _ = writeln!(out, "#   allow_http = {}", s3.allow_http);
    }

    if settings.providers.is_empty() {
        let _ = writeln!(
            out,
            "\n# providers: none (set OPENAI_API_KEY / ANTHROPIC_API_KEY or add [[providers]])"
        );
    } else {
        let _ = writeln!(out, "\n# providers: {}", settings.source("providers"));
        for p in &settings.providers {
            if p.resolve_api_key().is_err() {
                let _ = writeln!(
                    out,
                    "# profile `{}`: {} is not set: this profile is skipped",
                    p.name,
                    p.api_key_env.as_deref().unwrap_or("the API key")
                );
            }
        }
        let shown: Vec<ProviderProfile> = settings.providers.iter().map(redacted_profile).collect();
        let doc = ProvidersDoc { providers: &shown };
        let _ = writeln!(out, "{}", toml::to_string(&doc).unwrap_or_default());
    }
    if !settings.presets.is_empty() {
        let _ = writeln!(
            out,
            "# presets: config file (imported by every command that opens the database)"
        );
        let doc = PresetsDoc {
            presets: &settings.presets,
        };
        let _ = write!(out, "{}", toml::to_string(&doc).unwrap_or_default());
    }
    if settings.gateway.has_channels() {
        out.push_str(&settings.gateway.render());
    }
    out
}

/// A document of provider profiles: `[[providers]]` with their
/// `[providers.headers]`, as `config show` writes it.
#[derive(Debug, Serialize)]
struct ProvidersDoc<'a> {
    providers: &'a [ProviderProfile],
}

/// Whether a header's value is likely a credential.
fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "auth",
        "key",
        "token",
        "secret",
        "cookie",
        "session",
        "password",
        "signature",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// A profile as `config show` prints it: the inline key, credentials in
/// the base URL and credential-like header values redacted.
pub(super) fn redacted_profile(p: &ProviderProfile) -> ProviderProfile {
    let mut shown = p.clone();
    if shown.api_key.is_some() {
        shown.api_key = Some(REDACTED.into());
    }
    shown.base_url = shown.base_url.as_deref().map(redact_url);
    for (name, value) in &mut shown.headers {
        if is_secret_header(name) && !value.is_empty() {
            *value = REDACTED.into();
        }
    }
    shown
}
