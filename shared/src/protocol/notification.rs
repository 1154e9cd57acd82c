//! Notification frames (seed 002 §3): the per-connection focus a client
//! reports, the toasts a recipient's devices get, and the notice that the
//! user's notification settings changed.

use serde::{Deserialize, Serialize};

use super::new_frame;

/// `chat.focus {chatId | null}`: the chat this connection shows (null: none
/// or the window is in the background). A focused chat gets no toasts and
/// no unread badges on that connection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatFocus {
    pub chat_id: Option<i64>,
}

/// Longest toast body (characters), per seed §3.4.
pub const TOAST_PREVIEW_CHARS: usize = 100;

/// `notification.toast`: an alert for a new message (or a group of rapid
/// messages in one chat: `count` > 1, same `groupId`, replacing the
/// previous toast of the group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationToast {
    pub id: String,
    pub group_id: String,
    pub title: String,
    pub body: String,
    pub chat_id: i64,
    pub message_id: i64,
    /// `normal` or `urgent`.
    pub priority: String,
    /// Messages the toast stands for (grouping window).
    pub count: i64,
    /// When the message was sent (RFC 3339).
    pub timestamp: String,
}

impl NotificationToast {
    pub const TYPE: &'static str = "notification.toast";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// `notification.settings`: the user's preferences or one chat's settings
/// changed (on another device); the payload is the new state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsChanged {
    /// `preferences` or `chat`.
    pub scope: String,
    pub settings: serde_json::Value,
}

impl SettingsChanged {
    pub const TYPE: &'static str = "notification.settings";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// The preview of a message in a toast: at most
/// [`TOAST_PREVIEW_CHARS`] characters, an ellipsis when cut.
pub fn preview(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= TOAST_PREVIEW_CHARS {
        return text;
    }
    let cut: String = text.chars().take(TOAST_PREVIEW_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_at_most_100_characters() {
        assert_eq!(preview("hi\n  there"), "hi there");
        let long = "é".repeat(300);
        let p = preview(&long);
        assert_eq!(p.chars().count(), 100);
        assert!(p.ends_with('…'));
    }
}
