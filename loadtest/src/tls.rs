//! TLS for `https://` and `wss://` targets (HAProxy's TLS port).
//!
//! Loopback targets use the self-signed certificate `make run` generates,
//! which no public root trusts, so the certificates to trust are given
//! explicitly (`--ca-cert .data/tls/cert.pem`). Nothing else is trusted:
//! a load test never talks to a third party anyway.

use std::{path::Path, sync::Arc, sync::OnceLock};

use anyhow::{Context, Result};
use rustls::pki_types::{pem::PemObject, CertificateDer};

struct Trust {
    certs: Vec<CertificateDer<'static>>,
    rustls: Arc<rustls::ClientConfig>,
}

static TRUST: OnceLock<Trust> = OnceLock::new();

/// Trusts the certificates in the PEM file `path` for every TLS
/// connection this process makes (REST and WebSocket). Call once, first.
pub fn trust_pem(path: &Path) -> Result<()> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots
            .add(c.clone())
            .context("adding a trusted certificate")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let _ = TRUST.set(Trust {
        certs,
        rustls: Arc::new(config),
    });
    Ok(())
}

/// A REST client trusting the configured certificates.
pub fn http_client() -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(t) = TRUST.get() {
        for c in &t.certs {
            if let Ok(cert) = reqwest::Certificate::from_der(c) {
                builder = builder.add_root_certificate(cert);
            }
        }
    }
    builder.build().expect("a reqwest client builds")
}

/// The WebSocket TLS connector, when certificates were configured.
pub fn ws_connector() -> Option<tokio_tungstenite::Connector> {
    TRUST
        .get()
        .map(|t| tokio_tungstenite::Connector::Rustls(t.rustls.clone()))
}
