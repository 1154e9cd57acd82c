//! The mailer: delivers the e-mail outbox (`email_outbox`, written by the
//! gateways in the same transaction as what a mail announces).
//!
//! Failure handling, in order of likelihood:
//! * The mail API answers 5xx, 408 or 429, times out or is unreachable, or
//!   the mail directory is not writable: transient. The message is tried
//!   again after an exponential backoff with jitter (2 s doubling, capped
//!   at 10 min), at most [`MAX_ATTEMPTS`] times, then marked failed.
//! * The mail API answers any other 4xx (bad address, bad credentials):
//!   permanent. Marked failed at once with the status in `last_error`.
//! * PostgreSQL unavailable: the loop logs and tries again next tick.
//! * This worker dies mid-send: the row's claim lapses after
//!   [`CLAIM_LEASE`] and any worker sends it again. Delivery is therefore
//!   at least once; the HTTP transport sends an `Idempotency-Key` so a
//!   provider that honours it delivers once.
//!
//! Several workers may run mailers: claiming skips locked rows, so each
//! due message goes to one of them.

use std::{path::Path, time::Duration};

use fechatter_shared::{
    config::{MailSettings, MailTransport},
    store::{email, signup},
};
use prometheus::{IntCounterVec, IntGauge, Opts};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Attempts before a message is given up.
pub const MAX_ATTEMPTS: i32 = 10;
/// How long a claimed message is invisible to other mailers.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);
const TICK: Duration = Duration::from_secs(1);
const BATCH: i64 = 20;

/// What one delivery attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Transient(String),
    Permanent(String),
}

#[derive(Clone)]
pub struct MailMetrics {
    pub sent: IntCounterVec,
    pub pending: IntGauge,
}

impl MailMetrics {
    pub fn new(base: &fechatter_shared::metrics::Metrics) -> Self {
        Self {
            sent: base.register(
                IntCounterVec::new(
                    Opts::new("mail_attempts_total", "e-mail delivery attempts by outcome"),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            pending: base.register(
                IntGauge::new("mail_outbox_pending", "e-mails not yet sent nor failed")
                    .expect("valid metric"),
            ),
        }
    }
}

pub struct Mailer {
    pool: PgPool,
    settings: MailSettings,
    http: reqwest::Client,
    metrics: MailMetrics,
}

impl Mailer {
    pub fn new(pool: PgPool, settings: MailSettings, metrics: MailMetrics) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client builds");
        Self {
            pool,
            settings,
            http,
            metrics,
        }
    }

    /// Delivers due mail every second until `shutdown`; purges expired
    /// sign-up requests every ten minutes.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks: u64 = 0;
        loop {
            if let Err(e) = self.deliver_due().await {
                tracing::warn!(error = %e, "mail outbox not processed; retrying");
            }
            if ticks.is_multiple_of(10) {
                if let Ok(n) = email::pending(&self.pool).await {
                    self.metrics.pending.set(n);
                }
            }
            if ticks.is_multiple_of(600) {
                match signup::purge_expired(&self.pool).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "expired sign-up requests"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "sign-up purge failed"),
                }
            }
            ticks += 1;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Claims and delivers one batch of due messages; returns how many.
    pub async fn deliver_due(&self) -> fechatter_shared::AppResult<usize> {
        let due = email::claim_due(&self.pool, BATCH, CLAIM_LEASE).await?;
        for mail in &due {
            let outcome = self.deliver(mail).await;
            self.record(mail, outcome).await?;
        }
        Ok(due.len())
    }

    async fn record(
        &self,
        mail: &email::Outgoing,
        outcome: Outcome,
    ) -> fechatter_shared::AppResult<()> {
        let label = match &outcome {
            Outcome::Sent => "sent",
            Outcome::Transient(_) if mail.attempts >= MAX_ATTEMPTS => "failed",
            Outcome::Transient(_) => "retry",
            Outcome::Permanent(_) => "failed",
        };
        self.metrics.sent.with_label_values(&[label]).inc();
        match outcome {
            Outcome::Sent => email::mark_sent(&self.pool, mail.id).await,
            Outcome::Transient(e) if mail.attempts < MAX_ATTEMPTS => {
                tracing::warn!(mail_id = mail.id, attempts = mail.attempts, error = %e,
                               "mail delivery failed; will retry");
                email::retry_later(&self.pool, mail.id, backoff(mail.attempts), &e).await
            }
            Outcome::Transient(e) | Outcome::Permanent(e) => {
                tracing::error!(mail_id = mail.id, attempts = mail.attempts, error = %e,
                                "mail given up");
                email::mark_failed(&self.pool, mail.id, &e).await
            }
        }
    }

    async fn deliver(&self, mail: &email::Outgoing) -> Outcome {
        match &self.settings.transport {
            MailTransport::File(dir) => write_file(dir, &self.settings.from, mail).await,
            MailTransport::Http { url } => self.post(url, mail).await,
        }
    }

    async fn post(&self, url: &str, mail: &email::Outgoing) -> Outcome {
        let mut request = self
            .http
            .post(url)
            .header("Idempotency-Key", format!("fechatter-mail-{}", mail.id))
            .json(&serde_json::json!({
                "from": self.settings.from,
                "to": mail.recipient,
                "subject": mail.subject,
                "text": mail.body,
            }));
        if !self.settings.api_token.is_empty() {
            request = request.bearer_auth(&self.settings.api_token);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => Outcome::Sent,
            Ok(r) => classify_status(r.status().as_u16()),
            Err(e) => Outcome::Transient(format!("mail API unreachable: {e}")),
        }
    }
}

/// 5xx, 408 and 429 may pass; other 4xx will not.
pub fn classify_status(status: u16) -> Outcome {
    match status {
        408 | 429 | 500..=599 => Outcome::Transient(format!("mail API answered {status}")),
        _ => Outcome::Permanent(format!("mail API answered {status}")),
    }
}

/// 2 s doubling per attempt, capped at 10 min, plus up to 25 % jitter so
/// a burst of failures does not retry in lockstep.
pub fn backoff(attempts: i32) -> Duration {
    let base = 2f64 * 2f64.powi(attempts.clamp(1, 20) - 1);
    let capped = base.min(600.0);
    Duration::from_secs_f64(capped * (1.0 + rand::random::<f64>() * 0.25))
}

/// The message as an RFC 5322 file `<id>.eml`, written whole (temporary
/// file, then rename) so a reader never sees half a message.
async fn write_file(dir: &Path, from: &str, mail: &email::Outgoing) -> Outcome {
    let text = format!(
        "From: {from}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <outbox-{}@fechatter>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{}",
        mail.recipient,
        mail.subject,
        chrono::Utc::now().to_rfc2822(),
        mail.id,
        mail.body.replace('\n', "\r\n"),
    );
    let write = async {
        tokio::fs::create_dir_all(dir).await?;
        let tmp = dir.join(format!(".{}.eml.tmp", mail.id));
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, dir.join(format!("{}.eml", mail.id))).await
    };
    match write.await {
        Ok(()) => Outcome::Sent,
        Err(e) => Outcome::Transient(format!("writing to {}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_backoff() {
        assert!(matches!(classify_status(503), Outcome::Transient(_)));
        assert!(matches!(classify_status(429), Outcome::Transient(_)));
        assert!(matches!(classify_status(400), Outcome::Permanent(_)));
        assert!(matches!(classify_status(401), Outcome::Permanent(_)));
        let first = backoff(1).as_secs_f64();
        assert!((2.0..=2.5).contains(&first), "{first}");
        let late = backoff(30).as_secs_f64();
        assert!((600.0..=750.0).contains(&late), "{late}");
    }
}
