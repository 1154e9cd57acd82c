//! The pool the chaos scenario breaks: its own redis-server (so it can be
//! restarted without touching the shared one), a TCP proxy in front of
//! PostgreSQL (so PostgreSQL can vanish for this pool alone) and a fresh
//! database, one worker, two gateways and HAProxy with the shipped
//! haproxy.cfg, all child processes of the release binaries next to
//! `loadtest`. Children are killed when the pool is dropped
//! (`kill_on_drop`), so an aborted run leaves nothing behind.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use reqwest::Url;
use sqlx::Connection;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, Command},
    time::Instant,
};

use super::proxy::Proxy;

/// Where things are and what the pool runs with.
pub struct PoolConfig {
    /// Logs and the HAProxy socket go here.
    pub dir: PathBuf,
    /// The repository root: haproxy.cfg and scripts/tls-cert.sh.
    pub repo: PathBuf,
    /// PostgreSQL admin URL (loopback); the pool's database is made fresh.
    pub pg_admin: String,
    pub database: String,
    /// Extra `KEY=VALUE` settings for the gateways and the worker.
    pub env: Vec<(String, String)>,
}

pub struct Pool {
    dir: PathBuf,
    bin: PathBuf,
    env: Vec<(String, String)>,
    pub proxy: Proxy,
    pub redis_port: u16,
    pub gw_ports: [u16; 2],
    pub haproxy_port: u16,
    redis: Option<Child>,
    gateways: [Option<Child>; 2],
    worker: Option<Child>,
    workers_started: u32,
    haproxy: Option<Child>,
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Pool {
    pub async fn start(cfg: &PoolConfig) -> Result<Self> {
        crate::target::ensure_loopback(&cfg.pg_admin)?;
        std::fs::create_dir_all(&cfg.dir)?;
        let dir = std::fs::canonicalize(&cfg.dir)?;
        let bin = std::env::current_exe()?
            .parent()
            .context("no binary directory")?
            .to_path_buf();
        let pool_db_url = fresh_database(&cfg.pg_admin, &cfg.database).await?;
        let pg_addr = socket_of(&cfg.pg_admin, 5432)?;
        let proxy = Proxy::start(pg_addr).await?;
        let mut db_url = Url::parse(&pool_db_url)?;
        db_url
            .set_host(Some("127.0.0.1"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let _ = db_url.set_port(Some(proxy.addr.port()));
        let redis_port = free_port()?;
        let mut env = vec![
            ("DATABASE_URL".to_string(), db_url.to_string()),
            (
                "REDIS_URL".into(),
                format!("redis://127.0.0.1:{redis_port}"),
            ),
            ("REDIS_PREFIX".into(), "chaos".into()),
            ("JWT_SECRET".into(), random_secret()),
            ("SIGNUP_MODE".into(), "direct".into()),
            ("ARGON2_MEMORY_KIB".into(), "1024".into()),
            ("ARGON2_ITERATIONS".into(), "1".into()),
            ("AUTH_IP_PER_MINUTE".into(), "1000000".into()),
            ("AUTH_ACCOUNT_PER_MINUTE".into(), "1000000".into()),
            ("RUST_LOG".into(), "warn".into()),
        ];
        env.retain(|(k, _)| !cfg.env.iter().any(|(k2, _)| k2 == k));
        env.extend(cfg.env.iter().cloned());
        let gw_ports = [free_port()?, free_port()?];
        let mut pool = Self {
            dir: dir.clone(),
            bin,
            env,
            proxy,
            redis_port,
            gw_ports,
            haproxy_port: 0,
            redis: None,
            gateways: [None, None],
            worker: None,
            workers_started: 0,
            haproxy: None,
        };
        pool.start_redis().await?;
        let status = pool.command("worker", "migrate")?.status().await?;
        anyhow::ensure!(status.success(), "worker migrate failed (see worker.log)");
        pool.start_worker()?;
        pool.start_gateway(0).await?;
        pool.start_gateway(1).await?;
        pool.start_haproxy(&cfg.repo).await?;
        Ok(pool)
    }

    fn log(&self, name: &str) -> Result<std::fs::File> {
        Ok(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))?)
    }

    /// `bin` of the release directory with the pool's environment.
    fn command(&self, bin: &str, arg: &str) -> Result<Command> {
        let mut c = Command::new(self.bin.join(bin));
        c.arg(arg)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(self.log(bin)?)
            .stderr(self.log(bin)?)
            .kill_on_drop(true);
        Ok(c)
    }

    pub async fn start_redis(&mut self) -> Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.redis_port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--maxmemory", "512mb", "--maxmemory-policy", "noeviction"])
            .stdout(self.log("redis")?)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("redis-server is installed")?;
        self.redis = Some(child);
        wait_until("redis", || redis_ping(self.redis_port)).await
    }

    /// kill -9 of the pool's Redis (it keeps no data: it restarts empty).
    pub async fn kill_redis(&mut self) -> Result<()> {
        kill9(self.redis.take()).await
    }

    pub fn start_worker(&mut self) -> Result<()> {
        self.workers_started += 1;
        let mut c = self.command("worker", "run")?;
        c.env("BIND_ADDR", format!("127.0.0.1:{}", free_port()?))
            .env(
                "INSTANCE_ID",
                format!("chaos-worker{}", self.workers_started),
            );
        self.worker = Some(c.spawn()?);
        Ok(())
    }

    pub async fn kill_worker(&mut self) -> Result<()> {
        kill9(self.worker.take()).await
    }

    /// Starts gateway `i` (0 or 1) and waits until it is live.
    pub async fn start_gateway(&mut self, i: usize) -> Result<()> {
        let port = self.gw_ports[i];
        let mut c = Command::new(self.bin.join("gateway"));
        c.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("INSTANCE_ID", format!("chaos-gw{}", i + 1))
            .stdin(Stdio::null())
            .stdout(self.log(&format!("gw{}", i + 1))?)
            .stderr(self.log(&format!("gw{}", i + 1))?)
            .kill_on_drop(true);
        self.gateways[i] = Some(c.spawn()?);
        let url = format!("http://127.0.0.1:{port}/health/live");
        wait_until("gateway", || http_ok(url.clone())).await
    }

    pub async fn kill_gateway(&mut self, i: usize) -> Result<()> {
        kill9(self.gateways[i].take()).await
    }

    async fn start_haproxy(&mut self, repo: &Path) -> Result<()> {
        let port = free_port()?;
        let cert = match std::env::var("HAPROXY_CERT") {
            Ok(c) if !c.is_empty() => PathBuf::from(c),
            _ => {
                let bundle = self.dir.join("tls").join("haproxy.pem");
                let status = std::process::Command::new(repo.join("scripts/tls-cert.sh"))
                    .env("HAPROXY_CERT", &bundle)
                    .stdout(Stdio::null())
                    .status()?;
                anyhow::ensure!(status.success(), "scripts/tls-cert.sh failed");
                bundle
            }
        };
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(repo.join("haproxy.cfg"))
            .arg("-db")
            .env("HAPROXY_BIND", format!("127.0.0.1:{port}"))
            .env("HAPROXY_TLS_BIND", format!("127.0.0.1:{}", free_port()?))
            .env("HAPROXY_CERT", cert)
            .env("HAPROXY_STATS_BIND", format!("127.0.0.1:{}", free_port()?))
            .env("HAPROXY_STATS_SOCKET", self.dir.join("haproxy.sock"))
            .env("GATEWAY1_ADDR", format!("127.0.0.1:{}", self.gw_ports[0]))
            .env("GATEWAY2_ADDR", format!("127.0.0.1:{}", self.gw_ports[1]))
            .stdout(self.log("haproxy")?)
            .stderr(self.log("haproxy")?)
            .kill_on_drop(true)
            .spawn()
            .context("haproxy is installed")?;
        self.haproxy = Some(child);
        self.haproxy_port = port;
        wait_until("haproxy", || {
            http_ok(format!("http://127.0.0.1:{port}/health"))
        })
        .await
    }
}

async fn kill9(child: Option<Child>) -> Result<()> {
    if let Some(mut c) = child {
        c.start_kill()?; // SIGKILL
        c.wait().await?;
    }
    Ok(())
}

async fn wait_until<F, Fut>(what: &str, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if probe().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} did not come up within 30 s (logs in the chaos directory)")
}

async fn http_ok(url: String) -> bool {
    let client = crate::tls::http_client();
    matches!(client.get(url).timeout(Duration::from_secs(1)).send().await, Ok(r) if r.status().is_success())
}

async fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").await.is_ok()
        && matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
}

fn socket_of(url: &str, default_port: u16) -> Result<SocketAddr> {
    let u = Url::parse(url)?;
    let host = match u.host_str() {
        Some("localhost") | None => "127.0.0.1",
        Some(h) => h,
    };
    Ok(SocketAddr::new(
        host.parse()?,
        u.port().unwrap_or(default_port),
    ))
}

/// Drops and re-creates `name`; returns its URL (straight to PostgreSQL).
async fn fresh_database(admin: &str, name: &str) -> Result<String> {
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database names are letters, digits and _"
    );
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .context("connecting to PostgreSQL (admin URL)")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let mut url = Url::parse(admin)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

fn random_secret() -> String {
    use rand::{distr::Alphanumeric, Rng};
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(48)
        .map(char::from)
        .collect()
}
