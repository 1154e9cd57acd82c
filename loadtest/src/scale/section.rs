//! The result of a scale run: a [`Report`] (for `--json` and thresholds)
//! and its own section of BENCHMARKS.md, between markers, so `make bench`
//! and `make bench-scale` each rewrite only their part of the file.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{children::Outcome, plan::Share, ScaleArgs};
use crate::report::{Percentiles, Report};

const BEGIN: &str = "<!-- scale:begin -->";
const END: &str = "<!-- scale:end -->";

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Gateway RSS growth per connection, KiB, each gateway on its own count.
fn per_gateway_kib(o: &Outcome) -> Vec<f64> {
    o.before
        .gateways
        .iter()
        .zip(&o.after.gateways)
        .filter(|(_, a)| a.connections > 0)
        .map(|(b, a)| {
            let conns = a.connections.saturating_sub(b.connections).max(1);
            a.rss.saturating_sub(b.rss) as f64 / conns as f64 / 1024.0
        })
        .collect()
}

fn connect_percentiles(ready: &[Value]) -> Option<Percentiles> {
    let all: Vec<&Value> = ready
        .iter()
        .map(|r| &r["connectMs"])
        .filter(|c| c.is_object())
        .collect();
    let col = |k: &str| -> Vec<f64> { all.iter().filter_map(|c| c[k].as_f64()).collect() };
    let worst = |k: &str| col(k).into_iter().fold(f64::NAN, f64::max);
    (!all.is_empty()).then(|| Percentiles {
        count: all.iter().filter_map(|c| c["count"].as_u64()).sum(),
        p50: median(col("p50")),
        p90: worst("p90"),
        p99: worst("p99"),
        p999: worst("p999"),
        max: worst("max"),
    })
}

pub fn report(a: &ScaleArgs, shares: &[Share], o: &Outcome, limits: &[(String, String)]) -> Report {
    let held = |proxy: bool| -> u64 {
        shares
            .iter()
            .zip(&o.ready)
            .filter(|(s, _)| s.proxy.is_some() == proxy)
            .filter_map(|(_, r)| r["connections"].as_u64())
            .sum()
    };
    let (direct, proxied) = (held(false), held(true));
    let total = (direct + proxied).max(1) as f64;
    let errors: u64 = o.ready.iter().filter_map(|r| r["errors"].as_u64()).sum();
    let kib = per_gateway_kib(o);
    let (b, f) = (&o.before.machine, &o.after.machine);
    let grow = |x: u64, y: u64| y as f64 - x as f64;
    let client_kib: u64 = o.ready.iter().filter_map(|r| r["rssKib"].as_u64()).sum();
    let mut r = Report {
        scenario: "scale".into(),
        params: json!({
            "direct": a.direct, "proxied": a.proxied, "gateways": o.after.gateways.len(),
            "haproxies": a.proxies.len(), "processes": shares.len(), "perProcess": a.per_process,
            "holdSecs": a.hold, "clientBufferBytes": a.buffer,
        }),
        connections: (direct + proxied) as usize,
        duration_secs: o.connect_secs,
        errors,
        connect_ms: connect_percentiles(&o.ready),
        rss_per_conn_kib: Some(median(kib.clone())),
        ..Default::default()
    };
    let counted =
        |s: &super::children::Snapshot| s.gateways.iter().map(|g| g.connections).sum::<u64>();
    let figures = [
        (
            "gateway_connections",
            counted(&o.after) as f64 - counted(&o.before) as f64,
        ),
        ("direct_connections", direct as f64),
        ("proxied_connections", proxied as f64),
        (
            "gateway_rss_kib_min",
            kib.iter().copied().fold(f64::NAN, f64::min),
        ),
        (
            "gateway_rss_kib_max",
            kib.iter().copied().fold(f64::NAN, f64::max),
        ),
        (
            "gateway_rss_after_mib",
            o.after.gateways.iter().map(|g| g.rss).sum::<u64>() as f64 / 1048576.0,
        ),
        (
            "kernel_slab_kib_per_conn",
            grow(b.slab_kib, f.slab_kib) / total,
        ),
        (
            "tcp_buffer_kib_per_conn",
            grow(b.tcp_mem_pages, f.tcp_mem_pages) * 4.0 / total,
        ),
        ("tcp_sockets_added", grow(b.tcp_inuse, f.tcp_inuse)),
        (
            "machine_used_growth_mib",
            grow(b.used_kib, f.used_kib) / 1024.0,
        ),
        (
            "machine_used_kib_per_conn",
            grow(b.used_kib, f.used_kib) / total,
        ),
        ("client_rss_kib_per_conn", client_kib as f64 / total),
        (
            "haproxy_rss_kib_per_proxied_conn",
            grow(o.before.haproxy_rss_kib, o.after.haproxy_rss_kib) / (proxied.max(1) as f64),
        ),
        ("connect_secs", o.connect_secs),
    ];
    for (k, v) in figures {
        r.extra.insert(k.into(), v);
    }
    r.params["limits"] = limits
        .iter()
        .map(|(k, v)| json!(format!("{k} {v}")))
        .collect();
    r
}

/// The markdown of the scale section (markers included).
pub fn markdown(r: &Report, o: &Outcome, a: &ScaleArgs) -> String {
    let x = |k: &str| r.extra.get(k).copied().unwrap_or(f64::NAN);
    let kib = r.rss_per_conn_kib.unwrap_or(f64::NAN);
    let yes = |ok: bool| if ok { "yes" } else { "**no**" };
    let c = r.connect_ms.clone().unwrap_or(Percentiles {
        count: 0,
        p50: f64::NAN,
        p90: f64::NAN,
        p99: f64::NAN,
        p999: f64::NAN,
        max: f64::NAN,
    });
    let samples: Vec<String> = o
        .ready
        .iter()
        .flat_map(|v| v["errorSamples"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}\n## Connections at scale\n");
    let _ = writeln!(
        s,
        "Written by `make bench-scale` (`loadtest scale`){}.\n",
        if a.provenance.is_empty() {
            String::new()
        } else {
            format!(" {}", a.provenance)
        }
    );
    let _ = writeln!(s, "Idle connections held {} s: {} gateways, {} HAProxy processes (the shipped haproxy.cfg with every gateway listed in it), {} `loadtest hold` processes of at most {} connections each, each from its own source address 127.0.0.x (the open-files limit is per process). A direct connection is two sockets on this machine, a proxied one four.\n",
        a.hold, r.params["gateways"], r.params["haproxies"], r.params["processes"], a.per_process);
    let _ = writeln!(s, "| target | measured | met |\n|---|---|---|");
    let _ = writeln!(s, "| ≥ 200,000 concurrent connections on this machine | {:.0} open at the gateways at the second reading; the clients held {} ({} direct, {} through HAProxy), {} failed to connect | {} |", x("gateway_connections"), r.connections, x("direct_connections"), x("proxied_connections"), r.errors, yes(x("gateway_connections") >= 200_000.0 && r.errors == 0));
    let _ = writeln!(s, "| ≤ 5 KiB gateway RSS per idle connection (median over gateways) | {kib:.2} KiB (gateways {:.2}-{:.2}) | {} |", x("gateway_rss_kib_min"), x("gateway_rss_kib_max"), yes(kib <= 5.0));
    let _ = writeln!(s, "\n| figure | value |\n|---|---|");
    let rows = [
        (
            "time to open every connection",
            format!("{:.0} s", x("connect_secs")),
        ),
        (
            "connect p50 / p99 / max (ms; p99 and max of the worst process)",
            format!("{:.1} / {:.1} / {:.1}", c.p50, c.p99, c.max),
        ),
        (
            "gateway RSS after, all gateways",
            format!("{:.0} MiB", x("gateway_rss_after_mib")),
        ),
        (
            "kernel slab per connection (Δ Slab in /proc/meminfo)",
            format!("{:.2} KiB", x("kernel_slab_kib_per_conn")),
        ),
        (
            "TCP buffer memory per connection (Δ `mem` pages in /proc/net/sockstat)",
            format!("{:.3} KiB", x("tcp_buffer_kib_per_conn")),
        ),
        (
            "TCP sockets added",
            format!("{:.0}", x("tcp_sockets_added")),
        ),
        (
            "HAProxy RSS per proxied connection",
            format!("{:.2} KiB", x("haproxy_rss_kib_per_proxied_conn")),
        ),
        (
            "load generator RSS per connection",
            format!("{:.2} KiB", x("client_rss_kib_per_conn")),
        ),
        (
            "machine used memory growth (MemTotal − MemAvailable)",
            format!(
                "{:.0} MiB, {:.1} KiB per connection",
                x("machine_used_growth_mib"),
                x("machine_used_kib_per_conn")
            ),
        ),
        (
            "limits in force",
            r.params["limits"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default(),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    if !samples.is_empty() {
        let _ = writeln!(
            s,
            "\nConnect errors (samples): {}",
            samples
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let _ = writeln!(
        s,
        "\nPer gateway (connections, RSS after): {}\n{END}",
        o.after
            .gateways
            .iter()
            .map(|g| format!("{} {:.0} MiB", g.connections, g.rss as f64 / 1048576.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s
}

/// The scale section of `text`, markers included, if it has one.
pub fn extract(text: &str) -> Option<&str> {
    let start = text.find(BEGIN)?;
    let end = text[start..].find(END)? + start + END.len();
    Some(&text[start..end])
}

/// Puts `section` into the file at `path`: in place of its scale section,
/// else before its notes, else at the end.
pub fn write(path: &str, section: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let section = section.trim_end();
    let new = if let Some(old) = extract(&text) {
        text.replacen(old, section, 1)
    } else if let Some(at) = text.find("\n## Notes") {
        format!("{}\n{section}\n{}", &text[..at], &text[at..])
    } else {
        format!("{}\n{section}\n", text.trim_end())
    };
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_replaces_its_predecessor_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("scale-section-{}", std::process::id()));
        let path = dir.to_string_lossy().to_string();
        std::fs::write(&path, "# B\n\n## Notes\n\n* n\n").unwrap();
        write(&path, &format!("{BEGIN}\none\n{END}")).unwrap();
        write(&path, &format!("{BEGIN}\ntwo\n{END}")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            text,
            format!("# B\n\n{BEGIN}\ntwo\n{END}\n\n## Notes\n\n* n\n")
        );
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
