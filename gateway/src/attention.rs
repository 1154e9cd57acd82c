//! The frames about the user's attention rather than about messages:
//! presence (`presence.update`, `presence.subscribe`,
//! `presence.unsubscribe`) and focus (`chat.focus`). The work is in
//! [`crate::presence`] and [`crate::hub::Conn::set_focus`]; this is the
//! protocol side (limits, acks).

use fechatter_shared::{
    protocol::{self, ClientFrame, FocusAck, PresenceSet, PresenceUnsubscribed},
    scripts::Limit,
    AppResult,
};

use crate::session::Session;

/// `presence.update/subscribe`: burst 20, then 1 per second per user (a
/// client subscribes once per screen and renews every few minutes).
pub const PRESENCE_LIMIT: Limit = Limit {
    capacity: 20.0,
    per_second: 1.0,
};
impl Session {
    /// Answers one presence or focus frame.
    pub(crate) async fn attention_frame(
        &mut self,
        frame: ClientFrame,
        ref_id: &str,
    ) -> AppResult<()> {
        match frame {
            ClientFrame::PresenceUpdate(p) => {
                self.limit("presence", PRESENCE_LIMIT).await?;
                let status =
                    crate::presence::set_manual(&self.state, self.me.user_id, &p.status).await?;
                let ack = PresenceSet { presence: status };
                self.send(protocol::ack_frame(ref_id, ack));
            }
            ClientFrame::PresenceSubscribe(ids) => {
                self.limit("presence", PRESENCE_LIMIT).await?;
                let (presence, not_found) = crate::presence::subscribe(
                    &self.state,
                    &self.conn,
                    self.me.workspace_id,
                    &ids.user_ids,
                )
                .await?;
                let ack = protocol::PresenceSubscribed {
                    presence,
                    not_found,
                    watching: self.state.presence.watching(self.conn.id),
                };
                self.send(protocol::ack_frame(ref_id, ack));
            }
            ClientFrame::PresenceUnsubscribe(ids) => {
                self.state.presence.unsubscribe(self.conn.id, &ids.user_ids);
                let watching = self.state.presence.watching(self.conn.id);
                let ack = PresenceUnsubscribed { watching };
                self.send(protocol::ack_frame(ref_id, ack));
            }
            ClientFrame::ChatFocus(f) => {
                if let Some(chat) = f.chat_id {
                    self.ensure_member(chat)?;
                }
                self.conn.set_focus(f.chat_id);
                // Events withheld from it before this tick's summary: it
                // hears of them now, since it will get no summary.
                let missed = f.chat_id.and_then(|chat| {
                    let s = self.state.summaries.lock().expect("summaries lock");
                    s.pending(chat)
                });
                if let Some(summary) = missed {
                    self.send(summary.frame());
                }
                let chat_id = f.chat_id;
                self.send(protocol::ack_frame(ref_id, FocusAck { chat_id }));
            }
            other => {
                return Err(fechatter_shared::AppError::Internal(anyhow::anyhow!(
                    "{} is not an attention frame",
                    other.kind()
                )))
            }
        }
        Ok(())
    }
}
