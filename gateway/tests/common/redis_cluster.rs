//! A private three-master Redis Cluster on free loopback ports, started
//! by scripts/redis-cluster.sh (the script `make test` and
//! `REDIS_CLUSTER=1 make run` use), stopped when dropped.

use std::path::PathBuf;

pub struct RedisCluster {
    pub base: u16,
    dir: PathBuf,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/redis-cluster.sh");

impl RedisCluster {
    pub fn start() -> Self {
        let base = free_ports();
        let dir = std::env::temp_dir().join(format!("fc-cluster-{base}"));
        let status = std::process::Command::new(SCRIPT)
            .arg("start")
            .arg(&dir)
            .arg(base.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("scripts/redis-cluster.sh runs");
        assert!(status.success(), "starting the Redis Cluster failed");
        Self { base, dir }
    }

    /// The cluster's REDIS_URL (fred's `redis-cluster://` form).
    pub fn url(&self) -> String {
        format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
            self.base,
            self.base + 1,
            self.base + 2
        )
    }

    /// The single-node URL of each master, to inspect one node.
    pub fn node_urls(&self) -> Vec<String> {
        (0..3)
            .map(|i| format!("redis://127.0.0.1:{}", self.base + i))
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A base port with it and the next two free, and their cluster bus
/// ports (port + 10000).
fn free_ports() -> u16 {
    loop {
        let base = super::haproxy::free_port();
        if base > 55_000 - 3 {
            continue;
        }
        let free = (0..3).all(|i| {
            [base + i, base + i + 10_000]
                .iter()
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        });
        if free {
            return base;
        }
    }
}
