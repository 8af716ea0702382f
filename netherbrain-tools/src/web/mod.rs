//! The `web` tool set: `web_fetch` gets a URL and returns readable text
//! (HTML converted to Markdown-like text), with a size cap and a timeout.
//!
//! **SSRF guard.** Unless the preset allows it, addresses that are not
//! public are refused: loopback, private (10/8, 172.16/12, 192.168/16,
//! fc00::/7), link-local (169.254/16 — cloud metadata — and fe80::/10),
//! unspecified, broadcast, CGNAT (100.64/10) and IPv4-mapped forms of
//! these. The check runs on the addresses DNS returns (the client connects
//! only to addresses that passed), on literal IPs in the URL, and again on
//! every redirect hop.
//!
//! Preset options (`tool_options.web`): `allow_private` (default false),
//! `allowed_hosts` (host names, or `host:port`, exempt from the guard),
//! `timeout_secs` (default 20), `max_bytes` (default 2 MiB).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use netherbrain_core::schemars::{self, JsonSchema};
use netherbrain_core::tool::{
    DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;

use crate::filesystem::cap_output;

/// The most redirects followed.
pub const MAX_REDIRECTS: usize = 5;
/// Most text returned.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

/// The preset's `web` options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WebOptions {
    /// Allow loopback, private and link-local addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// Hosts (`name` or `name:port`) exempt from the address check.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Seconds for the whole fetch (default 20).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Most bytes of body read (default 2 MiB).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// Whether an address is public (may be fetched without `allow_private`).
///
/// ```
/// use netherbrain_tools::web::is_public;
/// assert!(!is_public("127.0.0.1".parse().unwrap()));
/// assert!(!is_public("10.1.2.3".parse().unwrap()));
/// assert!(!is_public("169.254.169.254".parse().unwrap()));
/// assert!(!is_public("::1".parse().unwrap()));
/// assert!(!is_public("::ffff:127.0.0.1".parse().unwrap()));
/// assert!(is_public("93.184.216.34".parse().unwrap()));
/// ```
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

/// The guard's view of one fetch.
#[derive(Debug, Clone)]
struct Guard {
    allow_private: bool,
    allowed_hosts: Arc<Vec<String>>,
}

impl Guard {
    /// Whether `host` (with `port` when known) is exempt. The resolver
    /// does not know the port: it exempts a name listed with any port, and
    /// the URL check has already required the listed port.
    fn host_allowed(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_hosts.iter().any(|h| {
            h.eq_ignore_ascii_case(host)
                || match port {
                    Some(p) => h.eq_ignore_ascii_case(&format!("{host}:{p}")),
                    None => h
                        .rsplit_once(':')
                        .is_some_and(|(name, _)| name.eq_ignore_ascii_case(host)),
                }
        })
    }

    /// Checks a URL before it is requested (first hop and redirects):
    /// scheme, and a literal IP host.
    fn check_url(&self, url: &url::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "only http and https URLs are fetched, not `{}`",
                url.scheme()
            ));
        }
        let Some(host) = url.host() else {
            return Err("the URL has no host".to_owned());
        };
        if self.allow_private || self.host_allowed(&host.to_string(), url.port_or_known_default()) {
            return Ok(());
        }
        // a name exempted with another port only: the resolver would exempt
        // it for every port, so refuse here
        if let url::Host::Domain(name) = &host
            && self.host_allowed(name, None)
        {
            return Err(format!(
                "refused: `{name}` is allowed only on the ports the preset lists"
            ));
        }
        let ip = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(d) => d.parse::<IpAddr>().ok(),
        };
        match ip {
            Some(ip) if !is_public(ip) => Err(format!(
                "refused: {ip} is a private, loopback or link-local address"
            )),
            _ => Ok(()),
        }
    }
}

/// Resolves names and drops the answer when any address is not public,
/// so the client never connects to one.
#[derive(Debug, Clone)]
struct GuardedResolver(Guard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !guard.allow_private
                && !guard.host_allowed(&host, None)
                && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
            {
                return Err(format!(
                    "refused: `{host}` resolves to {}, a private, loopback or link-local address",
                    bad.ip()
                )
                .into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The `web` tool set.
#[derive(Debug, Clone, Default)]
pub struct Web;

impl Web {
    /// The set.
    #[must_use]
    pub fn new() -> Self {
        Self
    }

    /// The tools as a registry.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn registry(&self) -> Result<ToolRegistry, netherbrain_core::tool::RegistryError> {
        ToolRegistry::new().with(Fetch)
    }
}

#[async_trait]
impl ToolSet for Web {
    fn name(&self) -> &str {
        "web"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        let r = self
            .registry()
            .map_err(|e| ToolError::failed(e.to_string()))?;
        Ok(r.get("web_fetch").cloned().into_iter().collect())
    }
}

/// Arguments of `web_fetch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchArgs {
    /// An http or https URL.
    pub url: String,
}

#[derive(Debug)]
struct Fetch;

#[async_trait]
impl Tool for Fetch {
    type Args = FetchArgs;
    fn name(&self) -> &str {
        "web_fetch"
    }
    fn description(&self) -> &str {
        "Fetches an http(s) URL and returns its content as readable text (HTML is converted to Markdown-like text). Private and local addresses are refused."
    }
    async fn call(&self, args: FetchArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let options: WebOptions = ctx.option("web")?;
        let guard = Guard {
            allow_private: options.allow_private,
            allowed_hosts: Arc::new(options.allowed_hosts.clone()),
        };
        let url = url::Url::parse(args.url.trim())
            .map_err(|e| ToolError::InvalidArguments(format!("bad URL: {e}")))?;
        guard.check_url(&url).map_err(ToolError::failed)?;
        let redirect_guard = guard.clone();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match redirect_guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => {
                    let to = attempt.url().to_string();
                    attempt.error(format!("redirect to {to}: {e}"))
                }
            }
        });
        let timeout = Duration::from_secs(options.timeout_secs.unwrap_or(20).clamp(1, 120));
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(guard)))
            .redirect(policy)
            .timeout(timeout)
            .user_agent("netherbrain-web-fetch/0.1")
            .no_proxy()
            .build()
            .map_err(|e| ToolError::failed(format!("cannot build the HTTP client: {e}")))?;
        let response = client.get(url).send().await.map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            ToolError::failed(format!("fetch failed: {message}"))
        })?;
        let status = response.status();
        let final_url = response.url().to_string();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let max = options
            .max_bytes
            .unwrap_or(2 * 1024 * 1024)
            .min(16 * 1024 * 1024);
        let mut body = Vec::new();
        let mut truncated = false;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ToolError::failed(format!("reading the body: {e}")))?;
            let room = max.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let text = if content_type.contains("html") {
            html2text::from_read(body.as_slice(), 100)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned())
        } else if content_type.starts_with("text/")
            || content_type.contains("json")
            || content_type.contains("xml")
            || content_type.is_empty()
        {
            if body.iter().take(8192).any(|b| *b == 0) {
                format!("[binary content, {} bytes, not shown]", body.len())
            } else {
                String::from_utf8_lossy(&body).into_owned()
            }
        } else {
            format!("[{content_type} content, {} bytes, not shown]", body.len())
        };
        let mut out = format!("URL: {final_url}\nStatus: {}\n\n{text}", status.as_u16());
        if truncated {
            out.push_str(&format!("\n[body cut at {max} bytes]"));
        }
        Ok(ToolOutput::text(cap_output(out, MAX_TEXT_BYTES)))
    }
}
