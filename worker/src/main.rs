//! `worker [run|migrate]`: loads configuration, installs tracing and signal
//! handling, and hands over to the library. `migrate` applies the schema
//! and exits (used by `make run` and deployments before gateways start).

use fechatter_shared::{shutdown, telemetry, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(&config.log_format);
    match std::env::args().nth(1).as_deref() {
        None | Some("run") => worker::run(config, shutdown::on_signal()).await,
        Some("migrate") => worker::migrate(&worker::connect_db(&config).await?).await,
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `run` or `migrate`"),
    }
}
