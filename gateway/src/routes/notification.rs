//! Notification preferences (per user) and settings (per chat), seed 002
//! §3.6. Every change also goes to the user's event stream as a
//! `notification.settings` frame, so the user's other devices update.
//!
//! The rules on what may be stored are pure functions
//! ([`valid_preferences`], [`valid_level`]) tested without a database;
//! the time zone name is checked by PostgreSQL when stored.

use axum::{extract::State, routing::get, Json, Router};
use fechatter_shared::{
    protocol::SettingsChanged,
    store::{
        chat,
        notification::{self, ChatSettings, Preferences},
    },
    user_stream, AppError, AppResult,
};
use serde::Deserialize;

use crate::{
    extract::{ApiJson, ApiPath, AuthUser},
    state::AppState,
};

/// Most keywords a user may watch, and their longest length.
const MAX_KEYWORDS: usize = 20;
const MAX_KEYWORD_CHARS: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/me/notification-preferences",
            get(get_preferences).put(put_preferences),
        )
        .route(
            "/api/chat/{id}/notification-settings",
            get(get_chat_settings).put(put_chat_settings),
        )
}

pub fn valid_level(level: &str) -> AppResult<()> {
    match level {
        "all" | "mentions_only" | "off" => Ok(()),
        _ => Err(AppError::validation(
            "level must be all, mentions_only or off",
        )),
    }
}

/// Checks everything but the time zone name; normalizes keywords
/// (trimmed, lowercased, without duplicates).
pub fn valid_preferences(mut p: Preferences) -> AppResult<Preferences> {
    valid_level(&p.level)?;
    if let Some(d) = &p.dnd_schedule {
        let (start, end) = (
            notification::parse_time(&d.start),
            notification::parse_time(&d.end),
        );
        match (start, end) {
            (Some(s), Some(e)) if s != e => {}
            (Some(_), Some(_)) => {
                return Err(AppError::validation(
                    "dndSchedule start and end must differ",
                ))
            }
            _ => {
                return Err(AppError::validation(
                    "dndSchedule start and end are HH:MM (24 h), e.g. 22:00",
                ))
            }
        }
        if d.timezone.is_empty() || d.timezone.len() > 64 {
            return Err(AppError::validation(
                "dndSchedule timezone is an IANA zone name",
            ));
        }
    }
    let mut keywords: Vec<String> = p
        .keywords
        .iter()
        .map(|k| k.trim().to_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    keywords.sort();
    keywords.dedup();
    if keywords.len() > MAX_KEYWORDS
        || keywords
            .iter()
            .any(|k| k.chars().count() > MAX_KEYWORD_CHARS)
    {
        return Err(AppError::validation(format!(
            "at most {MAX_KEYWORDS} keywords of at most {MAX_KEYWORD_CHARS} characters"
        )));
    }
    p.keywords = keywords;
    Ok(p)
}

async fn announce(state: &AppState, user: i64, scope: &str, settings: serde_json::Value) {
    let frame = SettingsChanged {
        scope: scope.into(),
        settings,
    }
    .frame();
    if let Err(e) = user_stream::publish(&state.redis, &state.keys, user, &frame).await {
        tracing::warn!(user, error = %e, "settings change not announced to other devices");
    }
}

async fn get_preferences(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Preferences>> {
    Ok(Json(
        notification::preferences(&state.pool, me.user_id).await?,
    ))
}

async fn put_preferences(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<Preferences>,
) -> AppResult<Json<Preferences>> {
    let p = valid_preferences(req)?;
    let stored = notification::set_preferences(&state.pool, me.user_id, &p).await?;
    announce(
        &state,
        me.user_id,
        "preferences",
        serde_json::to_value(&stored).unwrap_or_default(),
    )
    .await;
    Ok(Json(stored))
}

/// A member's settings of a chat they can see; defaults when never set.
async fn get_chat_settings(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<Json<ChatSettings>> {
    member_of(&state, &me, id).await?;
    Ok(Json(
        notification::chat_settings(&state.pool, me.user_id, id).await?,
    ))
}

/// A partial update: a field left out keeps its value, an explicit
/// `null` clears it (`level`: follow the global level; `mutedUntil`: not
/// muted).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChatSettingsUpdate {
    #[serde(default, deserialize_with = "present")]
    level: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    muted_until: Option<Option<chrono::DateTime<chrono::Utc>>>,
    #[serde(default)]
    pinned: Option<bool>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

async fn put_chat_settings(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ChatSettingsUpdate>,
) -> AppResult<Json<ChatSettings>> {
    member_of(&state, &me, id).await?;
    if let Some(Some(level)) = &req.level {
        valid_level(level)?;
    }
    let current = notification::chat_settings(&state.pool, me.user_id, id).await?;
    let settings = ChatSettings {
        chat_id: id,
        level: req.level.unwrap_or(current.level),
        muted_until: req.muted_until.unwrap_or(current.muted_until),
        pinned: req.pinned.unwrap_or(current.pinned),
    };
    let stored = notification::set_chat_settings(&state.pool, me.user_id, &settings).await?;
    announce(
        &state,
        me.user_id,
        "chat",
        serde_json::to_value(&stored).unwrap_or_default(),
    )
    .await;
    Ok(Json(stored))
}

/// Settings exist for members only: others get 404 like any chat they
/// cannot see, or 403 for a public channel they did not join.
async fn member_of(
    state: &AppState,
    me: &fechatter_shared::token::Identity,
    chat_id: i64,
) -> AppResult<()> {
    let (_, role) = chat::find_visible(&state.pool, chat_id, me.user_id, me.workspace_id).await?;
    if role.is_none() {
        return Err(AppError::forbidden("join the channel first"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fechatter_shared::store::notification::DndSchedule;

    fn prefs(level: &str, dnd: Option<(&str, &str)>, keywords: &[&str]) -> Preferences {
        Preferences {
            level: level.into(),
            desktop: true,
            sound: true,
            dnd_schedule: dnd.map(|(s, e)| {
                sqlx::types::Json(DndSchedule {
                    start: s.into(),
                    end: e.into(),
                    timezone: "Europe/Berlin".into(),
                })
            }),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn preference_rules() {
        assert!(valid_preferences(prefs("all", Some(("22:00", "08:00")), &[])).is_ok());
        assert!(valid_preferences(prefs("loud", None, &[])).is_err());
        assert!(valid_preferences(prefs("all", Some(("22:00", "22:00")), &[])).is_err());
        assert!(valid_preferences(prefs("all", Some(("25:00", "08:00")), &[])).is_err());
        assert!(valid_preferences(prefs("all", Some(("10pm", "08:00")), &[])).is_err());
        assert!(valid_preferences(prefs("all", Some(("22:00", "7:00")), &[])).is_err());
        assert!(valid_preferences(prefs("all", Some(("22:00", "07:5")), &[])).is_err());
        let p = valid_preferences(prefs("off", None, &[" Deploy ", "deploy", ""])).unwrap();
        assert_eq!(p.keywords, vec!["deploy"]);
        let many: Vec<String> = (0..21).map(|i| format!("k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(valid_preferences(prefs("all", None, &many)).is_err());
    }
}
