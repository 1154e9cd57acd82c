//! This gateway's side of presence (seed 002 §4): connections join and
//! leave the user's presence, activity turns a connection idle and back,
//! `presence.update/subscribe/unsubscribe`, the 2-second batches to
//! watchers, and the lease that lets a worker sweep this gateway's
//! connections if it dies.
//!
//! Redis or PostgreSQL failures here never end a connection: presence is
//! logged and retried at the next change (a user may look stale for a
//! while), while `presence.*` frames are answered `unavailable`.

use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use fechatter_shared::{
    presence::{self, Announcement, Op, Outcome, Status},
    protocol::{self, PresenceChanged, PresenceEntry},
    store, AppError, AppResult,
};
use tokio_util::sync::CancellationToken;

use crate::{
    hub::{Conn, Priority},
    presence_watch::{Seen, BATCH_WINDOW},
    state::AppState,
};

/// A connection's activity: active until the client sends nothing but
/// pings for `PRESENCE_AWAY_MS`, then idle until its next frame.
pub struct Activity {
    pub active: bool,
    last: Instant,
    away_after: Duration,
}

impl Activity {
    pub fn new(away_after: Duration) -> Self {
        Self {
            active: true,
            last: Instant::now(),
            away_after,
        }
    }

    /// A client frame other than `ping` arrived; true when it woke the
    /// connection from idle.
    pub fn on_frame(&mut self, now: Instant) -> bool {
        self.last = now;
        !std::mem::replace(&mut self.active, true)
    }

    /// When the connection turns idle (far away when it already is).
    pub fn due(&self) -> Instant {
        if self.active {
            self.last + self.away_after
        } else {
            self.last + Duration::from_secs(86_400)
        }
    }

    /// True when the connection just turned idle.
    pub fn check(&mut self, now: Instant) -> bool {
        if self.active && now >= self.last + self.away_after {
            self.active = false;
            return true;
        }
        false
    }
}

fn field(state: &AppState, conn: u64) -> String {
    presence::conn_field(&state.node, conn)
}

/// Applies `op`; on a change to offline, persists the last-seen time.
async fn apply(state: &AppState, user: i64, op: Op<'_>) -> AppResult<Outcome> {
    let outcome = presence::update(&state.redis, &state.keys, user, op).await?;
    if outcome.changed && outcome.status == Status::Offline {
        store::presence::set_last_seen(&state.pool, user, outcome.last_seen_ms).await?;
    }
    Ok(outcome)
}

/// A connection of `user` opened: it counts as active, and the user's
/// manual state is restored from PostgreSQL.
pub async fn connected(state: &AppState, user: i64, conn: u64) {
    let result = async {
        let manual = store::presence::manual(&state.pool, user).await?;
        presence::note_user(&state.redis, &state.keys, &state.node, user).await?;
        let field = field(state, conn);
        let op = Op::Conn {
            field: &field,
            active: true,
            manual: Some(manual.as_deref().unwrap_or("")),
        };
        apply(state, user, op).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(user, error = %e, "presence not recorded at connect");
    }
}

/// A connection closed: it leaves the user's presence and its watches.
pub async fn disconnected(state: &AppState, user: i64, conn: u64) {
    state.presence.remove_conn(conn);
    let field = field(state, conn);
    if let Err(e) = apply(state, user, Op::Drop { field: &field }).await {
        tracing::warn!(user, error = %e, "presence not updated at disconnect");
    }
}

/// A connection turned active or idle.
pub async fn activity(state: &AppState, user: i64, conn: u64, active: bool) {
    let field = field(state, conn);
    let op = Op::Conn {
        field: &field,
        active,
        manual: None,
    };
    if let Err(e) = apply(state, user, op).await {
        tracing::warn!(user, error = %e, "presence activity not recorded");
    }
}

/// `presence.update {status}`: stores the manual state (PostgreSQL, then
/// Redis) and returns the user's resulting status.
pub async fn set_manual(state: &AppState, user: i64, requested: &str) -> AppResult<Status> {
    let manual = presence::manual_state(requested)
        .ok_or_else(|| AppError::validation("status must be one of online, away, dnd, brb"))?;
    store::presence::set_manual(&state.pool, user, manual).await?;
    Ok(apply(state, user, Op::Manual(manual.unwrap_or("")))
        .await?
        .status)
}

/// `presence.subscribe {userIds}`: watches the users of the caller's
/// workspace among `ids` for `PRESENCE_SUB_TTL_MS` and returns their
/// current state; the others are reported as not found.
pub async fn subscribe(
    state: &AppState,
    conn: &Conn,
    workspace_id: i64,
    ids: &[i64],
) -> AppResult<(Vec<PresenceEntry>, Vec<i64>)> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let known = store::presence::last_seen(&state.pool, workspace_id, &ids).await?;
    let found: Vec<i64> = known.iter().map(|(id, _)| *id).collect();
    let not_found: Vec<i64> = ids.into_iter().filter(|i| !found.contains(i)).collect();
    let until = Instant::now() + state.config.presence_sub_ttl;
    state.presence.subscribe(conn, &found, until).map_err(|t| {
        AppError::validation(format!(
            "a connection watches at most {} users (this one watches {})",
            crate::presence_watch::MAX_WATCHED,
            t.watching
        ))
    })?;
    state.subs.refresh().await;
    let live = presence::current(&state.redis, &state.keys, &found).await?;
    let entries = known
        .into_iter()
        .zip(live)
        .map(|((user_id, stored), live)| match live {
            Some((status, ms)) => entry(user_id, status, ms),
            None => PresenceEntry {
                user_id,
                status: Status::Offline,
                last_seen: stored.map(|t| protocol::rfc3339_ms(t.timestamp_millis())),
            },
        })
        .collect();
    Ok((entries, not_found))
}

fn entry(user_id: i64, status: Status, last_seen_ms: i64) -> PresenceEntry {
    PresenceEntry {
        user_id,
        status,
        last_seen: (last_seen_ms > 0).then(|| protocol::rfc3339_ms(last_seen_ms)),
    }
}

/// A change announced on a watched user's channel: parked for watchers.
pub fn on_announcement(state: &AppState, text: &str) {
    match Announcement::parse(text) {
        Some(a) => state.presence.on_change(
            a.user_id,
            Seen {
                status: a.status,
                last_seen_ms: a.last_seen_ms,
            },
        ),
        None => tracing::warn!("unreadable presence announcement"),
    }
}

/// Sends the batches every [`BATCH_WINDOW`] and renews this gateway's
/// presence lease every third of `PRESENCE_NODE_TTL_MS`, until `shutdown`.
pub fn spawn(state: AppState, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let renew_every = state.config.presence_node_ttl / 3;
        let mut next_renewal = Instant::now();
        loop {
            if Instant::now() >= next_renewal {
                if let Err(e) = presence::renew_node(&state.redis, &state.keys, &state.node).await {
                    tracing::warn!(error = %e, "presence lease not renewed");
                }
                next_renewal = Instant::now() + renew_every;
            }
            flush(&state).await;
            tokio::select! {
                _ = tokio::time::sleep(BATCH_WINDOW.min(renew_every)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    });
}

async fn flush(state: &AppState) {
    let (batches, shrank) = state.presence.flush(Instant::now());
    for (conn, changes) in batches {
        let frame = PresenceChanged {
            changes: changes
                .into_iter()
                .map(|(u, s)| entry(u, s.status, s.last_seen_ms))
                .collect(),
        }
        .frame();
        conn.offer(
            Utf8Bytes::from(frame),
            Priority::Presence,
            &state.metrics,
            PresenceChanged::TYPE,
        );
    }
    if shrank {
        state.subs.refresh().await;
    }
}

/// A clean stop: every connection has left already; nothing to sweep.
pub async fn retire(state: &AppState) {
    if let Err(e) = presence::retire_node(&state.redis, &state.keys, &state.node).await {
        tracing::warn!(error = %e, "presence lease not released; a worker will sweep it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_goes_idle_and_wakes() {
        let mut a = Activity::new(Duration::from_secs(300));
        let t0 = Instant::now();
        assert!(!a.check(t0 + Duration::from_secs(299)));
        assert!(a.check(t0 + Duration::from_secs(301)));
        assert!(!a.active);
        assert!(!a.check(t0 + Duration::from_secs(900)), "idle once");
        assert!(a.on_frame(t0 + Duration::from_secs(901)), "woken");
        assert!(!a.on_frame(t0 + Duration::from_secs(902)), "already active");
    }
}
