//! How `loadtest scale` splits its connections over processes, source
//! addresses, gateways and HAProxy processes, and the limits it checks
//! before it starts anything: a run that cannot fit says which limit and
//! by how much, instead of failing later with a pile of connect errors.

use std::net::Ipv4Addr;

use anyhow::{bail, Result};

use super::{system, ScaleArgs};

/// First source address's last octet; process k connects from
/// 127.0.0.(FIRST_SOURCE + k).
const FIRST_SOURCE: usize = 10;
/// File descriptors a process needs besides its connections.
const FD_MARGIN: u64 = 100;

/// One `loadtest hold` process.
#[derive(Debug, Clone)]
pub struct Share {
    /// REST base URL for its sign-ups.
    pub api: String,
    /// WebSocket bases, round robin (gateways, or one HAProxy).
    pub ws: Vec<String>,
    pub connections: usize,
    pub per_user: usize,
    pub source: Ipv4Addr,
    /// Index of its HAProxy, or None when straight to the gateways.
    pub proxy: Option<usize>,
}

/// Splits `n` into `parts` nearly equal parts.
fn split(n: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| n / parts + usize::from(i < n % parts))
        .collect()
}

/// The processes of a run, or the limit it would hit.
pub fn plan(a: &ScaleArgs, gateways: &[String]) -> Result<Vec<Share>> {
    let fds = system::open_files_limit();
    if (a.per_process as u64) + FD_MARGIN > fds {
        bail!(
            "the open-files limit is {fds} per process: --per-process {} does not fit (at most {})",
            a.per_process,
            fds.saturating_sub(FD_MARGIN)
        );
    }
    if a.direct > 0 && gateways.is_empty() {
        bail!("--direct needs --gateway URLs");
    }
    let mut shares = Vec::new();
    let direct_procs = a.direct.div_ceil(a.per_process);
    for n in split(a.direct, direct_procs) {
        shares.push(Share {
            api: gateways[0].clone(),
            ws: gateways.to_vec(),
            connections: n,
            per_user: a.per_user_direct,
            source: Ipv4Addr::UNSPECIFIED,
            proxy: None,
        });
    }
    if a.proxied > 0 {
        if a.proxies.is_empty() {
            bail!("--proxied needs --proxy URLs (HAProxy frontends)");
        }
        // Two sockets per proxied connection, one HAProxy process each.
        let per_proxy = a.proxied.div_ceil(a.proxies.len());
        let fit = fds.saturating_sub(FD_MARGIN) / 2;
        if per_proxy as u64 > fit {
            bail!("HAProxy holds two sockets per connection and runs as one process under the open-files limit of {fds}: at most {fit} connections per HAProxy process, so {} proxied connections need {} HAProxy processes (--proxy), not {}",
                a.proxied, (a.proxied as u64).div_ceil(fit), a.proxies.len());
        }
        for (i, (proxy, n)) in a
            .proxies
            .iter()
            .zip(split(a.proxied, a.proxies.len()))
            .enumerate()
        {
            for part in split(n, n.div_ceil(a.per_process)) {
                shares.push(Share {
                    api: proxy.clone(),
                    ws: vec![proxy.clone()],
                    connections: part,
                    per_user: a.per_user_proxied,
                    source: Ipv4Addr::UNSPECIFIED,
                    proxy: Some(i),
                });
            }
        }
    }
    if shares.len() + FIRST_SOURCE > 250 {
        bail!(
            "{} processes: more than the 240 source addresses 127.0.0.10-250",
            shares.len()
        );
    }
    let ports = system::ephemeral_ports();
    for (k, s) in shares.iter_mut().enumerate() {
        s.source = Ipv4Addr::new(127, 0, 0, (FIRST_SOURCE + k) as u8);
        if s.connections as u64 > ports {
            bail!("{} connections from one source address exceed its {ports} ephemeral ports (net.ipv4.ip_local_port_range)", s.connections);
        }
    }
    Ok(shares)
}

/// Checks that the gateways can take their share (open files, with 10%
/// headroom for the uneven user hash of proxied connections) and that the
/// machine has the memory; `gateways` are their figures before the run.
pub fn check_room(a: &ScaleArgs, gateways: &[system::Gateway], available_kib: u64) -> Result<()> {
    let count = gateways.len().max(1);
    let expected = (a.direct / count) as u64 + (a.proxied as u64 * 11 / 10) / count as u64;
    for g in gateways {
        let free = g.max_fds.saturating_sub(g.open_fds + FD_MARGIN);
        if expected > free {
            bail!("gateway {} has {free} free file descriptors (open-files limit {}), but its share is about {expected} connections: start more gateways", g.url, g.max_fds);
        }
    }
    let total = (a.direct + a.proxied) as u64;
    let need = total * a.kib_budget;
    if need > available_kib {
        bail!("{total} connections need about {} MiB here ({} KiB each: gateway, client, kernel, HAProxy), the machine has {} MiB available",
            need / 1024, a.kib_budget, available_kib / 1024);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_even_and_complete() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(9, 3).iter().sum::<usize>(), 9);
        assert!(split(0, 0).is_empty());
    }
}
