//! The notification evaluator (seed 002 §3.2, §3.7): for each recipient of
//! a new message, whether it alerts them (toast on their connected
//! devices, later a push when none is active) or only moves their badge.
//!
//! Rules, in order:
//! 1. The sender is never a recipient (the caller leaves them out).
//! 2. An urgent message alerts everyone: it bypasses DND, mute and level.
//! 3. A muted chat (`mutedUntil` in the future) is silent.
//! 4. DND, manual (presence `dnd`) or scheduled (the recipient's local time
//!    inside `{start, end}`, windows may cross midnight), is silent.
//! 5. The level (the chat's override, else the global one): `all` alerts,
//!    `mentions_only` alerts when the recipient is mentioned (or a keyword
//!    of theirs appears in the text), `off` is silent.
//!
//! Focus (a device showing the chat) is per connection and applied by the
//! gateway when it delivers the toast. Badges always move. Pure functions,
//! tested without a database.

use chrono::NaiveTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    All,
    MentionsOnly,
    Off,
}

impl Level {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "mentions_only" => Some(Self::MentionsOnly),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// The recipient's local time now, and the start and end of their DND
/// window.
pub type DndNow = (NaiveTime, NaiveTime, NaiveTime);

/// A recipient's settings as they apply to one chat, right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub user_id: i64,
    pub level: Level,
    pub muted: bool,
    /// Presence set to `dnd` by hand.
    pub dnd_manual: bool,
    /// The recipient's local time now and their DND window, if any.
    pub dnd_schedule: Option<DndNow>,
    /// Lowercased words that alert like a mention.
    pub keywords: Vec<String>,
}

/// The facts of the message that matter.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts<'a> {
    pub text: &'a str,
    pub mentions: &'a [i64],
    pub urgent: bool,
}

/// Whether `t` is inside the window from `start` to `end` (end excluded);
/// a window whose end is before its start crosses midnight.
pub fn in_window(t: NaiveTime, start: NaiveTime, end: NaiveTime) -> bool {
    if start <= end {
        start <= t && t < end
    } else {
        t >= start || t < end
    }
}

fn mentioned(r: &Recipient, m: &Facts) -> bool {
    if m.mentions.contains(&r.user_id) {
        return true;
    }
    if r.keywords.is_empty() {
        return false;
    }
    let text = m.text.to_lowercase();
    r.keywords
        .iter()
        .any(|k| !k.is_empty() && text.contains(k.as_str()))
}

/// True when the message alerts `r` (toast/push); false: badge only.
pub fn alerts(r: &Recipient, m: &Facts) -> bool {
    if m.urgent {
        return true;
    }
    if r.muted || r.dnd_manual {
        return false;
    }
    if let Some((now, start, end)) = r.dnd_schedule {
        if in_window(now, start, end) {
            return false;
        }
    }
    match r.level {
        Level::All => true,
        Level::MentionsOnly => mentioned(r, m),
        Level::Off => false,
    }
}

/// Where an alert goes, given the recipient's connections (presence):
/// a toast when any is open (the gateway skips the ones focused on the
/// chat), a push when none is active (none open, or all idle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub toast: bool,
    pub push: bool,
}

pub fn route(alerted: bool, open: usize, active: usize) -> Route {
    Route {
        toast: alerted && open > 0,
        push: alerted && active == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn windows_within_a_day_and_across_midnight() {
        assert!(in_window(t(23, 0), t(22, 0), t(8, 0)));
        assert!(in_window(t(3, 0), t(22, 0), t(8, 0)));
        assert!(!in_window(t(8, 0), t(22, 0), t(8, 0)), "end excluded");
        assert!(!in_window(t(12, 0), t(22, 0), t(8, 0)));
        assert!(in_window(t(13, 0), t(12, 0), t(14, 0)));
        assert!(!in_window(t(11, 59), t(12, 0), t(14, 0)));
    }

    /// Every combination of level x mention x DND (none, manual, scheduled
    /// inside, scheduled outside) x urgent x mute.
    #[test]
    fn every_rule_combination() {
        let levels = [Level::All, Level::MentionsOnly, Level::Off];
        let dnds: [(bool, Option<DndNow>, bool); 4] = [
            (false, None, false),
            (true, None, true),
            (false, Some((t(23, 30), t(22, 0), t(7, 0))), true),
            (false, Some((t(12, 0), t(22, 0), t(7, 0))), false),
        ];
        let mut cases = 0;
        for level in levels {
            for mention in [false, true] {
                for (manual, schedule, dnd_active) in dnds {
                    for urgent in [false, true] {
                        for muted in [false, true] {
                            let r = Recipient {
                                user_id: 2,
                                level,
                                muted,
                                dnd_manual: manual,
                                dnd_schedule: schedule,
                                keywords: vec![],
                            };
                            let mentions: &[i64] = if mention { &[2] } else { &[] };
                            let m = Facts {
                                text: "hello",
                                mentions,
                                urgent,
                            };
                            let want = urgent
                                || (!muted
                                    && !dnd_active
                                    && match level {
                                        Level::All => true,
                                        Level::MentionsOnly => mention,
                                        Level::Off => false,
                                    });
                            assert_eq!(alerts(&r, &m), want, "{r:?} {m:?}");
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 3 * 2 * 4 * 2 * 2);
    }

    /// Alerted or not x offline / idle only / active: toast, push or both.
    #[test]
    fn routes_follow_connections() {
        let table = [
            // alerted, open, active -> toast, push
            (false, 0, 0, false, false),
            (false, 2, 1, false, false),
            (true, 0, 0, false, true),
            (true, 2, 0, true, true),
            (true, 2, 1, true, false),
        ];
        for (alerted, open, active, toast, push) in table {
            assert_eq!(
                route(alerted, open, active),
                Route { toast, push },
                "{alerted} {open} {active}"
            );
        }
    }

    #[test]
    fn keywords_alert_like_mentions() {
        let r = Recipient {
            user_id: 2,
            level: Level::MentionsOnly,
            muted: false,
            dnd_manual: false,
            dnd_schedule: None,
            keywords: vec!["deploy".into()],
        };
        let m = |text| Facts {
            text,
            mentions: &[],
            urgent: false,
        };
        assert!(alerts(&r, &m("Deploy is done")));
        assert!(!alerts(&r, &m("lunch?")));
    }
}
