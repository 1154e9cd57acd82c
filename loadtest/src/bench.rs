//! `loadtest bench`: the standard set, run against a pool started for the
//! purpose (`make bench`), written to BENCHMARKS.md with the machine, the
//! commit, every figure and the ratios to the bare baseline measured in
//! the same run.

use std::{fmt::Write as _, time::Duration};

use anyhow::Result;

use crate::{connections, report::Report, storm, target::Target, traffic};

pub struct BenchTargets {
    /// REST through HAProxy, WebSockets straight to the gateways.
    pub proxy: Target,
    /// REST and WebSockets through HAProxy (the path clients use).
    pub haproxy: Target,
    /// Straight to the first gateway (single-gateway figures, memory).
    pub one_gateway: Target,
    /// The pool's Redis (`host:port`), for command counts.
    pub redis: Option<String>,
    /// The pool's PostgreSQL URL, for the search fixture.
    pub database: Option<String>,
    /// Also run the chaos scenario (on a pool of its own).
    pub chaos: bool,
}

/// Runs every scenario; returns the reports in order.
pub async fn run(t: &BenchTargets, quick: bool) -> Result<Vec<Report>> {
    let secs = |s: u64| Duration::from_secs(if quick { 2 } else { s });
    let scale = |n: usize| if quick { (n / 10).max(6) } else { n };
    let mut reports = Vec::new();

    // Memory first, while the gateway's heap is fresh: after the traffic
    // runs, freed memory would be reused and hide the cost of connections.
    say("idle");
    reports.push(connections::idle(&t.one_gateway, scale(15_000), 100, secs(5)).await?);

    // The bare fan-out limit and the full pipeline on one gateway, same load.
    let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare = Target::bare(bare_listener.local_addr()?);
    let server = tokio::spawn(crate::baseline::serve(bare_listener));
    // 80 senders x 10 msg/s x 500 members offers 400k deliveries/s: more
    // than this machine sustains through the pipeline, so the achieved
    // rate is the limit, not the offer.
    let (members, senders, rate) = (scale(500), scale(80).min(scale(500)), 10.0);
    say("baseline (saturation)");
    reports.push(
        traffic::run(
            &bare,
            traffic::fanout_plan(&bare, members, senders, rate, secs(8)).await?,
        )
        .await?,
    );
    // The same moderate load as fanout-20k below, on the bare broadcaster:
    // the ratios of the latency rows are to this run.
    say("baseline at 20k deliveries/s");
    let mut bare_20k = traffic::run(
        &bare,
        traffic::fanout_plan(&bare, scale(500), scale(10), 4.0, secs(15)).await?,
    )
    .await?;
    bare_20k.scenario = "baseline-20k".into();
    reports.push(bare_20k);
    server.abort();
    say("fanout (saturation, one gateway)");
    // 800 messages/s in one channel is past summary mode's rate: every
    // member shows the channel (chat.focus), so every one gets every
    // message, as the bare baseline's clients do (and no badges).
    let mut plan = traffic::fanout_plan(&t.one_gateway, members, senders, rate, secs(8)).await?;
    plan.focused = (0..members).collect();
    let mut sat = traffic::run(&t.one_gateway, plan).await?;
    sat.scenario = "fanout-saturation".into();
    reports.push(sat);

    // Every latency row twice: straight to the two gateways, and through
    // HAProxy as clients connect.
    for (target, suffix, via) in [
        (&t.proxy, "", "straight to two gateways"),
        (&t.haproxy, "-haproxy", "through HAProxy"),
    ] {
        say(&format!("fanout at 20k deliveries/s ({via})"));
        let mut steady = traffic::run(
            target,
            traffic::fanout_plan(target, scale(500), scale(10), 4.0, secs(15)).await?,
        )
        .await?;
        steady.scenario = format!("fanout-20k{suffix}");
        reports.push(steady);

        say(&format!("chats ({via})"));
        let mut chats = traffic::run(
            target,
            traffic::chats_plan(target, scale(600), scale(200), 5, 2.0, secs(10)).await?,
        )
        .await?;
        chats.scenario = format!("chats{suffix}");
        reports.push(chats);
    }

    reports.extend(large_channels(t, quick).await?);

    match (&t.redis, &t.database) {
        (Some(redis), Some(db)) => {
            say("write-cost (the chats load with every process's counters)");
            // 2,000 messages/s offered, one sender per chat at 2/s.
            let shape = crate::cost::Shape {
                kind: "group".into(),
                users: scale(2_500),
                chats: scale(1_000),
                size: 5,
                rate: 2.0,
                duration: secs(10),
            };
            reports.push(crate::cost::run(&t.proxy, shape, redis, db).await?);
        }
        _ => say("write-cost skipped: needs --redis and --database"),
    }

    say("ramp");
    reports.push(connections::ramp(&t.proxy, scale(3_000), 1_000.0, 100).await?);

    say("reconnect-storm");
    reports.push(storm::storm(&t.proxy, scale(2_000), scale(50).max(1), 10).await?);

    say("notify");
    let shape = crate::notify::Shape {
        pairs: if quick { 10 } else { 200 },
        rate: 2.0,
        duration: secs(10),
    };
    reports.push(crate::notify::run(&t.proxy, shape).await?);

    say("presence");
    let shape = crate::presence::Shape {
        users: if quick { 60 } else { 10_000 },
        watch: if quick { 10 } else { 200 },
        churn_pct_per_min: if quick { 100.0 } else { 5.0 },
        duration: secs(30),
    };
    reports.push(crate::presence::run(&t.proxy, shape, t.redis.as_deref()).await?);

    // Last: the fixture leaves a million messages in the database.
    match &t.database {
        Some(db) => {
            say("search (1M-message fixture)");
            let shape = crate::search::Shape {
                messages: if quick { 20_000 } else { 1_000_000 },
                chats: if quick { 20 } else { 200 },
                other_chats: if quick { 5 } else { 50 },
                samples: if quick { 10 } else { 200 },
                searchers: 10,
            };
            reports.push(crate::search::run(&t.proxy, db, shape).await?);
        }
        None => say("search skipped: no --database"),
    }
    if t.chaos {
        say("chaos (a pool of its own: gateway, worker, Redis, PostgreSQL faults)");
        let mut args = crate::chaos::ChaosArgs::short();
        if quick {
            (args.members, args.warmup, args.recovery, args.pg_outage) = (10, 3, 8, 5);
        }
        reports.push(crate::chaos::run(&args).await?);
    }
    Ok(reports)
}

/// Issue 13 item 4: a 5,000-member broadcast channel, a 5,000-member
/// channel past summary mode's rate, and many chats of 50.
async fn large_channels(t: &BenchTargets, quick: bool) -> Result<Vec<Report>> {
    let secs = |s: u64| Duration::from_secs(if quick { 2 } else { s });
    let scale = |n: usize| if quick { (n / 10).max(6) } else { n };
    let mut out = Vec::new();
    say("broadcast (5,000-member read-only channel, owner and an admin post)");
    let shape = crate::channel::Shape {
        members: scale(5_000),
        senders: 2,
        rate: 5.0,
        viewers: 0,
        read_only: true,
        duration: secs(15),
    };
    out.push(crate::channel::run(&t.proxy, shape).await?);
    say("busy-channel (5,000 members, 216 messages/s, 100 viewers)");
    let shape = crate::channel::Shape {
        members: scale(5_000),
        // Quick runs too pass the 100 messages/s of summary mode.
        senders: if quick { 12 } else { 24 },
        rate: 9.0,
        viewers: scale(100),
        read_only: false,
        duration: secs(15),
    };
    out.push(crate::channel::run(&t.proxy, shape).await?);
    // Channels: at the default notification level their messages alert
    // no one (a group message alerts every member: 49 toasts each).
    say("chats-50 (200 private channels of 50 among 5,000 users)");
    let size = 50.min(scale(50));
    let plan = traffic::chats_plan_of(
        &t.proxy,
        "private_channel",
        scale(5_000),
        scale(200),
        size,
        1.0,
        secs(15),
    )
    .await?;
    let mut chats = traffic::run(&t.proxy, plan).await?;
    chats.scenario = "chats-50".into();
    out.push(chats);
    Ok(out)
}

fn say(what: &str) {
    eprintln!("bench: {what}");
}

fn find<'a>(reports: &'a [Report], name: &str) -> Option<&'a Report> {
    reports.iter().find(|r| r.scenario == name)
}

/// BENCHMARKS.md for these reports.
pub fn markdown(reports: &[Report], machine: &str, commit: &str, date: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Written by `make bench` (`loadtest bench`) on {date}, commit `{commit}`.\n"
    );
    let _ = writeln!(s, "Machine: {machine}. The load generator, HAProxy, two gateways, the worker, Redis and PostgreSQL all share this one machine, and it is shared with other work: figures are one run's medians and percentiles, compare them within this file rather than across runs.\n");

    let bare = find(reports, "baseline");
    let sat = find(reports, "fanout-saturation");
    let steady = find(reports, "fanout-20k");
    let idle = find(reports, "idle");
    let _ = writeln!(s, "## Targets\n");
    let _ = writeln!(s, "| target | measured | met |\n|---|---|---|");
    let p99_of = |r: &Report| r.latency_ms.as_ref().map(|p| p.p99).unwrap_or(f64::NAN);
    if let Some(r) = steady {
        let p99 = p99_of(r);
        let _ = writeln!(s, "| p99 send→receive < 25 ms at 20k deliveries/s | p99 {p99:.1} ms at {:.0} deliveries/s | {} |", r.deliveries_per_sec, yes(p99 < 25.0 && r.deliveries_per_sec >= 19_000.0));
    }
    if let Some(r) = find(reports, "fanout-20k-haproxy") {
        let p99 = p99_of(r);
        let _ = writeln!(s, "| p99 send→receive < 20 ms at 20k deliveries/s through HAProxy (issue 13) | p99 {p99:.1} ms at {:.0} deliveries/s | {} |", r.deliveries_per_sec, yes(p99 < 20.0 && r.deliveries_per_sec >= 19_000.0));
    }
    if let Some(b) = find(reports, "baseline-20k") {
        for name in ["fanout-20k", "fanout-20k-haproxy"] {
            if let Some(r) = find(reports, name) {
                let ratio = p99_of(r) / p99_of(b);
                let _ = writeln!(s, "| `{name}` p99 within 1.2× the bare baseline's at the same load, same run (issue 13) | {ratio:.2}× ({:.1} vs {:.1} ms) | {} |", p99_of(r), p99_of(b), yes(ratio <= 1.2));
            }
        }
    }
    if let Some(r) = sat {
        let _ = writeln!(
            s,
            "| ≥ 50k deliveries/s on one gateway | {:.0} deliveries/s | {} |",
            r.deliveries_per_sec,
            yes(r.deliveries_per_sec >= 50_000.0)
        );
    }
    if let Some(r) = idle {
        let kib = r.rss_per_conn_kib.unwrap_or(f64::NAN);
        // At machine scale (200k over 12 gateways): the scale section.
        let _ = writeln!(s, "| ≤ 5 KiB gateway RSS per idle connection (one gateway; 200k connections: see Connections at scale) | {kib:.2} KiB at {} connections | {} |", r.connections, yes(kib <= 5.0));
    }
    if let (Some(b), Some(f)) = (bare, sat) {
        let ratio = f.deliveries_per_sec / b.deliveries_per_sec.max(1.0);
        let _ = writeln!(s, "| full pipeline ≥ 60% of the bare baseline | {:.0}% ({:.0} vs {:.0} deliveries/s) | {} |", ratio * 100.0, f.deliveries_per_sec, b.deliveries_per_sec, yes(ratio >= 0.6));
    }
    let audits: u64 = reports
        .iter()
        .filter_map(|r| r.audit.as_ref())
        .map(|a| a.lost + a.duplicated + a.out_of_order)
        .sum();
    let _ = writeln!(
        s,
        "| zero lost, duplicated, out-of-order deliveries | {audits} anomalies | {} |",
        yes(audits == 0)
    );
    if let Some(r) = find(reports, "notify") {
        let p99 = r.latency_ms.as_ref().map(|p| p.p99).unwrap_or(f64::NAN);
        let pps = r.extra.get("pushes_per_sec").copied().unwrap_or(f64::NAN);
        let offered = r.params["pairs"].as_f64().unwrap_or(0.0) / 2.0
            * r.params["ratePerSender"].as_f64().unwrap_or(0.0);
        let _ = writeln!(s, "| toasts: send → toast p99 < 100 ms; pushes delivered at ≥ 95% of the {offered:.0}/s offered, through the push worker to a local receiver | toast p99 {p99:.1} ms, {pps:.0} pushes/s | {} |", yes(p99 < 100.0 && pps >= 0.95 * offered));
    }
    if let Some(r) = find(reports, "presence") {
        let p99 = r.latency_ms.as_ref().map(|p| p.p99).unwrap_or(f64::NAN);
        let cpu = r
            .extra
            .get("gateway_cpu_percent")
            .copied()
            .unwrap_or(f64::NAN);
        let _ = writeln!(s, "| presence: change → watcher p99 ≤ 2,500 ms (2 s batches) and gateways ≤ 25% of one core at {} users × {} watched, {}%/min changing | p99 {p99:.0} ms, gateways {cpu:.1}% | {} |",
            r.connections, r.params["watchEach"], r.params["churnPctPerMin"], yes(p99 <= 2500.0 && cpu <= 25.0));
    }
    if let Some(r) = find(reports, "search") {
        let _ = writeln!(s, "{}", crate::search::target_row(r));
    }

    let _ = writeln!(s, "\n## Message traffic\n");
    let _ = writeln!(s, "Latencies in ms, measured from each message's scheduled send time (coordinated-omission aware).\n");
    let _ = writeln!(s, "| scenario | parameters | conns | sent | acked | errors | deliveries/s | p50 | p90 | p99 | p99.9 | max | ack p50 | ack p99 | lost | dup | out-of-order |");
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in reports.iter().filter(|r| {
        r.latency_ms.is_some()
            && !["presence", "notify", "search", "chaos"].contains(&r.scenario.as_str())
    }) {
        let l = r.latency_ms.as_ref().expect("filtered");
        let (a50, a99) = r
            .ack_ms
            .as_ref()
            .map(|a| (a.p50, a.p99))
            .unwrap_or((f64::NAN, f64::NAN));
        let a = r.audit.clone().unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            r.scenario, r.params, r.connections, r.sent, r.acked, r.errors, r.deliveries_per_sec,
            l.p50, l.p90, l.p99, l.p999, l.max, a50, a99, a.lost, a.duplicated, a.out_of_order
        );
    }
    if let (Some(b), Some(f)) = (bare, sat) {
        let lat = |r: &Report| {
            r.latency_ms
                .as_ref()
                .map(|p| (p.p50, p.p99))
                .unwrap_or((f64::NAN, f64::NAN))
        };
        let (bp50, bp99) = lat(b);
        let (fp50, fp99) = lat(f);
        let _ = writeln!(s, "\nFull pipeline vs bare baseline, same load, same run: throughput {:.0}%, p50 {:.1}×, p99 {:.1}×.", 100.0 * f.deliveries_per_sec / b.deliveries_per_sec.max(1.0), fp50 / bp50, fp99 / bp99);
    }

    let _ = writeln!(s, "\n## Connections\n");
    let _ = writeln!(s, "| scenario | parameters | connections | errors | connect p50 | connect p99 | connect max | other |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for r in reports
        .iter()
        .filter(|r| r.latency_ms.is_none() && r.scenario != "chaos")
    {
        let (c50, c99, cmax) = r
            .connect_ms
            .as_ref()
            .map(|c| (c.p50, c.p99, c.max))
            .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        let mut other: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        if let Some(kib) = r.rss_per_conn_kib {
            other.insert(0, format!("**RSS/connection {kib:.2} KiB**"));
        }
        if let Some(a) = &r.audit {
            other.push(format!(
                "audit: expected {} lost {} dup {} out-of-order {}",
                a.expected, a.lost, a.duplicated, a.out_of_order
            ));
        }
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {c50:.2} | {c99:.2} | {cmax:.2} | {} |",
            r.scenario,
            r.params,
            r.connections,
            r.errors,
            other.join("; ")
        );
    }
    if let Some(r) = find(reports, "notify") {
        let _ = writeln!(s, "\n## Notifications\n");
        let _ = writeln!(s, "Direct-message pairs; half the recipients connected (toast latency: scheduled send → `notification.toast`), half offline with a webhook device on a local receiver (push: scheduled send → webhook request, through the push worker).\n");
        let _ = writeln!(s, "| parameters | sent | toast p50 | toast p99 | toast max | figures |\n|---|---|---|---|---|---|");
        let (p50, p99, max) = r
            .latency_ms
            .as_ref()
            .map(|l| (l.p50, l.p99, l.max))
            .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        let figures: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        let _ = writeln!(
            s,
            "| `{}` | {} | {p50:.1} | {p99:.1} | {max:.1} | {} |",
            r.params,
            r.sent,
            figures.join("; ")
        );
    }
    if let Some(r) = find(reports, "presence") {
        let _ = writeln!(s, "\n## Presence\n");
        let _ = writeln!(s, "Change → watcher latency includes the 2 s per-connection batch window by design (docs/protocol.md, Presence).\n");
        let _ = writeln!(s, "| parameters | connections | changes | latency p50 | p99 | max | figures |\n|---|---|---|---|---|---|---|");
        let (p50, p99, max) = r
            .latency_ms
            .as_ref()
            .map(|l| (l.p50, l.p99, l.max))
            .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        let figures: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {p50:.0} | {p99:.0} | {max:.0} | {} |",
            r.params,
            r.connections,
            r.sent,
            figures.join("; ")
        );
    }
    s.push_str(&crate::channel::section(reports));
    if let Some(r) = find(reports, "write-cost") {
        s.push_str(&crate::cost::section(r));
    }
    if let Some(r) = find(reports, "search") {
        s.push_str(&crate::search::section(r));
    }
    if let Some(r) = find(reports, "chaos") {
        s.push_str(&crate::chaos::section(r));
    }
    let _ = writeln!(s, "\n{}", include_str!("../bench-notes.md").trim_end());
    s
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}
