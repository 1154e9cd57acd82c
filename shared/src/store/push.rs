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
/// returns the existing one. A device belongs to one user: a token another
/// user had registered (the phone changed hands, or accounts switched on
/// it) moves to this user, so it never gets the previous user's pushes.
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
    sqlx::query("DELETE FROM push_devices WHERE platform = $1 AND token = $2 AND user_id <> $3")
        .bind(platform)
        .bind(token)
        .bind(user_id)
        .execute(pool)
        .await?;
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

/// Whether a URL may receive pushes (Web Push endpoints, webhooks): these
/// URLs come from users, and the push worker POSTs to them, so they must
/// not reach the deployment's own network (server-side request forgery).
/// `https://` only, no credentials in the URL, and no host that is
/// `localhost` or an IP literal in a loopback, private, link-local,
/// shared (CGNAT), unique-local, multicast or unspecified range. With
/// `allow_local` (local setups and tests) `http://` and such hosts are
/// accepted. Names that resolve to private addresses are not caught here:
/// production pushes should leave through an egress proxy.
pub fn check_target(url: &str, allow_local: bool) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "not a URL".to_string())?;
    let scheme = scheme.to_ascii_lowercase();
    if !(scheme == "https" || (allow_local && scheme == "http")) {
        return Err("must be an https:// URL".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("not a valid URL (no credentials, no spaces)".into());
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_string()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_ascii_lowercase()
    };
    if allow_local {
        return Ok(());
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Err("must not point at this host".into());
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if !is_public(ip) => Err("must not point at a private or local address".into()),
        _ => Ok(()),
    }
}

fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_target;

    #[test]
    fn push_targets_stay_off_the_internal_network() {
        for ok in [
            "https://hooks.example.net/x",
            "HTTPS://hooks.example.net/up",
            "https://8.8.8.8/x",
            "https://[2001:4860::1]/x",
        ] {
            assert!(check_target(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.net/x",
            "https://127.0.0.1:8081/api",
            "https://169.254.169.254/latest/meta-data",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://100.64.0.1/",
            "https://localhost/x",
            "https://api.localhost/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://user:pw@hooks.example.net/x",
            "https:// hooks.example.net",
            "ftp://hooks.example.net",
        ] {
            assert!(check_target(bad, false).is_err(), "{bad}");
        }
        assert!(check_target("http://127.0.0.1:9/hook", true).is_ok());
    }
}
