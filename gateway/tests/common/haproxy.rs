//! The shipped haproxy.cfg in front of test gateways: free ports, a
//! self-signed certificate (openssl), the log captured to a file.
#![allow(dead_code)]

use std::{path::PathBuf, process::Stdio, sync::OnceLock, time::Duration};

/// A port nothing listens on now and that this test process has not
/// handed out before: the kernel may give a just-released port to the next
/// bind, and two tests of one binary each starting gateways on "free"
/// ports could otherwise end up talking to each other's gateways.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The HAProxy bundle and the CA that signed it, made once per test run
/// by scripts/tls-cert.sh (the script `make run` uses).
pub fn test_certificate() -> (PathBuf, PathBuf) {
    static CERT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    CERT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fc-tls-{}", std::process::id()));
        let bundle = dir.join("haproxy.pem");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/tls-cert.sh");
        let status = std::process::Command::new(script)
            .env("HAPROXY_CERT", &bundle)
            .stdout(Stdio::null())
            .status()
            .expect("scripts/tls-cert.sh runs (openssl is installed by make test)");
        assert!(status.success(), "scripts/tls-cert.sh failed");
        (bundle, dir.join("ca.pem"))
    })
    .clone()
}

pub struct Haproxy {
    pub port: u16,
    pub tls_port: u16,
    pub stats: u16,
    pub log: PathBuf,
    /// The CA clients trust for the TLS port.
    pub ca: PathBuf,
    /// The Runtime API (admin) socket.
    pub socket: PathBuf,
    _child: tokio::process::Child,
}

impl Haproxy {
    /// Starts HAProxy in front of `gw1` and `gw2` (host:port) and waits
    /// until it reaches both.
    pub async fn start(gw1: &str, gw2: &str) -> Self {
        let (port, tls_port, stats) = (free_port(), free_port(), free_port());
        let socket = std::env::temp_dir().join(format!("fc-haproxy-{port}.sock"));
        let log = std::env::temp_dir().join(format!("fc-haproxy-{port}.log"));
        let (cert, ca) = test_certificate();
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
            ca,
            socket: socket.clone(),
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

    /// Runs one Runtime API command; returns HAProxy's answer.
    pub async fn runtime(&self, command: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::UnixStream::connect(&self.socket)
            .await
            .expect("the stats socket is up");
        s.write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
