//! `loadtest`: load scenarios against a local Fechatter pool (loopback
//! only; every scenario is bounded in connections and time and stops by
//! itself). See `loadtest --help` and BENCHMARKS.md.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use loadtest::{
    bench, connections,
    report::{Report, Threshold},
    storm,
    target::Target,
    traffic,
};

/// Longest sending window a scenario may ask for.
const MAX_DURATION: u64 = 120;
/// Most messages the search fixture may write.
const MAX_MESSAGES: usize = 2_000_000;
/// Most connections a scenario may open.
const MAX_CONNECTIONS: usize = 60_000;

#[derive(Parser)]
#[command(
    version,
    about = "Load tests for Fechatter realtime (loopback targets only)"
)]
struct Cli {
    /// REST (and, without --gateway, WebSocket) base URL: HAProxy or a gateway.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Connect WebSockets straight to these gateways (repeatable); also
    /// where memory is read from.
    #[arg(long = "gateway", global = true)]
    gateways: Vec<String>,
    /// Print the report as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Trust the certificates in this PEM file for `https://`/`wss://`
    /// targets (e.g. `.data/tls/ca.pem`, the local CA of `make run`).
    #[arg(long = "ca-cert", global = true)]
    ca_cert: Option<std::path::PathBuf>,
    /// Fail (exit 1) unless this holds, e.g. `p99<25ms`, `lost<1`,
    /// `deliveries_per_sec>20000` (repeatable).
    #[arg(long = "threshold", global = true)]
    thresholds: Vec<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// M senders into one private channel of N members.
    Fanout(FanoutArgs),
    /// The same fan-out against an in-process bare WebSocket broadcaster.
    Baseline(FanoutArgs),
    /// One channel of thousands of members: a read-only broadcast channel
    /// (`--read-only`), or a busy one past summary mode's rate where only
    /// `--viewers` members show it.
    Channel {
        #[arg(long, default_value_t = 5_000)]
        members: usize,
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Messages per second per sender (the server allows 10).
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// Members that show the channel (`chat.focus`): every event.
        #[arg(long, default_value_t = 0)]
        viewers: usize,
        /// Only the owner and admins (the senders) may post.
        #[arg(long)]
        read_only: bool,
        #[arg(long, default_value_t = 15)]
        duration: u64,
    },
    /// Many small group chats, one sender each.
    Chats {
        #[arg(long, default_value_t = 300)]
        users: usize,
        #[arg(long, default_value_t = 100)]
        chats: usize,
        #[arg(long, default_value_t = 5)]
        size: usize,
        /// Messages per second per chat.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// `group` (every message alerts every other member) or
        /// `private_channel` (no alerts at the default level).
        #[arg(long, default_value = "group")]
        kind: String,
    },
    /// The `chats` load with the cost per committed message of every
    /// process on the write path: Redis commands, PostgreSQL transactions,
    /// rows and WAL bytes, CPU (the machine must otherwise be idle).
    WriteCost {
        /// At least chats × size / 2, so that no user sends in two chats.
        #[arg(long, default_value_t = 2_500)]
        users: usize,
        #[arg(long, default_value_t = 1_000)]
        chats: usize,
        #[arg(long, default_value_t = 5)]
        size: usize,
        /// Messages per second per chat (one sender each: keep it under the
        /// 10/s per-user send limit).
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// `group` (every message alerts every other member: toasts) or
        /// `private_channel` (no alerts at the default level).
        #[arg(long, default_value = "group")]
        kind: String,
        /// Redis `host:port` of the pool (loopback only).
        #[arg(long)]
        redis: String,
        /// The pool's PostgreSQL URL (loopback only).
        #[arg(long)]
        database: String,
    },
    /// N idle connections; reports gateway RSS per connection (needs --gateway).
    Idle {
        #[arg(long, default_value_t = 5_000)]
        connections: usize,
        /// Connections per user (gateways' MAX_CONNECTIONS_PER_USER must allow it).
        #[arg(long, default_value_t = 5)]
        per_user: usize,
        #[arg(long, default_value_t = 5)]
        hold: u64,
    },
    /// Open N connections at a fixed rate; handshake percentiles.
    Ramp {
        #[arg(long, default_value_t = 2_000)]
        connections: usize,
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        #[arg(long, default_value_t = 5)]
        per_user: usize,
    },
    /// Drop every client at once, pile up messages, reconnect and sync.
    ReconnectStorm {
        #[arg(long, default_value_t = 1_000)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        chats: usize,
        /// Messages each chat receives while its members are away (≤ 10).
        #[arg(long, default_value_t = 10)]
        gap: usize,
    },
    /// N users of one workspace watching S others each; a share changes
    /// state every minute. Presence frames/s, latency, Redis and CPU cost.
    Presence {
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        /// Users each connection watches (at most 500).
        #[arg(long, default_value_t = 200)]
        watch: usize,
        /// Percent of users changing state per minute.
        #[arg(long, default_value_t = 5.0)]
        churn: f64,
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Redis `host:port` to read command counts from (loopback only).
        #[arg(long)]
        redis: Option<String>,
    },
    /// Direct-message pairs: toast latency to connected recipients and
    /// push throughput to a local webhook for offline ones.
    Notify {
        #[arg(long, default_value_t = 200)]
        pairs: usize,
        /// Messages per second per sender.
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// Search latency over a large message table written by a fixture
    /// straight into the pool's PostgreSQL (loopback only).
    Search {
        /// PostgreSQL of the pool under test.
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        #[arg(long, default_value_t = 200)]
        chats: usize,
        #[arg(long, default_value_t = 50)]
        other_chats: usize,
        /// Queries per kind.
        #[arg(long, default_value_t = 100)]
        samples: usize,
        #[arg(long, default_value_t = 10)]
        searchers: usize,
    },
    /// Send, sync-from-PostgreSQL and REST paging latency of one probe
    /// chat as filler chats grow the message table through `sizes`.
    Growth {
        /// PostgreSQL of the pool under test.
        #[arg(long)]
        database: String,
        /// Table sizes (messages rows) to measure at, ascending.
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000,10000000")]
        sizes: Vec<u64>,
        /// Messages in the probe chat's history.
        #[arg(long, default_value_t = 20_000)]
        probe_messages: i64,
        #[arg(long, default_value_t = 1000)]
        filler_chats: i64,
        /// Samples per measurement and stage.
        #[arg(long, default_value_t = 100)]
        samples: usize,
        /// End with the archival job over the grown table, measured while
        /// it runs and after it.
        #[arg(long)]
        archive: bool,
    },
    /// Its own pool under traffic while a gateway, the worker, Redis and
    /// PostgreSQL fail in turn: convergence per fault, audit of acked messages.
    Chaos(loadtest::chaos::ChaosArgs),
    /// Idle connections at machine scale: several gateways, straight and
    /// through several HAProxy processes, the load split over `hold`
    /// processes (see `make bench-scale`).
    Scale(loadtest::scale::ScaleArgs),
    /// One process's share of `scale` (started by it; driven on stdin).
    Hold(loadtest::scale::hold::HoldArgs),
    /// The standard set; writes BENCHMARKS.md (see `make bench`).
    Bench {
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: String,
        /// Tiny sizes, for smoke-testing the suite itself.
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "")]
        machine: String,
        #[arg(long, default_value = "")]
        commit: String,
        /// The pool's Redis `host:port` (loopback), for command counts.
        #[arg(long)]
        redis: Option<String>,
        /// The pool's PostgreSQL (loopback), for the search fixture; the
        /// search scenario is skipped without it.
        #[arg(long)]
        database: Option<String>,
        /// Also run `chaos` (short form; it starts a pool of its own).
        #[arg(long)]
        chaos: bool,
    },
}

#[derive(clap::Args)]
struct FanoutArgs {
    #[arg(long, default_value_t = 200)]
    members: usize,
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second per sender (the server allows 10).
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Every member shows the channel (`chat.focus`): every event even past
    /// summary mode's rate, and no badges.
    #[arg(long)]
    focused: bool,
}

fn bounded(duration: u64) -> Result<Duration> {
    if duration == 0 || duration > MAX_DURATION {
        bail!("duration must be 1..={MAX_DURATION} seconds");
    }
    Ok(Duration::from_secs(duration))
}

fn bounded_count(n: usize) -> Result<usize> {
    if n == 0 || n > MAX_CONNECTIONS {
        bail!("connection counts must be 1..={MAX_CONNECTIONS}");
    }
    Ok(n)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let thresholds = cli
        .thresholds
        .iter()
        .map(|t| Threshold::parse(t))
        .collect::<Result<Vec<_>>>()?;
    if let Some(path) = &cli.ca_cert {
        loadtest::tls::trust_pem(path)?;
    }
    let target = Target::new(&cli.url, &cli.gateways)?;
    let report: Report = match cli.scenario {
        Scenario::Fanout(FanoutArgs {
            members,
            senders,
            rate,
            duration,
            focused,
        }) => {
            let mut plan = traffic::fanout_plan(
                &target,
                bounded_count(members)?,
                senders,
                rate,
                bounded(duration)?,
            )
            .await?;
            if focused {
                plan.focused = (0..members).collect();
            }
            traffic::run(&target, plan).await?
        }
        Scenario::Channel {
            members,
            senders,
            rate,
            viewers,
            read_only,
            duration,
        } => {
            let shape = loadtest::channel::Shape {
                members: bounded_count(members)?,
                senders,
                rate,
                viewers,
                read_only,
                duration: bounded(duration)?,
            };
            loadtest::channel::run(&target, shape).await?
        }
        Scenario::Baseline(FanoutArgs {
            members,
            senders,
            rate,
            duration,
            ..
        }) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let bare = Target::bare(listener.local_addr()?);
            let server = tokio::spawn(loadtest::baseline::serve(listener));
            let plan = traffic::fanout_plan(
                &bare,
                bounded_count(members)?,
                senders,
                rate,
                bounded(duration)?,
            )
            .await?;
            let report = traffic::run(&bare, plan).await?;
            server.abort();
            report
        }
        Scenario::Chats {
            users,
            chats,
            size,
            rate,
            duration,
            kind,
        } => {
            let plan = traffic::chats_plan_of(
                &target,
                &kind,
                bounded_count(users)?,
                chats,
                size,
                rate,
                bounded(duration)?,
            )
            .await?;
            traffic::run(&target, plan).await?
        }
        Scenario::WriteCost {
            kind,
            users,
            chats,
            size,
            rate,
            duration,
            redis,
            database,
        } => {
            anyhow::ensure!(
                ["group", "private_channel"].contains(&kind.as_str()),
                "--kind must be group or private_channel"
            );
            let shape = loadtest::cost::Shape {
                kind,
                users: bounded_count(users)?,
                chats,
                size,
                rate,
                duration: bounded(duration)?,
            };
            loadtest::cost::run(&target, shape, &redis, &database).await?
        }
        Scenario::Idle {
            connections: n,
            per_user,
            hold,
        } => connections::idle(&target, bounded_count(n)?, per_user, bounded(hold)?).await?,
        Scenario::Ramp {
            connections: n,
            rate,
            per_user,
        } => connections::ramp(&target, bounded_count(n)?, rate, per_user).await?,
        Scenario::ReconnectStorm {
            clients,
            chats,
            gap,
        } => storm::storm(&target, bounded_count(clients)?, chats, gap).await?,
        Scenario::Presence {
            users,
            watch,
            churn,
            duration,
            redis,
        } => {
            let shape = loadtest::presence::Shape {
                users: bounded_count(users)?,
                watch,
                churn_pct_per_min: churn,
                duration: bounded(duration)?,
            };
            loadtest::presence::run(&target, shape, redis.as_deref()).await?
        }
        Scenario::Notify {
            pairs,
            rate,
            duration,
        } => {
            let shape = loadtest::notify::Shape {
                pairs: bounded_count(pairs)?,
                rate,
                duration: bounded(duration)?,
            };
            loadtest::notify::run(&target, shape).await?
        }
        Scenario::Search {
            database,
            messages,
            chats,
            other_chats,
            samples,
            searchers,
        } => {
            anyhow::ensure!(
                (1..=MAX_MESSAGES).contains(&messages),
                "messages must be 1..={MAX_MESSAGES}"
            );
            anyhow::ensure!(
                (1..=1000).contains(&chats) && other_chats <= 1000,
                "chats must be 1..=1000, other chats at most 1000"
            );
            anyhow::ensure!(
                (1..=10_000).contains(&samples) && (1..=100).contains(&searchers),
                "samples must be 1..=10000, searchers 1..=100"
            );
            let shape = loadtest::search::Shape {
                messages,
                chats,
                other_chats,
                samples,
                searchers,
            };
            loadtest::search::run(&target, &database, shape).await?
        }
        Scenario::Growth {
            database,
            sizes,
            probe_messages,
            filler_chats,
            samples,
            archive,
        } => {
            anyhow::ensure!(
                !sizes.is_empty()
                    && sizes.windows(2).all(|w| w[0] < w[1])
                    && sizes.iter().all(|&n| n <= 20_000_000),
                "sizes must be ascending, each at most 20000000"
            );
            anyhow::ensure!(
                (1_000..=1_000_000).contains(&probe_messages)
                    && (1..=10_000).contains(&filler_chats)
                    && (10..=10_000).contains(&samples),
                "probe messages must be 1000..=1000000, filler chats 1..=10000, samples 10..=10000"
            );
            let shape = loadtest::growth::Shape {
                sizes,
                probe_messages,
                filler_chats,
                samples,
                archive,
            };
            loadtest::growth::run(&target, &database, shape).await?
        }
        Scenario::Chaos(args) => loadtest::chaos::run(&args).await?,
        Scenario::Scale(args) => loadtest::scale::run(&target, &args).await?,
        Scenario::Hold(args) => return loadtest::scale::hold::run(&target, &args).await,
        Scenario::Bench {
            out,
            quick,
            machine,
            commit,
            redis,
            database,
            chaos,
        } => {
            anyhow::ensure!(
                !cli.gateways.is_empty(),
                "bench needs --gateway URLs (the first one is used alone)"
            );
            let targets = bench::BenchTargets {
                proxy: target.clone(),
                haproxy: Target::new(&cli.url, &[])?,
                one_gateway: Target::new(&cli.gateways[0], &cli.gateways[..1])?,
                redis,
                database,
                chaos,
            };
            let reports = bench::run(&targets, quick).await?;
            for r in &reports {
                eprintln!("{}", r.human());
            }
            let date = std::process::Command::new("date")
                .arg("-u")
                .arg("+%Y-%m-%d %H:%M UTC")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .unwrap_or_default();
            // The scale section belongs to `make bench-scale`: kept as it was.
            let kept = std::fs::read_to_string(&out)
                .ok()
                .and_then(|old| loadtest::scale::section::extract(&old).map(str::to_string));
            std::fs::write(
                &out,
                bench::markdown(&reports, &machine, &commit, date.trim()),
            )?;
            if let Some(section) = kept {
                loadtest::scale::section::write(&out, &section)?;
            }
            eprintln!("wrote {out}");
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            return Ok(());
        }
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.human());
    }
    let failed = report.check(&thresholds);
    for f in &failed {
        eprintln!("threshold missed: {f}");
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
