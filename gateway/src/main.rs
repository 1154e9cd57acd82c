//! `gateway`: loads configuration, installs tracing and signal handling, and
//! hands over to [`gateway::run`].

use anyhow::Context;
use fechatter_shared::{shutdown, telemetry, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(&config.log_format);
    let listener = tokio::net::TcpListener::bind(config.bind_addr)
        .await
        .with_context(|| format!("binding {}", config.bind_addr))?;
    gateway::run(config, listener, shutdown::on_signal()).await
}
