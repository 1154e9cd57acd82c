//! Search backend settings. PostgreSQL full-text search is the default
//! and needs nothing; Meilisearch is optional (seed 004 names it) and is
//! chosen only when `SEARCH_BACKEND=meilisearch`, which then requires
//! `MEILI_URL`. The API key is a secret and never appears in `Debug`.

use std::{fmt, str::FromStr};

use anyhow::{bail, Result};

/// Which engine answers message searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchBackend {
    #[default]
    Postgres,
    Meilisearch,
}

impl FromStr for SearchBackend {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "postgres" => Ok(Self::Postgres),
            "meilisearch" => Ok(Self::Meilisearch),
            other => bail!("SEARCH_BACKEND must be postgres or meilisearch, not {other:?}"),
        }
    }
}

#[derive(Clone, Default)]
pub struct SearchSettings {
    pub backend: SearchBackend,
    /// Meilisearch base URL (required for the meilisearch backend).
    pub meili_url: String,
    /// Meilisearch API key (secret; may be empty for an open dev server).
    pub meili_key: String,
    /// Name of the Meilisearch index of messages.
    pub meili_index: String,
}

impl SearchSettings {
    pub fn from_values(
        backend: &str,
        meili_url: &str,
        meili_key: String,
        meili_index: &str,
    ) -> Result<Self> {
        let backend: SearchBackend = backend.parse()?;
        if backend == SearchBackend::Meilisearch && meili_url.is_empty() {
            bail!("SEARCH_BACKEND=meilisearch needs MEILI_URL");
        }
        if meili_index.is_empty()
            || !meili_index
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("MEILI_INDEX must be letters, digits, '-' or '_'");
        }
        Ok(Self {
            backend,
            meili_url: meili_url.trim_end_matches('/').to_string(),
            meili_key,
            meili_index: meili_index.to_string(),
        })
    }
}

impl fmt::Debug for SearchSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchSettings")
            .field("backend", &self.backend)
            .field("meili_url", &self.meili_url)
            .field("meili_key", &"<redacted>")
            .field("meili_index", &self.meili_index)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_choice_is_checked() {
        let pg = SearchSettings::from_values("postgres", "", String::new(), "messages").unwrap();
        assert_eq!(pg.backend, SearchBackend::Postgres);
        assert!(SearchSettings::from_values("meilisearch", "", String::new(), "m").is_err());
        assert!(SearchSettings::from_values("elastic", "", String::new(), "m").is_err());
        assert!(SearchSettings::from_values("postgres", "", String::new(), "a b").is_err());
        let meili = SearchSettings::from_values(
            "meilisearch",
            "http://127.0.0.1:7700/",
            "k3y".into(),
            "messages",
        )
        .unwrap();
        assert_eq!(meili.meili_url, "http://127.0.0.1:7700");
        assert!(!format!("{meili:?}").contains("k3y"), "the key is a secret");
    }
}
