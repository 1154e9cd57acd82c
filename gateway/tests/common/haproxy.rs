//! The shipped haproxy.cfg in front of test gateways: free ports, a
//! self-signed certificate (openssl), the log captured to a file.
#![allow(dead_code)]

use std::{path::PathBuf, process::Stdio, sync::OnceLock, time::Duration};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PEM bundle (certificate + key) for 127.0.0.1, made once per test run.
pub fn test_certificate() -> PathBuf {
    static CERT: OnceLock<PathBuf> = OnceLock::new();
    CERT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fc-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert, pem) = (
            dir.join("key.pem"),
            dir.join("cert.pem"),
            dir.join("haproxy.pem"),
        );
        let status = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed (make test installs it)");
        assert!(status.success(), "openssl could not make a certificate");
        let bundle = [std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()].concat();
        std::fs::write(&pem, bundle).unwrap();
        pem
    })
    .clone()
}

pub struct Haproxy {
    pub port: u16,
    pub tls_port: u16,
    pub stats: u16,
    pub log: PathBuf,
    pub cert: PathBuf,
    _child: tokio::process::Child,
}

impl Haproxy {
    /// Starts HAProxy in front of `gw1` and `gw2` (host:port) and waits
    /// until it reaches both.
    pub async fn start(gw1: &str, gw2: &str) -> Self {
        let (port, tls_port, stats) = (free_port(), free_port(), free_port());
        let socket = std::env::temp_dir().join(format!("fc-haproxy-{port}.sock"));
        let log = std::env::temp_dir().join(format!("fc-haproxy-{port}.log"));
        let cert = test_certificate();
        let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../haproxy.cfg");
        let child = tokio::process::Command::new("haproxy")
            .args(["-f", cfg, "-db"])
            .env("HAPROXY_BIND", format!("127.0.0.1:{port}"))
            .env("HAPROXY_TLS_BIND", format!("127.0.0.1:{tls_port}"))
            .env("HAPROXY_CERT", &cert)
            .env("HAPROXY_STATS_BIND", format!("127.0.0.1:{stats}"))
            .env("HAPROXY_STATS_SOCKET", &socket)
            .env("GATEWAY1_ADDR", gw1)
            .env("GATEWAY2_ADDR", gw2)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy is installed (make test installs it)");
        let h = Self {
            port,
            tls_port,
            stats,
            log,
            cert,
            _child: child,
        };
        h.wait_for_both().await;
        h
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until /health/live through the proxy has answered from two
    /// different gateways.
    pub async fn wait_for_both(&self) {
        let http = reqwest::Client::new();
        let mut seen = std::collections::HashSet::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while seen.len() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "HAProxy did not reach both gateways: {seen:?}"
            );
            if let Ok(r) = http.get(format!("{}/health/live", self.url())).send().await {
                if let Ok(v) = r.json::<serde_json::Value>().await {
                    if let Some(i) = v["instance"].as_str() {
                        seen.insert(i.to_string());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
