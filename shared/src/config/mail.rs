//! Sign-up mode and outgoing e-mail settings.
//!
//! Kept apart from the rest of [`super::Config`] because they travel
//! together: `SIGNUP_MODE=verified` is only useful with a mail transport
//! that reaches people, and the transport's API token is a secret that
//! must never reach `Debug` output or logs.

use std::{fmt, path::PathBuf, str::FromStr};

use anyhow::{bail, Result};

/// How `POST /api/signup` admits people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupMode {
    /// The account exists at once and the answer carries tokens. An
    /// existing e-mail is answered 409, which tells a caller that the
    /// address has an account: for development and trusted networks.
    Direct,
    /// The answer is always 202 "verification sent"; the account is
    /// created when the mailed link is followed. Required for joining a
    /// workspace by e-mail domain, and does not reveal which e-mails exist.
    Verified,
}

impl FromStr for SignupMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "direct" => Ok(Self::Direct),
            "verified" => Ok(Self::Verified),
            other => bail!("SIGNUP_MODE must be `direct` or `verified`, not {other:?}"),
        }
    }
}

/// Where the worker delivers the e-mail outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// One RFC 5322 `.eml` file per message in a directory (local pools).
    File(PathBuf),
    /// `POST` of `{from, to, subject, text}` JSON to an HTTP mail API with
    /// a bearer token (the shape of the common transactional mail APIs).
    Http { url: String },
}

#[derive(Clone)]
pub struct MailSettings {
    pub transport: MailTransport,
    /// Bearer token of the HTTP transport (secret).
    pub api_token: String,
    /// The `From` of every mail.
    pub from: String,
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("transport", &self.transport)
            .field("api_token", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

impl MailSettings {
    /// Builds the settings from `MAIL_TRANSPORT`, `MAIL_DIR`,
    /// `MAIL_API_URL`, `MAIL_API_TOKEN` and `MAIL_FROM`.
    pub(super) fn from_values(
        transport: &str,
        dir: &str,
        api_url: &str,
        api_token: String,
        from: String,
    ) -> Result<Self> {
        let transport = match transport {
            "file" => MailTransport::File(PathBuf::from(dir)),
            "http" => {
                if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
                    bail!("MAIL_TRANSPORT=http needs MAIL_API_URL (an http:// or https:// URL)");
                }
                MailTransport::Http {
                    url: api_url.to_string(),
                }
            }
            other => bail!("MAIL_TRANSPORT must be `file` or `http`, not {other:?}"),
        };
        if !from.contains('@') || from.contains(['\r', '\n']) {
            bail!("MAIL_FROM must be one address, e.g. `Fechatter <no-reply@example.com>`");
        }
        Ok(Self {
            transport,
            api_token,
            from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_and_reject_bad_values() {
        let s = MailSettings::from_values("file", "m", "", String::new(), "a@b.c".into()).unwrap();
        assert_eq!(s.transport, MailTransport::File("m".into()));
        assert!(MailSettings::from_values("http", "m", "", String::new(), "a@b.c".into()).is_err());
        let h = MailSettings::from_values(
            "http",
            "m",
            "https://mail.example/send",
            "s3cr3t-value".into(),
            "a@b.c".into(),
        )
        .unwrap();
        assert!(!format!("{h:?}").contains("s3cr3t"), "token redacted");
        assert!(MailSettings::from_values("smtp", "m", "", String::new(), "a@b.c".into()).is_err());
        assert!(
            MailSettings::from_values("file", "m", "", String::new(), "x\r\nBcc: y@z".into())
                .is_err()
        );
        assert_eq!(
            "verified".parse::<SignupMode>().unwrap(),
            SignupMode::Verified
        );
        assert!("open".parse::<SignupMode>().is_err());
    }
}
