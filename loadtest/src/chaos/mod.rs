//! `chaos`: a pool of its own (Redis, PostgreSQL behind a cuttable proxy,
//! two gateways, a worker, HAProxy; see [`pool`]) under steady chat
//! traffic from clients that behave like real ones ([`client`]), while
//! faults are injected one after another with recovery time between:
//! kill -9 of a gateway, kill -9 of the worker, a Redis restart and
//! PostgreSQL unreachable. Per fault it reports how long until every
//! client held every acked message, and it audits every acked message on
//! every member ([`audit`]). Zero loss of acked messages is the bar.
//!
//! Loopback only, bounded (members, rate, every phase, the drain) and
//! self-stopping: the pool is killed when the scenario ends or fails.

pub mod audit;
pub mod client;
pub mod pool;
pub mod proxy;
mod section;

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::{sync::watch, time::Instant};

use crate::{
    client::Api,
    report::Report,
    traffic::{signup_many, tag},
};
use audit::Fault;
use client::Shared;
use pool::{Pool, PoolConfig};
pub use section::section;

/// A message counts as late once it is this much past due (normal
/// pipeline latency is milliseconds; this absorbs scheduling noise on a
/// busy machine).
const GRACE_SECS: f64 = 0.5;
/// Longest wait, after sending stops, for every write to be acked and
/// every client to hold it.
const DRAIN: Duration = Duration::from_secs(60);

#[derive(clap::Args, Clone, Debug)]
pub struct ChaosArgs {
    /// Members of the chat, each one client through HAProxy.
    #[arg(long, default_value_t = 40)]
    pub members: usize,
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Messages per second per sender (the server allows 10).
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Seconds of undisturbed traffic before the first fault.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Seconds of recovery after each fault, before the next.
    #[arg(long, default_value_t = 20)]
    pub recovery: u64,
    /// Faults in order: gateway, worker, redis, postgres (comma-separated).
    #[arg(long, default_value = "gateway,worker,redis,postgres")]
    pub faults: String,
    /// Seconds PostgreSQL stays unreachable.
    #[arg(long, default_value_t = 10)]
    pub pg_outage: u64,
    /// Milliseconds between Redis's kill and its restart.
    #[arg(long, default_value_t = 1000)]
    pub redis_down_ms: u64,
    /// Milliseconds between a killed process and its restart.
    #[arg(long, default_value_t = 1000)]
    pub restart_after_ms: u64,
    /// First reconnect delay of the clients (doubling, jitter 0.5-1.5x).
    #[arg(long, default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Resend unanswered writes (same frame id) right after a reconnect
    /// instead of waiting out their 5 s: their answer was addressed to
    /// the connection that died. On by default, as seed 002 §6.5 has
    /// clients send their pending messages on reconnect;
    /// `--resend-on-reconnect false` waits the 5 s instead.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub resend_on_reconnect: bool,
    /// PostgreSQL admin URL (loopback); the pool gets a fresh database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub pg_admin: String,
    #[arg(long, default_value = "fechatter_chaos")]
    pub database: String,
    /// Logs of the pool's processes.
    #[arg(long, default_value = ".run/chaos")]
    pub dir: PathBuf,
    /// Repository root (haproxy.cfg, scripts/tls-cert.sh).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// `KEY=VALUE` for the pool's gateways and worker (repeatable).
    #[arg(long = "pool-env")]
    pub pool_env: Vec<String>,
}

impl ChaosArgs {
    /// The defaults with 15 s of recovery: the `make bench` form (~2.5 min).
    pub fn short() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: ChaosArgs,
        }
        let mut args = <Defaults as clap::Parser>::parse_from(["chaos"]).args;
        args.recovery = 15;
        args
    }

    fn check(&self) -> Result<Vec<String>> {
        anyhow::ensure!((2..=200).contains(&self.members), "members must be 2..=200");
        anyhow::ensure!(
            (1..=self.members).contains(&self.senders),
            "senders must be 1..=members"
        );
        anyhow::ensure!(
            self.rate > 0.0 && self.rate <= 10.0,
            "rate must be in (0, 10]"
        );
        anyhow::ensure!((1..=60).contains(&self.warmup), "warmup must be 1..=60 s");
        anyhow::ensure!(
            (5..=120).contains(&self.recovery),
            "recovery must be 5..=120 s"
        );
        anyhow::ensure!(
            (1..=60).contains(&self.pg_outage),
            "pg-outage must be 1..=60 s"
        );
        anyhow::ensure!(self.redis_down_ms <= 30_000 && self.restart_after_ms <= 30_000);
        anyhow::ensure!((100..=10_000).contains(&self.backoff_ms));
        let faults: Vec<String> = self
            .faults
            .split(',')
            .map(|f| f.trim().to_string())
            .collect();
        anyhow::ensure!(faults.len() <= 8, "at most 8 faults");
        for f in &faults {
            if !["gateway", "worker", "redis", "postgres"].contains(&f.as_str()) {
                bail!("unknown fault {f:?}");
            }
        }
        Ok(faults)
    }
}

pub async fn run(args: &ChaosArgs) -> Result<Report> {
    let faults = args.check()?;
    let env = args
        .pool_env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--pool-env {kv:?} is not KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    let cfg = PoolConfig {
        dir: args.dir.clone(),
        repo: args.repo.clone(),
        pg_admin: args.pg_admin.clone(),
        database: args.database.clone(),
        env: env.clone(),
    };
    eprintln!("chaos: starting the pool (logs in {})", args.dir.display());
    let mut pool = Pool::start(&cfg).await?;
    let base = format!("http://127.0.0.1:{}", pool.haproxy_port);
    let api = Api::new(&base);
    let accounts = signup_many(&api, args.members, &tag()).await?;
    let others: Vec<i64> = accounts[1..].iter().map(|a| a.id).collect();
    let chat = api
        .create_chat(&accounts[0], "private_channel", Some("chaos"), &others)
        .await?;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        applied: (0..args.members).map(|_| 0.into()).collect(),
        max_acked: 0.into(),
        pending: 0.into(),
        sending: false.into(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let ws = format!("ws://127.0.0.1:{}/ws", pool.haproxy_port);
    let tasks: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(idx, a)| {
            let spec = client::Spec {
                idx,
                url: format!("{ws}?token={}", a.token),
                chat,
                rate: if idx < args.senders { args.rate } else { 0.0 },
                backoff: Duration::from_millis(args.backoff_ms),
                resend_on_reconnect: args.resend_on_reconnect,
            };
            tokio::spawn(client::run(spec, shared.clone(), stop_rx.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("chaos: {} clients, {} sending", args.members, args.senders);
    shared.sending.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let mut injected = Vec::new();
    for f in &faults {
        eprintln!("chaos: injecting {f}");
        injected.push(inject(&mut pool, &shared, f, args).await?);
        tokio::time::sleep(Duration::from_secs(args.recovery)).await;
    }
    shared.sending.store(false, Ordering::Relaxed);
    let drained = drain(&shared).await;
    let end = shared.secs(Instant::now());
    let _ = stop_tx.send(true);
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await?);
    }
    drop(pool);
    let summary = audit::analyze(&logs, &injected, end, GRACE_SECS);
    let params = json!({
        "members": args.members, "senders": args.senders, "ratePerSender": args.rate,
        "recoverySecs": args.recovery, "pgOutageSecs": args.pg_outage,
        "redisDownMs": args.redis_down_ms, "backoffMs": args.backoff_ms,
        "resendOnReconnect": args.resend_on_reconnect,
        "faults": faults, "poolEnv": args.pool_env,
    });
    let report = section::report(params, &summary, &logs, end, drained);
    let md = args.dir.join("chaos.md");
    std::fs::write(&md, section(&report))?;
    eprintln!("chaos: BENCHMARKS.md section written to {}", md.display());
    Ok(report)
}

/// Injects one fault; returns when the broken part is back (or restarted).
async fn inject(pool: &mut Pool, shared: &Shared, fault: &str, args: &ChaosArgs) -> Result<Fault> {
    let restart = Duration::from_millis(args.restart_after_ms);
    let t0 = shared.secs(Instant::now());
    let back = match fault {
        "gateway" => {
            pool.kill_gateway(0).await?;
            tokio::time::sleep(restart).await;
            pool.start_gateway(0).await?;
            t0
        }
        "worker" => {
            pool.kill_worker().await?;
            tokio::time::sleep(restart).await;
            pool.start_worker()?;
            t0
        }
        "redis" => {
            pool.kill_redis().await?;
            tokio::time::sleep(Duration::from_millis(args.redis_down_ms)).await;
            pool.start_redis().await?;
            shared.secs(Instant::now())
        }
        _ => {
            pool.proxy.cut();
            tokio::time::sleep(Duration::from_secs(args.pg_outage)).await;
            pool.proxy.restore();
            shared.secs(Instant::now())
        }
    };
    Ok(Fault {
        name: fault.to_string(),
        t0,
        t_ref: back,
    })
}

/// Waits until every write is acked and every client holds the newest
/// acked message; false if that did not happen within [`DRAIN`].
async fn drain(shared: &Shared) -> bool {
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline {
        let max = shared.max_acked.load(Ordering::Relaxed);
        if shared.pending.load(Ordering::Relaxed) == 0
            && shared
                .applied
                .iter()
                .all(|a| a.load(Ordering::Relaxed) >= max)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
