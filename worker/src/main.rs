//! `worker [run|push|migrate|reindex]`: loads configuration, installs
//! tracing and signal handling, and hands over to the library. `run` does
//! everything (persistence, mail, presence sweeps, push, and the search
//! indexer with `SEARCH_BACKEND=meilisearch`); `push` only delivers pushes
//! (scaled apart); `migrate` applies the schema and exits (used by `make
//! run` and deployments before gateways start); `reindex` rebuilds the
//! Meilisearch index from PostgreSQL and exits (needs the `meilisearch`
//! feature and `SEARCH_BACKEND=meilisearch`).

use anyhow::Context;
use fechatter_shared::{shutdown, telemetry, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(&config.log_format);
    match std::env::args().nth(1).as_deref() {
        None | Some("run") => {
            let listener = tokio::net::TcpListener::bind(config.bind_addr)
                .await
                .with_context(|| format!("binding {}", config.bind_addr))?;
            worker::run(config, listener, shutdown::on_signal()).await
        }
        Some("push") => {
            let listener = tokio::net::TcpListener::bind(config.bind_addr)
                .await
                .with_context(|| format!("binding {}", config.bind_addr))?;
            worker::run_push(config, listener, shutdown::on_signal()).await
        }
        Some("migrate") => {
            worker::migrate(&fechatter_shared::store::connect_direct(&config).await?).await
        }
        Some("reindex") => worker::reindex(config).await,
        Some(other) => {
            anyhow::bail!(
                "unknown command {other:?}; expected `run`, `push`, `migrate` or `reindex`"
            )
        }
    }
}
