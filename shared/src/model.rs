//! Domain records as they are stored and as they appear in JSON.
//!
//! One struct serves both the database row (`sqlx::FromRow`) and the wire
//! (`serde`, camelCase) wherever the two agree, so a renamed column cannot
//! silently drift from the documented API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user as other users of the same workspace see it (no secrets).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: i64,
    pub fullname: String,
    pub email: String,
    pub workspace_id: i64,
    /// Workspace role: `owner`, `admin` or `member`.
    pub role: String,
    /// False once an owner or admin deactivated the user.
    pub active: bool,
}

/// A user row including the password hash, used only by authentication.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserWithHash {
    pub id: i64,
    pub fullname: String,
    pub email: String,
    pub workspace_id: i64,
    pub role: String,
    pub active: bool,
    pub password_hash: String,
}

impl UserWithHash {
    pub fn public(&self) -> User {
        User {
            id: self.id,
            fullname: self.fullname.clone(),
            email: self.email.clone(),
            workspace_id: self.workspace_id,
            role: self.role.clone(),
            active: self.active,
        }
    }
}

/// The four chat types and their membership rules (see `docs/protocol.md`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, sqlx::Type, PartialEq, Eq, Hash)]
#[sqlx(type_name = "chat_type", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ChatType {
    Single,
    Group,
    PrivateChannel,
    PublicChannel,
}

impl ChatType {
    pub fn is_channel(self) -> bool {
        matches!(self, Self::PrivateChannel | Self::PublicChannel)
    }
}

/// A chat with the caller's view of it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub id: i64,
    pub workspace_id: i64,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub chat_type: ChatType,
    pub name: Option<String>,
    pub description: String,
    pub owner_id: i64,
    /// A broadcast channel: only the owner and admins post.
    pub read_only: bool,
    /// Sequence number of the newest message.
    pub last_seq: i64,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Roles inside a chat; the owner is unique per chat.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "owner" => Self::Owner,
            "admin" => Self::Admin,
            _ => Self::Member,
        }
    }

    /// Owners and admins manage a chat (rename, invite, remove others).
    pub fn can_manage(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }

    /// May a member with this role post in a chat, read-only or not? In a
    /// read-only (broadcast) channel only the owner and admins post.
    pub fn may_post(self, read_only: bool) -> bool {
        !read_only || self.can_manage()
    }
}

/// One member of a chat.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: i64,
    pub fullname: String,
    pub role: String,
    pub last_read_seq: i64,
    pub joined_at: DateTime<Utc>,
}

/// Tokens returned by signup, signin and refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    /// The session (refresh-token family) these tokens belong to.
    pub session_id: uuid::Uuid,
    pub user: User,
}

/// A message as clients see it (REST paging, `message.new`/`updated`).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: i64,
    pub chat_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    /// Empty once deleted.
    pub content: String,
    pub client_id: String,
    pub reply_to: Option<i64>,
    pub mentions: Vec<i64>,
    /// `normal` or `urgent`.
    pub priority: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Who reacted with one emoji to a message.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    pub emoji: String,
    pub user_ids: Vec<i64>,
    pub count: i64,
}

/// A message with its reactions, as `GET /api/chat/{id}/messages` pages
/// it: a client opening a chat sees the reactions without having been
/// connected when they happened. Socket frames carry [`Message`] alone
/// (reactions travel in their own `message.reaction` frames).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageWithReactions {
    #[serde(flatten)]
    pub message: Message,
    /// Empty when none; the order of `message.reaction`'s set.
    pub reactions: Vec<Reaction>,
}
