//! Push devices and delivery claims (see the migration's notes).

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{store::conflict_on_unique, AppError, AppResult};

/// A registered device (what `GET /api/me/devices` lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub id: i64,
    pub platform: String,
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p256dh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "id, platform, token, p256dh, auth, created_at";

/// Most devices one user may register.
pub const MAX_DEVICES: i64 = 20;

/// Registers a device; registering the same (platform, token) again
/// returns the existing one.
pub async fn register(
    pool: &PgPool,
    user_id: i64,
    platform: &str,
    token: &str,
    keys: Option<(&str, &str)>,
) -> AppResult<(Device, bool)> {
    if let Some(d) = find(pool, user_id, platform, token).await? {
        return Ok((d, false));
    }
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM push_devices WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await?;
    if count >= MAX_DEVICES {
        return Err(AppError::validation(format!(
            "at most {MAX_DEVICES} devices per user; delete one first"
        )));
    }
    let device = sqlx::query_as(&format!(
        "INSERT INTO push_devices (user_id, platform, token, p256dh, auth)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(platform)
    .bind(token)
    .bind(keys.map(|k| k.0))
    .bind(keys.map(|k| k.1))
    .fetch_one(pool)
    .await
    .map_err(|e| conflict_on_unique(e, "device already registered"))?;
    Ok((device, true))
}

async fn find(
    pool: &PgPool,
    user_id: i64,
    platform: &str,
    token: &str,
) -> AppResult<Option<Device>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM push_devices WHERE user_id = $1 AND platform = $2 AND token = $3"
    ))
    .bind(user_id)
    .bind(platform)
    .bind(token)
    .fetch_optional(pool)
    .await?)
}

pub async fn list(pool: &PgPool, user_id: i64) -> AppResult<Vec<Device>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM push_devices WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// Unregisters the user's device with this platform and token; false
/// when there was none.
pub async fn unregister(
    pool: &PgPool,
    user_id: i64,
    platform: &str,
    token: &str,
) -> AppResult<bool> {
    let done =
        sqlx::query("DELETE FROM push_devices WHERE user_id = $1 AND platform = $2 AND token = $3")
            .bind(user_id)
            .bind(platform)
            .bind(token)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// A platform told us the device is gone (404/410).
pub async fn remove(pool: &PgPool, device_id: i64) -> AppResult<()> {
    sqlx::query("DELETE FROM push_devices WHERE id = $1")
        .bind(device_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Claims the delivery of `message_id` to `device_id`: true when this
/// caller may send it, false when someone already did (or tried).
pub async fn claim(pool: &PgPool, message_id: i64, device_id: i64) -> AppResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO push_deliveries (message_id, device_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING RETURNING device_id",
    )
    .bind(message_id)
    .bind(device_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Records how a claimed delivery ended.
pub async fn settle(
    pool: &PgPool,
    message_id: i64,
    device_id: i64,
    outcome: &str,
    attempts: i32,
) -> AppResult<()> {
    sqlx::query(
        "UPDATE push_deliveries SET outcome = $3, attempts = $4 WHERE message_id = $1 AND device_id = $2",
    )
    .bind(message_id)
    .bind(device_id)
    .bind(outcome)
    .bind(attempts)
    .execute(pool)
    .await?;
    Ok(())
}
