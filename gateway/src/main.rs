//! `gateway`: loads configuration, installs tracing and signal handling, and
//! hands over to [`gateway::run`].
//!
//! The allocator is mimalloc rather than the system's (glibc): a gateway
//! holds tens of thousands of small long-lived allocations per process
//! (one set per connection) interleaved with the short-lived ones of each
//! handshake, and glibc leaves the freed ones as holes it rarely returns.
//! Measured at 15,000 idle connections on one gateway (BENCHMARKS.md,
//! notes): 5.4-5.5 KiB RSS per connection with glibc, 5.2-5.4 with this
//! crate's mimalloc 3.3, 4.6 with mimalloc 2.0.

use anyhow::Context;
use fechatter_shared::{shutdown, telemetry, Config};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(&config.log_format);
    let listener = tokio::net::TcpListener::bind(config.bind_addr)
        .await
        .with_context(|| format!("binding {}", config.bind_addr))?;
    gateway::run(config, listener, shutdown::on_signal()).await
}
