//! The chaos scenario's report: the common [`Report`] (figures in `extra`,
//! so `--threshold gateway_converged_ms<3s` works) and its BENCHMARKS.md
//! section with the targets next to what was measured.

use std::fmt::Write as _;

use serde_json::Value;

use super::{audit::Summary, client::Log};
use crate::report::Report;

/// (fault, measured from, target seconds, may the fault disconnect clients?)
const TARGETS: [(&str, &str, f64, bool); 4] = [
    ("gateway", "the kill", 3.0, true),
    ("worker", "the kill", 5.0, true),
    ("redis", "Redis's return", 2.0, false),
    ("postgres", "PostgreSQL's return", 2.0, false),
];

/// Figure names of the fault at `i` (a repeated fault gets a number).
fn key(faults: &[String], i: usize) -> String {
    let n = faults[..i].iter().filter(|f| **f == faults[i]).count();
    if n == 0 {
        faults[i].clone()
    } else {
        format!("{}{}", faults[i], n + 1)
    }
}

pub fn report(params: Value, s: &Summary, logs: &[Log], end: f64, drained: bool) -> Report {
    let mut r = Report {
        scenario: "chaos".into(),
        params,
        connections: logs.len(),
        duration_secs: end,
        sent: s.writes,
        acked: s.acked,
        audit: Some(s.audit.clone()),
        ..Default::default()
    };
    let names: Vec<String> = s.faults.iter().map(|f| f.name.clone()).collect();
    for (i, f) in s.faults.iter().enumerate() {
        let k = key(&names, i);
        let conv = f.converged_secs.map_or(-1.0, |c| c * 1000.0);
        r.extra.insert(format!("{k}_converged_ms"), conv);
        r.extra.insert(format!("{k}_acked"), f.acked as f64);
        r.extra.insert(format!("{k}_retried"), f.retried as f64);
        r.extra.insert(format!("{k}_lost"), f.lost as f64);
        r.extra
            .insert(format!("{k}_disconnects"), f.disconnects as f64);
        r.extra.insert(format!("{k}_raw_dups"), f.raw_dups as f64);
        r.extra
            .insert(format!("{k}_later_stalls"), f64::from(f.later_stalls));
        r.extra.insert(
            format!("{k}_longest_later_stall_ms"),
            f.longest_later_stall * 1000.0,
        );
        if let Some(w) = &f.worst {
            // The message that converged last, times from the reference.
            r.extra.insert(format!("{k}_last_seq"), w.seq as f64);
            r.extra.insert(format!("{k}_last_due_ms"), w.due * 1000.0);
            r.extra
                .insert(format!("{k}_last_acked_ms"), w.acked * 1000.0);
            r.extra
                .insert(format!("{k}_last_attempts"), w.attempts as f64);
        }
    }
    for l in logs {
        for (code, n) in &l.errors {
            *r.extra.entry(format!("error_{code}")).or_default() += *n as f64;
            r.errors += n;
        }
    }
    let sum = |f: fn(&Log) -> u64| logs.iter().map(f).sum::<u64>() as f64;
    r.extra.insert("raw_dups".into(), s.raw_dups as f64);
    r.extra.insert("disconnects".into(), s.disconnects as f64);
    r.extra.insert("unacked_at_end".into(), s.unacked as f64);
    r.extra
        .insert("seq_conflicts".into(), s.seq_conflicts as f64);
    r.extra
        .insert("drained".into(), if drained { 1.0 } else { 0.0 });
    r.extra.insert("syncs".into(), sum(|l| l.syncs as u64));
    r.extra
        .insert("sync_too_large".into(), sum(|l| l.sync_too_large as u64));
    r.extra
        .insert("ahead_of_gap".into(), sum(|l| l.ahead_of_gap));
    r.extra.insert(
        "connect_failures".into(),
        sum(|l| l.connect_failures as u64),
    );
    r
}

/// The BENCHMARKS.md section of a chaos report.
pub fn section(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Chaos\n");
    let _ = writeln!(s, "`loadtest chaos`: its own pool (a redis-server, PostgreSQL behind a TCP proxy it can cut, a fresh database, 2 gateways, 1 worker, HAProxy with the shipped haproxy.cfg) under steady traffic from clients that reconnect with exponential backoff and jitter, `sync.request` from their last seq, dedupe by frame id and retry unanswered writes with the same id after 5 s (and, unless `resendOnReconnect` is false, right after a reconnect, as seed 002 §6.5 has clients send pending messages on reconnect). Faults one after another, with recovery time between. *Converged*: every client holds every eventually-acked message that was due more than 0.5 s earlier, nothing missing below it. A fault is charged with the episode of lateness it caused: the late messages at its reference moment (the kill, or the dependency's return), chained with every later one that turned late within 1 s of the episode's end; its time is that episode's end, from the reference. Lateness that starts after the clients had converged is a separate stall, listed in its own column and not charged to the fault. Parameters: `{}`.\n", r.params);
    let _ = writeln!(s, "| fault | converged | target | met | writes acked | retried | lost | disconnects | raw duplicates (before dedupe) | later stalls (longest) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    let faults: Vec<String> = r.params["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    for i in 0..faults.len() {
        let k = key(&faults, i);
        let get = |f: &str| {
            r.extra
                .get(&format!("{k}_{f}"))
                .copied()
                .unwrap_or(f64::NAN)
        };
        let Some(&(_, from, target, may_drop)) = TARGETS.iter().find(|t| t.0 == faults[i]) else {
            continue;
        };
        let conv = get("converged_ms");
        let (lost, drops) = (get("lost"), get("disconnects"));
        let met =
            conv >= 0.0 && conv <= target * 1000.0 && lost == 0.0 && (may_drop || drops == 0.0);
        let conv_text = if conv < 0.0 {
            "**never** (acked messages missing)".to_string()
        } else {
            format!("{:.1} s after {from}", conv / 1000.0)
        };
        let target_text = if may_drop {
            format!("≤ {target:.0} s")
        } else {
            format!("≤ {target:.0} s, no disconnects")
        };
        let _ = writeln!(
            s,
            "| {k} | {conv_text} | {target_text} | {} | {} | {} | {lost} | {drops} | {} | {} ({:.1} s) |",
            if met { "yes" } else { "**no**" },
            get("acked"),
            get("retried"),
            get("raw_dups"),
            get("later_stalls"),
            get("longest_later_stall_ms") / 1000.0
        );
    }
    let a = r.audit.clone().unwrap_or_default();
    let x = |k: &str| r.extra.get(k).copied().unwrap_or(f64::NAN);
    let _ = writeln!(s, "\nAudit of every acked message on every member ({} writes, {} acked, {} unacked at the end): expected {} deliveries, lost {}, duplicated after dedupe {}, out of order {}; raw duplicates removed by dedupe {}, disconnects {}, syncs {}, events that arrived ahead of a gap {}, seq conflicts {}, errors {}.",
        r.sent, r.acked, x("unacked_at_end"), a.expected, a.lost, a.duplicated, a.out_of_order, x("raw_dups"), x("disconnects"), x("syncs"), x("ahead_of_gap"), x("seq_conflicts"), r.errors);
    s
}
