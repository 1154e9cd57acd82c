//! From the clients' logs to the chaos verdict, computed after the run so
//! the clients only record: per fault, how long until every client held
//! every acked message, how many writes were acked, retried and lost, how
//! many connections dropped and how many raw duplicates dedupe removed;
//! overall, the audit of every acked message on every member.
//!
//! "Converged" (see BENCHMARKS.md): every client holds, with nothing
//! missing below it, every message that was eventually acked and was due
//! more than `grace` earlier. A message is *late* from its due time plus
//! `grace` until the last member holds it. A fault is charged with the
//! episode of lateness it caused: the late intervals that overlap its
//! reference moment (the kill, or the dependency's return), merged with
//! every late interval that starts no more than [`LINK_SECS`] after the
//! episode so far ends (a message written just after a kill turns late
//! only `grace` later). Its convergence time is the episode's end, measured from
//! the reference (0 when nothing was late). Lateness that begins later in
//! the fault's window, after the clients had converged, is a separate
//! stall with another cause (on a shared machine: a busy moment): it is
//! reported beside the fault, not charged to it.

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
    /// Episodes of lateness later in the window, not caused by the fault:
    /// how many, and the longest (seconds from its start to its end).
    pub later_stalls: u32,
    pub longest_later_stall: f64,
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
    let mut lost = 0;
    let mut late: Vec<(f64, f64, i64)> = Vec::new();
    for (&seq, a) in by_seq {
        match a.full {
            None if inside(a.first) => lost += 1,
            Some(full) if inside(full) && full > a.first + grace => {
                late.push((a.first + grace, full, seq));
            }
            _ => {}
        }
    }
    let episodes = episodes(f.t_ref, late);
    let caused = &episodes[0];
    let worst = caused.last.and_then(|seq| {
        let a = &by_seq[&seq];
        Some(Worst {
            seq,
            due: a.first - f.t_ref,
            acked: a.ack - f.t_ref,
            full: a.full? - f.t_ref,
            attempts: a.attempts,
        })
    });
    let later = &episodes[1..];
    let writes = || logs.iter().flat_map(|l| &l.writes);
    FaultResult {
        name: f.name.clone(),
        converged_secs: (lost == 0).then_some((caused.end - f.t_ref).max(0.0)),
        acked: acked.values().filter(|(_, at, _)| inside(*at)).count() as u64,
        retried: writes()
            .filter(|w| w.attempts > 1 && inside(w.first))
            .count() as u64,
        lost,
        disconnects: logs.iter().map(|l| count(&l.disconnects)).sum(),
        raw_dups: logs.iter().map(|l| count(&l.raw_dups)).sum(),
        worst,
        later_stalls: later.len() as u32,
        longest_later_stall: later.iter().map(|e| e.end - e.start).fold(0.0, f64::max),
    }
}

/// Late intervals closer than this belong to one episode.
pub const LINK_SECS: f64 = 1.0;

/// A run of overlapping late intervals.
#[derive(Debug, PartialEq)]
struct Episode {
    start: f64,
    end: f64,
    /// The message that was late last in it.
    last: Option<i64>,
}

/// Late intervals `(from, until, seq)` merged into episodes: the first one
/// is the fault's (it starts at `reference`, empty when nothing is late
/// then), the others begin after it; intervals closer than [`LINK_SECS`]
/// merge.
fn episodes(reference: f64, mut late: Vec<(f64, f64, i64)>) -> Vec<Episode> {
    late.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = vec![Episode {
        start: reference,
        end: reference,
        last: None,
    }];
    for (from, until, seq) in late {
        let current = out.last_mut().expect("never empty");
        if from <= current.end + LINK_SECS {
            if until > current.end {
                current.end = until;
                current.last = Some(seq);
            }
        } else {
            out.push(Episode {
                start: from,
                end: until,
                last: Some(seq),
            });
        }
    }
    out
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
    fn lateness_that_starts_after_the_clients_converged_is_not_charged() {
        let ep = episodes(
            10.0,
            vec![
                (9.8, 11.0, 1),
                (11.9, 12.5, 2),
                (20.0, 20.6, 3),
                (20.5, 21.0, 4),
            ],
        );
        assert_eq!(
            ep,
            vec![
                Episode {
                    start: 10.0,
                    end: 12.5,
                    last: Some(2)
                },
                Episode {
                    start: 20.0,
                    end: 21.0,
                    last: Some(4)
                },
            ]
        );
        let quiet = episodes(10.0, vec![(15.0, 15.7, 1)]);
        assert_eq!(
            quiet[0].end, 10.0,
            "nothing late at the fault: converged at once"
        );
        assert_eq!(quiet.len(), 2);
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
