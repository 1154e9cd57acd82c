//! From the clients' logs to the chaos verdict, computed after the run so
//! the clients only record: per fault, how long until every client held
//! every acked message, how many writes were acked, retried and lost, how
//! many connections dropped and how many raw duplicates dedupe removed;
//! overall, the audit of every acked message on every member.
//!
//! "Converged" (see BENCHMARKS.md): every client holds, with nothing
//! missing below it, every message that was eventually acked and was due
//! more than `grace` earlier. A fault's convergence time is the last moment
//! inside its window (until the next fault) at which that did not hold,
//! measured from the fault (gateway, worker kills) or from the moment the
//! dependency came back (Redis, PostgreSQL); 0 when it always held.

use std::collections::HashMap;

use serde::Serialize;

use super::client::Log;
use crate::report::Audit;

/// One injected fault (seconds since the run's epoch).
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub name: String,
    /// When it was injected.
    pub t0: f64,
    /// Where convergence is measured from: `t0`, or the dependency's return.
    pub t_ref: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaultResult {
    pub name: String,
    /// None: some acked message never reached some member.
    pub converged_secs: Option<f64>,
    pub acked: u64,
    pub retried: u64,
    pub lost: u64,
    pub disconnects: u64,
    pub raw_dups: u64,
    /// The message that converged last, for the why.
    pub worst: Option<Worst>,
}

/// The last message to converge in a window: times relative to `t_ref`.
#[derive(Debug, Clone, Serialize)]
pub struct Worst {
    pub seq: i64,
    pub due: f64,
    pub acked: f64,
    pub full: f64,
    pub attempts: u32,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub faults: Vec<FaultResult>,
    pub audit: Audit,
    pub writes: u64,
    pub acked: u64,
    pub unacked: u64,
    /// Different frame ids acked with one seq (the server numbered twice).
    pub seq_conflicts: u64,
    pub raw_dups: u64,
    pub disconnects: u64,
}

struct Acked {
    first: f64,
    ack: f64,
    attempts: u32,
    /// When the last member got it; None if some member never did.
    full: Option<f64>,
}

pub fn analyze(logs: &[Log], faults: &[Fault], end: f64, grace: f64) -> Summary {
    let mut s = Summary::default();
    let mut acked: HashMap<i64, (f64, f64, u32)> = HashMap::new();
    let mut ids: HashMap<i64, &str> = HashMap::new();
    for w in logs.iter().flat_map(|l| &l.writes) {
        s.writes += 1;
        let Some((seq, at)) = w.ack else {
            s.unacked += 1;
            continue;
        };
        s.acked += 1;
        if ids.insert(seq, &w.id).is_some_and(|other| other != w.id) {
            s.seq_conflicts += 1;
        }
        acked.insert(seq, (w.first, at, w.attempts));
    }
    let mut by_seq: HashMap<i64, Acked> = HashMap::new();
    for (&seq, &(first, ack, attempts)) in &acked {
        let mut full = Some(0.0f64);
        for l in logs {
            match l.applied_at.get(&seq) {
                Some(&t) => full = full.map(|f| f.max(t)),
                None => {
                    full = None;
                    s.audit.lost += 1;
                }
            }
        }
        by_seq.insert(
            seq,
            Acked {
                first,
                ack,
                attempts,
                full,
            },
        );
    }
    s.audit.expected = acked.len() as u64 * logs.len() as u64;
    s.audit.duplicated = logs.iter().map(|l| l.dup_after_dedupe).sum();
    s.audit.out_of_order = logs
        .iter()
        .map(|l| l.applied.windows(2).filter(|w| w[1] <= w[0]).count() as u64)
        .sum();
    s.raw_dups = logs.iter().map(|l| l.raw_dups.len() as u64).sum();
    s.disconnects = logs.iter().map(|l| l.disconnects.len() as u64).sum();
    for (i, f) in faults.iter().enumerate() {
        let until = faults.get(i + 1).map_or(end, |n| n.t0);
        s.faults
            .push(window(f, until, logs, &acked, &by_seq, grace));
    }
    s
}

fn window(
    f: &Fault,
    until: f64,
    logs: &[Log],
    acked: &HashMap<i64, (f64, f64, u32)>,
    by_seq: &HashMap<i64, Acked>,
    grace: f64,
) -> FaultResult {
    let inside = |t: f64| t >= f.t0 && t < until;
    let count = |ts: &[f64]| ts.iter().filter(|t| inside(**t)).count() as u64;
    let mut converged = Some(0.0f64);
    let mut lost = 0;
    let mut worst: Option<Worst> = None;
    for (&seq, a) in by_seq {
        match a.full {
            None if inside(a.first) => {
                lost += 1;
                converged = None;
            }
            Some(full) if inside(full) && full > a.first + grace => {
                converged = converged.map(|c| c.max(full - f.t_ref));
                if worst.as_ref().is_none_or(|w| full - f.t_ref > w.full) {
                    worst = Some(Worst {
                        seq,
                        due: a.first - f.t_ref,
                        acked: a.ack - f.t_ref,
                        full: full - f.t_ref,
                        attempts: a.attempts,
                    });
                }
            }
            _ => {}
        }
    }
    let writes = || logs.iter().flat_map(|l| &l.writes);
    FaultResult {
        name: f.name.clone(),
        converged_secs: converged,
        acked: acked.values().filter(|(_, at, _)| inside(*at)).count() as u64,
        retried: writes()
            .filter(|w| w.attempts > 1 && inside(w.first))
            .count() as u64,
        lost,
        disconnects: logs.iter().map(|l| count(&l.disconnects)).sum(),
        raw_dups: logs.iter().map(|l| count(&l.raw_dups)).sum(),
        worst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::client::Write;

    fn member(applied: &[(i64, f64)]) -> Log {
        Log {
            applied: applied.iter().map(|a| a.0).collect(),
            applied_at: applied.iter().copied().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn convergence_is_the_last_late_delivery_after_the_reference() {
        let mut sender = member(&[(1, 1.0), (2, 10.5), (3, 12.0)]);
        sender.writes = vec![
            Write {
                id: "a".into(),
                first: 1.0,
                attempts: 1,
                ack: Some((1, 1.0)),
            },
            Write {
                id: "b".into(),
                first: 10.2,
                attempts: 2,
                ack: Some((2, 10.6)),
            },
            Write {
                id: "c".into(),
                first: 11.9,
                attempts: 1,
                ack: Some((3, 12.0)),
            },
        ];
        let late = member(&[(1, 1.0), (2, 13.0), (3, 13.0)]);
        let faults = [Fault {
            name: "gateway".into(),
            t0: 10.0,
            t_ref: 10.0,
        }];
        let s = analyze(&[sender, late], &faults, 20.0, 0.25);
        let f = &s.faults[0];
        assert_eq!(f.converged_secs, Some(3.0));
        assert_eq!((f.acked, f.retried, f.lost), (2, 1, 0));
        assert_eq!((s.audit.expected, s.audit.lost), (6, 0));
    }

    #[test]
    fn a_member_missing_an_acked_message_is_a_loss() {
        let mut sender = member(&[(1, 1.0)]);
        sender.writes = vec![Write {
            id: "a".into(),
            first: 5.0,
            attempts: 1,
            ack: Some((1, 5.1)),
        }];
        let faults = [Fault {
            name: "postgres".into(),
            t0: 4.0,
            t_ref: 6.0,
        }];
        let s = analyze(&[sender, member(&[])], &faults, 9.0, 0.25);
        assert_eq!(s.audit.lost, 1);
        assert_eq!(s.faults[0].converged_secs, None);
        assert_eq!(s.faults[0].lost, 1);
    }
}
