//! Starting and driving the `loadtest hold` children of a scale run:
//! everyone signs up, then the "before" reading, then everyone connects at
//! once, the hold, the "after" reading, and everyone closes. A child that
//! dies or misses a phase ends the run with its stderr pointer; children
//! are killed when this process drops them, and exit at their own
//! deadline anyway.

use std::{process::Stdio, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    time::Instant,
};

use super::{phase_timeout, plan::Share, system, ScaleArgs};

/// Memory readings of one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub machine: system::Machine,
    pub gateways: Vec<system::Gateway>,
    /// Summed resident memory of the HAProxy processes, KiB.
    pub haproxy_rss_kib: u64,
}

impl Snapshot {
    pub async fn take(gateways: &[String], haproxies: &[u32]) -> Result<Self> {
        let mut gws = Vec::with_capacity(gateways.len());
        for g in gateways {
            gws.push(system::gateway(g).await?);
        }
        Ok(Self {
            machine: system::machine()?,
            gateways: gws,
            haproxy_rss_kib: haproxies
                .iter()
                .filter_map(|p| system::status_kib(&p.to_string(), "VmRSS"))
                .sum(),
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub before: Snapshot,
    pub after: Snapshot,
    /// Each child's `ready` line, in plan order.
    pub ready: Vec<Value>,
    /// From the first `connect` to the last `ready`.
    pub connect_secs: f64,
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

fn spawn(share: &Share, a: &ScaleArgs) -> Result<Running> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--url").arg(&share.api);
    if share.proxy.is_none() {
        for g in &share.ws {
            cmd.arg("--gateway").arg(g);
        }
    }
    cmd.arg("hold")
        .args(["--source", &share.source.to_string()])
        .args(["--connections", &share.connections.to_string()])
        .args(["--per-user", &share.per_user.to_string()])
        .args(["--buffer", &a.buffer.to_string()])
        .args(["--concurrency", &a.concurrency.to_string()])
        .args(["--max-secs", &a.max_secs.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting a loadtest hold process")?;
    let stdin = child.stdin.take().context("child stdin")?;
    let stdout = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    Ok(Running {
        child,
        stdin,
        stdout,
    })
}

/// Reads lines of child `k` until its `phase` line.
async fn expect(r: &mut Running, k: usize, phase: &str, until: Instant) -> Result<Value> {
    loop {
        let line = tokio::time::timeout_at(until, r.stdout.next_line())
            .await
            .map_err(|_| anyhow!("hold process {k} did not reach `{phase}` in time"))??;
        let Some(line) = line else {
            let status = r.child.wait().await?;
            bail!("hold process {k} exited ({status}) before `{phase}`; its error is above");
        };
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v["phase"] == phase {
                return Ok(v);
            }
        }
    }
}

async fn tell(running: &mut [Running], word: &str) -> Result<()> {
    for r in running.iter_mut() {
        r.stdin.write_all(format!("{word}\n").as_bytes()).await?;
        r.stdin.flush().await?;
    }
    Ok(())
}

/// Runs every share to the end; `gateways` are measured.
pub async fn drive(shares: &[Share], a: &ScaleArgs, gateways: &[String]) -> Result<Outcome> {
    let until = Instant::now() + phase_timeout(a);
    let mut running = shares
        .iter()
        .map(|s| spawn(s, a))
        .collect::<Result<Vec<_>>>()?;
    for (k, r) in running.iter_mut().enumerate() {
        expect(r, k, "tokens", until).await?;
    }
    eprintln!("scale: {} processes signed up; connecting", running.len());
    // Let freed sign-up memory settle before the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = Snapshot::take(gateways, &a.proxy_pids).await?;
    let started = Instant::now();
    tell(&mut running, "connect").await?;
    let mut ready = Vec::with_capacity(running.len());
    for (k, r) in running.iter_mut().enumerate() {
        ready.push(expect(r, k, "ready", until).await?);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let held: u64 = ready.iter().filter_map(|v| v["connections"].as_u64()).sum();
    eprintln!("scale: {held} connections open after {connect_secs:.0} s; holding");
    tokio::time::sleep(Duration::from_secs(a.hold)).await;
    let after = Snapshot::take(gateways, &a.proxy_pids).await?;
    // A child past its own deadline has closed already: nothing to tell.
    let _ = tell(&mut running, "close").await;
    for (k, r) in running.iter_mut().enumerate() {
        let _ = expect(r, k, "closed", until).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), r.child.wait()).await;
    }
    Ok(Outcome {
        before,
        after,
        ready,
        connect_secs,
    })
}
