//! A workspace's message archive setting: `GET` and `PUT
//! /api/workspace/archive` (`{archiveAfterDays}`; the policy is in
//! docs/architecture.md, "Database growth").
//!
//! Why the owner only sets it: it changes where every member's history
//! lives and what search finds, for the whole workspace. Every member may
//! read it, since it says which of their messages are searchable. The
//! rule on the value is a pure function ([`check_days`]).

use axum::{extract::State, routing::get, Json, Router};
use fechatter_shared::{store::archive, AppError, AppResult};
use serde::{Deserialize, Serialize};

use crate::{
    extract::{ApiJson, AuthUser},
    routes::workspace::caller,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/workspace/archive", get(show).put(set))
}

/// The setting as clients read and write it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ArchiveSetting {
    /// Messages older than this many days move to the archive; `null`:
    /// never (the default).
    archive_after_days: Option<i32>,
}

/// The body of `PUT`: like [`ArchiveSetting`], but the field must be
/// given (`null` clears the setting; a missing field is refused rather
/// than read as `null`, which would silently switch archival off).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetArchive {
    #[serde(default, deserialize_with = "present")]
    archive_after_days: Option<Option<i32>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i32>>, D::Error> {
    Option::<i32>::deserialize(d).map(Some)
}

/// `None` (never archive) or a number of days within
/// [`archive::MIN_DAYS`]..=[`archive::MAX_DAYS`].
pub fn check_days(days: Option<i32>) -> Result<(), String> {
    match days {
        Some(d) if !(archive::MIN_DAYS..=archive::MAX_DAYS).contains(&d) => Err(format!(
            "archiveAfterDays must be null or between {} and {}",
            archive::MIN_DAYS,
            archive::MAX_DAYS
        )),
        _ => Ok(()),
    }
}

async fn show(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> AppResult<Json<ArchiveSetting>> {
    let actor = caller(&state, &me).await?;
    let days = archive::policy(&state.pool, actor.workspace_id).await?;
    Ok(Json(ArchiveSetting {
        archive_after_days: days,
    }))
}

async fn set(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<SetArchive>,
) -> AppResult<Json<ArchiveSetting>> {
    let actor = caller(&state, &me).await?;
    if actor.role != "owner" {
        return Err(AppError::forbidden(
            "only the owner sets the archive policy",
        ));
    }
    let days = req
        .archive_after_days
        .ok_or_else(|| AppError::validation("archiveAfterDays is required (null: never)"))?;
    check_days(days).map_err(AppError::validation)?;
    archive::set_policy(&state.pool, actor.workspace_id, days).await?;
    tracing::info!(
        workspace_id = actor.workspace_id,
        days,
        by = actor.id,
        "archive policy set"
    );
    Ok(Json(ArchiveSetting {
        archive_after_days: days,
    }))
}

#[cfg(test)]
mod tests {
    use super::check_days;

    #[test]
    fn days_are_null_or_within_bounds() {
        assert!(check_days(None).is_ok());
        assert!(check_days(Some(30)).is_ok());
        assert!(check_days(Some(36_500)).is_ok());
        for bad in [29, 0, -1, 36_501] {
            assert!(check_days(Some(bad)).is_err(), "{bad}");
        }
    }
}
