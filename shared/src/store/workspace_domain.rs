//! E-mail domains whose verified addresses may join a workspace without
//! an invite (the owner's allow-list).
//!
//! Only addresses proven by a mailed link count (`SIGNUP_MODE=verified`):
//! anyone can type `ceo@acme.com` into a form. The rules on what may be
//! listed are the pure [`normalize`], tested without a database.

use sqlx::PgPool;

use crate::{AppError, AppResult};

/// Most domains on one workspace's list.
pub const MAX_DOMAINS: usize = 50;

/// Mailbox providers anyone can get an address at: listing one would let
/// the whole internet in.
const PUBLIC_PROVIDERS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "163.com",
];

/// The canonical form of a listed domain, or why it cannot be listed.
pub fn normalize(domain: &str) -> Result<String, String> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = d.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let numeric_tld = d
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    if d.len() > 253 || !d.contains('.') || !labels_ok || numeric_tld {
        return Err(format!("{domain:?} is not a domain name like example.com"));
    }
    if PUBLIC_PROVIDERS.contains(&d.as_str()) {
        return Err(format!(
            "{d} is a public mailbox provider; invite its users instead"
        ));
    }
    Ok(d)
}

/// The domain part of an address, lowercased.
pub fn of_email(email: &str) -> String {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default()
}

pub async fn list(pool: &PgPool, workspace_id: i64) -> AppResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT domain FROM workspace_domains WHERE workspace_id = $1 ORDER BY domain",
    )
    .bind(workspace_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(d,)| d).collect())
}

/// Replaces the workspace's list with `domains` (already normalized).
pub async fn replace(pool: &PgPool, workspace_id: i64, domains: &[String]) -> AppResult<()> {
    if domains.len() > MAX_DOMAINS {
        return Err(AppError::validation(format!(
            "at most {MAX_DOMAINS} domains"
        )));
    }
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM workspace_domains WHERE workspace_id = $1")
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO workspace_domains (workspace_id, domain)
         SELECT $1, d FROM unnest($2::text[]) AS d ON CONFLICT DO NOTHING",
    )
    .bind(workspace_id)
    .bind(domains)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `email`'s domain is on the workspace's list.
pub async fn allows<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    workspace_id: i64,
    email: &str,
) -> AppResult<bool> {
    let (found,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM workspace_domains WHERE workspace_id = $1 AND domain = $2)",
    )
    .bind(workspace_id)
    .bind(of_email(email))
    .fetch_one(executor)
    .await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalized_or_refused() {
        assert_eq!(normalize(" Acme.COM. ").unwrap(), "acme.com");
        assert_eq!(normalize("mail.acme.co.uk").unwrap(), "mail.acme.co.uk");
        for bad in [
            "1.2.3.4",
            "acme.123",
            "acme",
            "",
            "a..b",
            "-a.com",
            "a_b.com",
            "x@acme.com",
            "acme .com",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} refused");
        }
        assert!(normalize("GMail.com").unwrap_err().contains("public"));
        assert_eq!(of_email("Ann@Acme.COM"), "acme.com");
        assert_eq!(of_email("nodomain"), "");
    }
}
