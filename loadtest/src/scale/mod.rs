//! `loadtest scale`: idle connections at the scale of the whole machine,
//! through several gateways, straight and through several HAProxy
//! processes. One process can hold only as many sockets as its open-files
//! limit (20,000 here), so the load is split over `loadtest hold` child
//! processes ([`hold`]), each with its own loopback source address; this
//! process plans the split ([`plan`]), checks the limits first, drives the
//! children through their phases and measures the gateways and the kernel
//! before and after ([`system`]). The result goes to BENCHMARKS.md
//! ([`section`]).

pub mod hold;
pub mod plan;
pub mod section;
pub mod system;

mod children;

use std::time::Duration;

use anyhow::Result;

use crate::{report::Report, target::Target};

/// What `loadtest scale` is asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Connections straight to the gateways (--gateway, round robin).
    #[arg(long, default_value_t = 100_000)]
    pub direct: usize,
    /// Connections through HAProxy, split evenly over the --proxy URLs.
    #[arg(long, default_value_t = 0)]
    pub proxied: usize,
    /// HAProxy frontends, one per HAProxy process (repeatable).
    #[arg(long = "proxy")]
    pub proxies: Vec<String>,
    /// PIDs of those HAProxy processes, for their memory (repeatable).
    #[arg(long = "proxy-pid")]
    pub proxy_pids: Vec<u32>,
    /// Most connections one child process holds.
    #[arg(long, default_value_t = 16_000)]
    pub per_process: usize,
    /// Connections per user straight to gateways (round robin: any count
    /// balances; the gateways' MAX_CONNECTIONS_PER_USER must allow it).
    #[arg(long, default_value_t = 100)]
    pub per_user_direct: usize,
    /// Connections per user through HAProxy, which hashes users onto
    /// gateways: fewer per user balance better.
    #[arg(long, default_value_t = 10)]
    pub per_user_proxied: usize,
    /// How long every connection is held open before the second reading.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
    /// Client WebSocket buffers, bytes.
    #[arg(long, default_value_t = 1024)]
    pub buffer: usize,
    /// Handshakes in flight per child process.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Memory budget per connection (gateway, client, kernel, HAProxy),
    /// KiB: the run refuses to start without that much available.
    #[arg(long, default_value_t = 40)]
    pub kib_budget: u64,
    /// Longest the whole run may take; children exit by then too.
    #[arg(long, default_value_t = 900)]
    pub max_secs: u64,
    /// Also write the result as the scale section of this markdown file.
    #[arg(long)]
    pub out: Option<String>,
    /// How the result was produced, for the section (date, commit, machine).
    #[arg(long, default_value = "")]
    pub provenance: String,
}

/// Runs the scenario; `target.metrics` are the gateways.
pub async fn run(target: &Target, a: &ScaleArgs) -> Result<Report> {
    let shares = plan::plan(a, &target.metrics)?;
    let limits = system::limits();
    for (k, v) in &limits {
        eprintln!("scale: {k} = {v}");
    }
    let before = children::Snapshot::take(&target.metrics, &a.proxy_pids).await?;
    plan::check_room(a, &before.gateways, before.machine.available_kib)?;
    eprintln!(
        "scale: {} processes, {} straight to {} gateways, {} through {} HAProxy processes",
        shares.len(),
        a.direct,
        target.metrics.len(),
        a.proxied,
        a.proxies.len()
    );
    let outcome = children::drive(&shares, a, &target.metrics).await?;
    let report = section::report(a, &shares, &outcome, &limits);
    if let Some(out) = &a.out {
        section::write(out, &section::markdown(&report, &outcome, a))?;
        eprintln!("scale: wrote the scale section of {out}");
    }
    Ok(report)
}

/// Every phase's longest wait, so a stuck child never stalls the run.
fn phase_timeout(a: &ScaleArgs) -> Duration {
    Duration::from_secs(a.max_secs)
}
