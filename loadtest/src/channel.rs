//! Large channels (seed 002 §7.2 and §7.4, issue 13 item 4): one channel
//! of thousands of members.
//!
//! * `broadcast`: a read-only channel (`readOnly: true`) where only the
//!   owner and admins post, at a rate under summary mode's: every member
//!   gets every message, one wake per gateway carries each (the audit
//!   checks all of them arrive once, in order).
//! * `busy-channel`: an ordinary channel past `SUMMARY_MODE_RATE`: the
//!   `viewers` first members show it (`chat.focus`) and get every event;
//!   the others get a `chat.summary` and a badge per second. The audit
//!   checks viewers lost nothing and every other member's skipped messages
//!   are covered by summaries whose counts add up; the report gives the
//!   frames per connection per second of both kinds of member.
//!
//! Senders post at most 10 messages a second each (the per-user limit), so
//! a busy channel needs more than ten of them.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::{
    client::{Account, Api},
    report::Report,
    target::Target,
    traffic::{self, signup_many, tag, Plan},
};

/// Members added per request (the API's limit is 1000).
const MEMBERS_PER_REQUEST: usize = 1000;

/// What one run loads.
pub struct Shape {
    pub members: usize,
    pub senders: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Members that show the channel (get every event).
    pub viewers: usize,
    /// A broadcast channel: only the senders (owner and admins) may post.
    pub read_only: bool,
    pub duration: Duration,
}

/// Runs one large-channel load and reports.
pub async fn run(target: &Target, shape: Shape) -> Result<Report> {
    anyhow::ensure!(
        shape.senders >= 1 && shape.senders <= shape.members && shape.viewers <= shape.members,
        "need 1..=members senders and at most members viewers"
    );
    let plan = plan(target, &shape).await?;
    traffic::run(target, plan).await
}

async fn plan(target: &Target, shape: &Shape) -> Result<Plan> {
    let api = Api::new(&target.api);
    let accounts = signup_many(&api, shape.members, &tag())
        .await
        .context("signing up members")?;
    let chat = create(&api, &accounts, shape.read_only).await?;
    if shape.read_only {
        make_admins(&api, chat, &accounts[..shape.senders]).await?;
    }
    let params = json!({
        "members": shape.members, "senders": shape.senders, "ratePerSender": shape.rate,
        "viewers": shape.viewers, "readOnly": shape.read_only,
        "durationSecs": shape.duration.as_secs_f64(),
    });
    Ok(Plan {
        name: if shape.read_only {
            "broadcast".into()
        } else {
            "busy-channel".into()
        },
        params,
        tokens: accounts.into_iter().map(|a| a.token).collect(),
        chats: vec![(chat, (0..shape.members).collect())],
        senders: (0..shape.senders).map(|i| (i, chat)).collect(),
        rate_per_sender: shape.rate,
        duration: shape.duration,
        drain: Duration::from_secs(10),
        // Two summary ticks: the last summary, then the `live` one.
        settle: Duration::from_millis(2500),
        focused: (0..shape.viewers).collect(),
        gate: None,
    })
}

/// A private channel of every account, owned by the first, members added
/// a thousand per request.
async fn create(api: &Api, accounts: &[Account], read_only: bool) -> Result<i64> {
    let owner = &accounts[0];
    let body = api
        .post(
            "/api/chat",
            Some(&owner.token),
            json!({ "type": "private_channel", "name": format!("channel-{}", tag()), "readOnly": read_only }),
        )
        .await?;
    let chat = body["id"]
        .as_i64()
        .with_context(|| format!("no chat id in {body}"))?;
    for chunk in accounts[1..].chunks(MEMBERS_PER_REQUEST) {
        let ids: Vec<i64> = chunk.iter().map(|a| a.id).collect();
        api.post(
            &format!("/api/chat/{chat}/members"),
            Some(&owner.token),
            json!({ "userIds": ids }),
        )
        .await?;
    }
    Ok(chat)
}

/// Makes every one of `senders` (the first is the owner) an owner or
/// admin: ownership is handed down the line, and each former owner stays
/// an admin.
async fn make_admins(api: &Api, chat: i64, senders: &[Account]) -> Result<()> {
    for pair in senders.windows(2) {
        api.patch(
            &format!("/api/chat/{chat}/members/{}", pair[1].id),
            &pair[0].token,
            json!({}),
        )
        .await?;
    }
    Ok(())
}

/// The "Large channels" section of BENCHMARKS.md: the rows of the
/// `broadcast`, `busy-channel` and `chats-50` runs with what summary mode
/// did.
pub fn section(reports: &[Report]) -> String {
    use std::fmt::Write as _;
    let rows: Vec<&Report> = reports
        .iter()
        .filter(|r| ["broadcast", "busy-channel", "chats-50"].contains(&r.scenario.as_str()))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n## Large channels (issue 13 item 4)\n\n");
    s.push_str("Through the two gateways. `broadcast`: a read-only channel, only its owner and an admin post. `busy-channel`: past `SUMMARY_MODE_RATE` (100 messages/s), the viewers show the channel (`chat.focus`) and get every event, the other members get one `chat.summary` and one badge a second. Frames per connection per second count every frame received.\n\n");
    s.push_str("| scenario | parameters | sent | acked | refused | deliveries/s | p50 ms | p99 ms | viewers' p50 / p99 ms | lost | dup | out-of-order | covered by summaries | summary miscounts | frames/conn/s, viewers | frames/conn/s, others | summaries/conn/s, others |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let (p50, p99) = r
            .latency_ms
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |l| (l.p50, l.p99));
        let a = r.audit.clone().unwrap_or_default();
        let x = |k: &str| {
            r.extra
                .get(k)
                .map_or("-".to_string(), |v| format!("{v:.1}"))
        };
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {:.0} | {p50:.1} | {p99:.1} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.params,
            r.sent,
            r.acked,
            r.errors,
            r.deliveries_per_sec,
            x("focused_p50_ms"),
            x("focused_p99_ms"),
            a.lost,
            a.duplicated,
            a.out_of_order,
            a.summarized,
            a.summary_miscounts,
            x("frames_per_conn_per_sec_focused"),
            x("frames_per_conn_per_sec_unfocused"),
            x("summaries_per_conn_per_sec_unfocused"),
        );
    }
    s
}
