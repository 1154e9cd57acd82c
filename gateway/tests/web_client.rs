//! The reference web client (web/) in a real browser against the pool as
//! deployed: a worker, two gateway processes (gw1, gw2) and the shipped
//! haproxy.cfg in front, the browser speaking https/wss to HAProxy's TLS
//! listener. The scenarios themselves are JavaScript (web/e2e/*.scenario.mjs,
//! run by web/e2e/run.mjs with playwright-core and Debian's Chromium): they
//! drive the app the way a person does, which a Rust client cannot. This
//! test owns the pool they run against and their exit status.
//!
//! The gateways are processes, not in-process servers, so a scenario can
//! kill the one its page is connected to (SIGKILL, by the pid in
//! `FECHATTER_GATEWAYS`) and watch the app recover through HAProxy.
//! A failed scenario leaves screenshots and console logs in
//! `FECHATTER_ARTIFACTS` (default: target/web-e2e/).

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

use common::{
    haproxy::Haproxy,
    process::{start_gateway, GatewayProcess},
    realtime::Pool,
};
use serde_json::json;
use sqlx::PgPool;
use tokio::io::AsyncReadExt;

/// Longest run of all scenarios; run.mjs has a shorter one of its own.
const RUN_TIMEOUT: Duration = Duration::from_secs(8 * 60);
/// A killed gateway's users go offline after this (the default, 30 s,
/// would make a presence check after a kill wait for most of a minute).
const PRESENCE_NODE_TTL_MS: &str = "3000";
/// Access tokens live 90 s, so `token.refresh` comes 30 s after a
/// connection opens and 50-token-refresh sees the page refresh in time.
const ACCESS_TOKEN_TTL_SECS: &str = "90";
/// Every page signs up, signs in and refreshes from 127.0.0.1 (through
/// HAProxy): the per-address budget of the authentication routes (30 a
/// minute by default) is for people, not for a test suite.
const AUTH_IP_PER_MINUTE: &str = "600";

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into())
}

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("FECHATTER_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-e2e"));
    std::fs::create_dir_all(&dir).expect("the artifacts directory can be created");
    dir.canonicalize().expect("the artifacts directory exists")
}

/// Fails (never skips) when the browser tests cannot run, saying how to
/// install what is missing.
fn require_tools() {
    const HOW: &str = "`make test` installs it (scripts/ensure-services.sh)";
    let node = std::process::Command::new("node").arg("--version").output();
    let version = match node {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!("node is not installed: the web client tests need Node.js >= 20; {HOW}"),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "node {version} is too old: playwright-core needs Node.js >= 20; {HOW}"
    );
    assert!(
        web_dir().join("node_modules/playwright-core").is_dir(),
        "web/node_modules lacks playwright-core: run `npm ci` in web/; {HOW}"
    );
    let chromium = chromium_path();
    assert!(
        chromium.is_file(),
        "no Chromium at {} (set CHROMIUM_PATH, or `apt-get install chromium`); {HOW}",
        chromium.display()
    );
}

fn host(g: &GatewayProcess) -> String {
    g.base.trim_start_matches("http://").to_string()
}

/// Runs web/e2e/run.mjs in its own process group, so that the browser
/// dies with it when it outlives [`RUN_TIMEOUT`] (then the status is the
/// kill's and the output what it printed so far).
async fn run_scenarios(url: &str, gateways: &serde_json::Value, artifacts: &Path) -> Output {
    let mut child = tokio::process::Command::new("node")
        .arg("e2e/run.mjs")
        .current_dir(web_dir())
        .env("FECHATTER_URL", url)
        .env("FECHATTER_GATEWAYS", gateways.to_string())
        .env("FECHATTER_ARTIFACTS", artifacts)
        .env("CHROMIUM_PATH", chromium_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let stdout = tokio::spawn(read_all(child.stdout.take().unwrap()));
    let stderr = tokio::spawn(read_all(child.stderr.take().unwrap()));
    let status = match tokio::time::timeout(RUN_TIMEOUT, child.wait()).await {
        Ok(status) => status.expect("node was waited for"),
        Err(_) => {
            kill_group(child.id());
            let status = child.wait().await.expect("node was waited for");
            eprintln!("web/e2e/run.mjs ran longer than {RUN_TIMEOUT:?}: killed");
            status
        }
    };
    let grace = Duration::from_secs(5);
    let stdout = tokio::time::timeout(grace, stdout).await;
    let stderr = tokio::time::timeout(grace, stderr).await;
    Output {
        status,
        stdout: stdout.ok().and_then(Result::ok).unwrap_or_default(),
        stderr: stderr.ok().and_then(Result::ok).unwrap_or_default(),
    }
}

async fn read_all(mut pipe: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = pipe.read_to_end(&mut out).await;
    out
}

/// SIGKILL to node and everything it started (Chromium).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn web_client_scenarios_pass_in_chromium_through_haproxy(pool: PgPool) {
    require_tools();
    let mut p = Pool::start_without_worker(pool, 0, |c| {
        c.presence_node_ttl = Duration::from_millis(PRESENCE_NODE_TTL_MS.parse().unwrap());
    })
    .await;
    p.add_worker().await;
    let extra = [
        ("PRESENCE_NODE_TTL_MS", PRESENCE_NODE_TTL_MS),
        ("ACCESS_TOKEN_TTL_SECS", ACCESS_TOKEN_TTL_SECS),
        ("AUTH_IP_PER_MINUTE", AUTH_IP_PER_MINUTE),
    ];
    let gw1 = start_gateway(&p.config, "gw1", &extra).await;
    let gw2 = start_gateway(&p.config, "gw2", &extra).await;
    let h = Haproxy::start(&host(&gw1), &host(&gw2)).await;
    let gateways = json!({ "gw1": gw1.child.id(), "gw2": gw2.child.id() });
    let artifacts = artifacts_dir();

    let url = format!("https://127.0.0.1:{}", h.tls_port);
    let out = run_scenarios(&url, &gateways, &artifacts).await;
    println!(
        "--- node e2e/run.mjs stdout\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    println!(
        "--- node e2e/run.mjs stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "web client scenarios failed ({}): see the output above; screenshots and console logs in {}; HAProxy log: {}",
        out.status,
        artifacts.display(),
        h.log.display()
    );
}
