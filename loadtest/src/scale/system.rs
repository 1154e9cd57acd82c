//! What the machine and the gateways say about memory and limits, read
//! before and after the connections open: `/proc/meminfo` (used memory,
//! slab), `/proc/net/sockstat` (TCP sockets and the pages of socket
//! buffers the kernel accounts to TCP), the gateways' `/metrics` (resident
//! memory, WebSocket connections, file descriptors) and the sysctls that
//! bound how many loopback connections one machine can hold.

use anyhow::{Context, Result};

/// Machine-wide memory and socket figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Machine {
    /// MemTotal − MemAvailable, KiB.
    pub used_kib: u64,
    pub available_kib: u64,
    /// Slab (reclaimable + unreclaimable), KiB: socket, inode, file and
    /// epoll structures live there.
    pub slab_kib: u64,
    /// TCP sockets in use (both ends of a loopback connection count).
    pub tcp_inuse: u64,
    /// Pages of socket buffers accounted to TCP (`mem` in sockstat).
    pub tcp_mem_pages: u64,
}

pub fn machine() -> Result<Machine> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let field = |name: &str| -> u64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let sockstat =
        std::fs::read_to_string("/proc/net/sockstat").context("reading /proc/net/sockstat")?;
    let tcp: Vec<&str> = sockstat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let after = |key: &str| -> u64 {
        tcp.iter()
            .position(|w| *w == key)
            .and_then(|i| tcp.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Machine {
        used_kib: field("MemTotal").saturating_sub(field("MemAvailable")),
        available_kib: field("MemAvailable"),
        slab_kib: field("Slab"),
        tcp_inuse: after("inuse"),
        tcp_mem_pages: after("mem"),
    })
}

/// A `/proc/<pid>/status` field in KiB (`pid` may be `self`).
pub fn status_kib(pid: &str, name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One gateway's figures from its `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Gateway {
    pub url: String,
    pub rss: u64,
    pub connections: u64,
    pub open_fds: u64,
    pub max_fds: u64,
}

pub async fn gateway(url: &str) -> Result<Gateway> {
    let text = crate::tls::http_client()
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let value = |name: &str| -> Result<u64> {
        // Names may carry the exporter's prefix (`fechatter_`).
        let suffix = format!("_{name}");
        let line = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| {
                let metric = l.split(' ').next().unwrap_or_default();
                metric == name || metric.ends_with(&suffix)
            })
            .with_context(|| format!("{url}/metrics has no {name}"))?;
        Ok(line.rsplit(' ').next().unwrap_or("0").parse::<f64>()? as u64)
    };
    Ok(Gateway {
        url: url.to_string(),
        rss: value("process_resident_memory_bytes")?,
        connections: value("ws_connections")?,
        open_fds: value("process_open_fds")?,
        max_fds: value("process_max_fds")?,
    })
}

/// The sysctls and limits that bound loopback connections, as
/// `name value` pairs for the report (missing ones are left out).
pub fn limits() -> Vec<(String, String)> {
    let sysctls = [
        "fs/file-max",
        "fs/nr_open",
        "net/core/somaxconn",
        "net/ipv4/tcp_max_syn_backlog",
        "net/ipv4/ip_local_port_range",
        "net/ipv4/tcp_mem",
        "net/netfilter/nf_conntrack_max",
        "net/netfilter/nf_conntrack_count",
    ];
    let mut out: Vec<(String, String)> = sysctls
        .iter()
        .filter_map(|k| {
            let v = std::fs::read_to_string(format!("/proc/sys/{k}")).ok()?;
            Some((
                k.replace('/', "."),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .collect();
    out.push((
        "open files (per process)".into(),
        open_files_limit().to_string(),
    ));
    out
}

/// This process's soft open-files limit (its children inherit it).
pub fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

/// How many ephemeral ports one source address has.
pub fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let v: Vec<u64> = t
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 2).then(|| v[1].saturating_sub(v[0]) + 1)
        })
        .unwrap_or(28_232)
}
