//! What a scenario measured, how it is printed, and the `--threshold`
//! checks that turn it into a pass/fail exit code.

use std::{collections::BTreeMap, fmt::Write as _};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

/// Latency percentiles in milliseconds (recorded in microseconds).
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

/// A new latency histogram: 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds are valid")
}

/// The delivery audit: every acked message must reach every member
/// connection exactly once, in seq order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    pub expected: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Deliveries a `chat.summary` accounted for instead (summary mode):
    /// acked messages a connection did not get, at or before the newest
    /// seq its summaries covered.
    pub summarized: u64,
    /// Summaries whose `newMessages` was not the number of messages they
    /// covered.
    pub summary_miscounts: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub params: Value,
    pub connections: usize,
    pub duration_secs: f64,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub delivered: u64,
    pub deliveries_per_sec: f64,
    /// Send (intended time) to receive, per delivery.
    pub latency_ms: Option<Percentiles>,
    /// Send (intended time) to ack.
    pub ack_ms: Option<Percentiles>,
    /// TCP connect + WebSocket upgrade + `session.ready`.
    pub connect_ms: Option<Percentiles>,
    pub audit: Option<Audit>,
    pub rss_per_conn_kib: Option<f64>,
    /// Scenario-specific figures.
    pub extra: BTreeMap<String, f64>,
}

impl Report {
    /// A named figure, for thresholds.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let pct = |p: &Option<Percentiles>, q: &str| {
            p.as_ref().and_then(|p| match q {
                "p50" => Some(p.p50),
                "p90" => Some(p.p90),
                "p99" => Some(p.p99),
                "p999" => Some(p.p999),
                "max" => Some(p.max),
                _ => None,
            })
        };
        let audit = |f: fn(&Audit) -> u64| self.audit.as_ref().map(|a| f(a) as f64);
        match name {
            "p50" | "p90" | "p99" | "p999" | "max" => pct(&self.latency_ms, name),
            "deliveries_per_sec" | "throughput" => Some(self.deliveries_per_sec),
            "errors" => Some(self.errors as f64),
            "lost" => audit(|a| a.lost),
            "duplicated" => audit(|a| a.duplicated),
            "out_of_order" => audit(|a| a.out_of_order),
            "rss_per_conn_kib" => self.rss_per_conn_kib,
            other => {
                if let Some(q) = other.strip_prefix("ack_") {
                    pct(&self.ack_ms, q)
                } else if let Some(q) = other.strip_prefix("connect_") {
                    pct(&self.connect_ms, q)
                } else {
                    self.extra.get(other).copied()
                }
            }
        }
    }

    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "== {} ==  {}", self.scenario, self.params);
        let _ = writeln!(
            s,
            "connections {}  duration {:.1}s  sent {}  acked {}  errors {}",
            self.connections, self.duration_secs, self.sent, self.acked, self.errors
        );
        if self.delivered > 0 {
            let _ = writeln!(
                s,
                "delivered {}  ({:.0} deliveries/s)",
                self.delivered, self.deliveries_per_sec
            );
        }
        for (label, p) in [
            ("send->receive", &self.latency_ms),
            ("ack", &self.ack_ms),
            ("connect", &self.connect_ms),
        ] {
            if let Some(p) = p {
                let _ = writeln!(
                    s,
                    "{label:<14} p50 {:.2}ms  p90 {:.2}ms  p99 {:.2}ms  p99.9 {:.2}ms  max {:.2}ms  (n={})",
                    p.p50, p.p90, p.p99, p.p999, p.max, p.count
                );
            }
        }
        if let Some(a) = &self.audit {
            let _ = writeln!(
                s,
                "audit: expected {}  lost {}  duplicated {}  out-of-order {}",
                a.expected, a.lost, a.duplicated, a.out_of_order
            );
            if a.summarized > 0 || a.summary_miscounts > 0 {
                let _ = writeln!(
                    s,
                    "summary mode: {} deliveries covered by chat.summary  miscounted {}",
                    a.summarized, a.summary_miscounts
                );
            }
        }
        if let Some(kib) = self.rss_per_conn_kib {
            let _ = writeln!(s, "gateway RSS per connection: {kib:.2} KiB");
        }
        for (k, v) in &self.extra {
            let _ = writeln!(s, "{k}: {v:.2}");
        }
        s
    }

    /// Failed checks, as readable lines (empty: all passed).
    pub fn check(&self, thresholds: &[Threshold]) -> Vec<String> {
        thresholds
            .iter()
            .filter_map(|t| match self.metric(&t.metric) {
                None => Some(format!("{}: not measured by this scenario", t.text)),
                Some(v) if !t.holds(v) => Some(format!("{}: measured {v:.3}", t.text)),
                Some(_) => None,
            })
            .collect()
    }
}

/// `p99<25ms`, `lost<1`, `deliveries_per_sec>20000`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub text: String,
    pub metric: String,
    pub less: bool,
    pub value: f64,
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Self> {
        let (metric, less, rest) = if let Some((m, r)) = text.split_once('<') {
            (m, true, r)
        } else if let Some((m, r)) = text.split_once('>') {
            (m, false, r)
        } else {
            bail!("threshold {text:?} needs < or >, e.g. p99<25ms");
        };
        let rest = rest.trim();
        let (number, scale) = if let Some(n) = rest.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = rest.strip_suffix("us") {
            (n, 0.001)
        } else if let Some(n) = rest.strip_suffix("/s") {
            (n, 1.0)
        } else if let Some(n) = rest.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (rest, 1.0)
        };
        let value: f64 = number
            .trim()
            .parse()
            .with_context(|| format!("threshold {text:?}: bad number"))?;
        Ok(Self {
            text: text.to_string(),
            metric: metric.trim().to_string(),
            less,
            value: value * scale,
        })
    }

    fn holds(&self, v: f64) -> bool {
        if self.less {
            v < self.value
        } else {
            v > self.value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_units_and_check() {
        let t = Threshold::parse("p99<25ms").unwrap();
        assert_eq!((t.metric.as_str(), t.less, t.value), ("p99", true, 25.0));
        assert_eq!(Threshold::parse("p99<1s").unwrap().value, 1000.0);
        assert_eq!(
            Threshold::parse("deliveries_per_sec>20000/s")
                .unwrap()
                .value,
            20000.0
        );
        assert!(Threshold::parse("p99=3").is_err());
        let mut h = histogram();
        for us in 1..=1000u64 {
            h.record(us * 100).unwrap();
        }
        let report = Report {
            latency_ms: Percentiles::of(&h),
            audit: Some(Audit {
                expected: 10,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(report
            .check(&[
                Threshold::parse("p50<60ms").unwrap(),
                Threshold::parse("lost<1").unwrap()
            ])
            .is_empty());
        let failed = report.check(&[
            Threshold::parse("p99<10ms").unwrap(),
            Threshold::parse("ack_p99<1ms").unwrap(),
        ]);
        assert_eq!(failed.len(), 2, "{failed:?}");
    }
}
