//! Where a load test sends traffic, and the guard that keeps it on this
//! machine: every URL must resolve to loopback (127.0.0.0/8 or ::1).

use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use reqwest::Url;

/// The system under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// REST base URL (HAProxy or one gateway), e.g. `http://127.0.0.1:8080`.
    pub api: String,
    /// WebSocket base URLs to spread connections over (round robin).
    pub ws: Vec<String>,
    /// Gateway base URLs whose `/metrics` report process memory.
    pub metrics: Vec<String>,
    /// A bare broadcaster: no REST, no auth.
    pub bare: bool,
}

impl Target {
    /// `api` for REST; connections go to `gateways` when given, else to `api`.
    pub fn new(api: &str, gateways: &[String]) -> Result<Self> {
        ensure_loopback(api)?;
        for g in gateways {
            ensure_loopback(g)?;
        }
        let ws_bases = if gateways.is_empty() {
            vec![api.to_string()]
        } else {
            gateways.to_vec()
        };
        Ok(Self {
            api: api.trim_end_matches('/').to_string(),
            ws: ws_bases.iter().map(|b| to_ws(b)).collect(),
            metrics: gateways
                .iter()
                .map(|g| g.trim_end_matches('/').to_string())
                .collect(),
            bare: false,
        })
    }

    /// The in-process bare broadcaster at `addr`.
    pub fn bare(addr: std::net::SocketAddr) -> Self {
        let base = format!("http://{addr}");
        Self {
            api: base.clone(),
            ws: vec![to_ws(&base)],
            metrics: Vec::new(),
            bare: true,
        }
    }

    /// The WebSocket URL for connection number `n` with `token`.
    pub fn ws_url(&self, n: usize, token: &str) -> String {
        format!("{}?token={token}", self.ws[n % self.ws.len()])
    }
}

fn to_ws(base: &str) -> String {
    let base = base.trim_end_matches('/');
    format!(
        "{}/ws",
        base.replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    )
}

/// Refuses any URL whose host is not a loopback address.
pub fn ensure_loopback(url: &str) -> Result<()> {
    let parsed = Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let ok = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    };
    if !ok {
        bail!("refusing to load-test {url}: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_allowed() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            assert!(ensure_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://192.168.1.1:8080",
            "http://example.com",
            "http://8.8.8.8",
            "nonsense",
        ] {
            assert!(ensure_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ws_urls_round_robin() {
        let t = Target::new(
            "http://127.0.0.1:8080",
            &["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
        )
        .unwrap();
        assert_eq!(t.ws_url(0, "t"), "ws://127.0.0.1:1/ws?token=t");
        assert_eq!(t.ws_url(1, "t"), "ws://127.0.0.1:2/ws?token=t");
    }
}
