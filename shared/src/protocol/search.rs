//! Search frames and result shapes (seed 002 §5.6), shared by
//! `search.query` / `search.results` and the `GET /api/search/*` routes,
//! so both transports answer a search identically.

use serde::{Deserialize, Serialize};

use super::new_frame;

/// What a search looks through (seed §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchScope {
    /// Messages of the caller's chats (all, or one with `chatId`).
    Messages,
    /// People of the caller's workspace by name or e-mail prefix.
    People,
    /// The caller's chats and the workspace's public channels by name.
    Chats,
}

impl SearchScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::People => "people",
            Self::Chats => "chats",
        }
    }
}

/// `search.query {scope, q, chatId?, cursor?, limit?, includePublic?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchQuery {
    pub scope: SearchScope,
    pub q: String,
    pub chat_id: Option<i64>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
    /// Messages scope: also search public channels the caller has not joined.
    #[serde(default)]
    pub include_public: bool,
}

/// One page of results: the body of `GET /api/search/*` and the payload
/// of `search.results` (plus `refId`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ref_id: Option<String>,
    pub scope: SearchScope,
    pub results: Vec<SearchResult>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub cursor: Option<String>,
}

impl SearchResults {
    pub const TYPE: &'static str = "search.results";
    pub fn frame(&self) -> String {
        new_frame(Self::TYPE, self)
    }
}

/// One result (seed §5.6): `type` says which payload is present.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub score: f64,
    pub highlight: Highlight,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelResult>,
}

/// Highlighted fragments: HTML-escaped text with `<mark>` around matches.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Highlight {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sender_name: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageResult {
    pub message_id: i64,
    pub chat_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    pub sender_name: String,
    pub content: String,
    /// RFC 3339.
    pub timestamp: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonResult {
    pub user_id: i64,
    pub display_name: String,
    pub email: String,
    /// Always null: avatars are not stored yet.
    pub avatar: Option<String>,
    /// Presence: online, away, dnd, brb or offline.
    pub status: &'static str,
}

/// A chat result. Seed §5.6 names this shape `channel`; it also carries
/// groups and single chats of the caller (`chatType`), and whether the
/// caller is a member (a public channel to join when false).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelResult {
    pub channel_id: i64,
    /// The workspace (seed: team).
    pub team_id: i64,
    pub name: String,
    pub description: String,
    pub chat_type: String,
    pub member: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_frames_parse_and_results_serialise() {
        let q: SearchQuery =
            serde_json::from_str(r#"{"scope":"messages","q":"budget","chatId":4}"#).unwrap();
        assert_eq!(
            (q.scope, q.chat_id, q.include_public),
            (SearchScope::Messages, Some(4), false)
        );
        assert!(serde_json::from_str::<SearchQuery>(r#"{"scope":"files","q":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<SearchQuery>(r#"{"scope":"people","q":"x","z":1}"#).is_err()
        );
        let results = SearchResults {
            ref_id: Some("r1".into()),
            scope: SearchScope::People,
            results: vec![SearchResult {
                kind: "person",
                score: 1.0,
                highlight: Highlight::default(),
                message: None,
                person: Some(PersonResult {
                    user_id: 1,
                    display_name: "Ada".into(),
                    email: "ada@x.test".into(),
                    avatar: None,
                    status: "online",
                }),
                channel: None,
            }],
            cursor: None,
        };
        let v: serde_json::Value = serde_json::from_str(&results.frame()).unwrap();
        assert_eq!(v["type"], "search.results");
        let r = &v["payload"]["results"][0];
        assert_eq!(r["type"], "person");
        assert_eq!(r["person"]["displayName"], "Ada");
        assert!(r.get("message").is_none());
        assert_eq!(r["highlight"], serde_json::json!({}));
        assert_eq!(v["payload"]["refId"], "r1");
        assert_eq!(v["payload"]["cursor"], serde_json::Value::Null);
    }
}
