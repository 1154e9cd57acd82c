//! Shared state of one gateway process: connection pools, token keys and
//! metrics, cloned cheaply into every request handler.

use std::sync::Arc;

use fechatter_shared::{metrics::Metrics, redis::Keys, token::TokenKeys, Config};
use sqlx::PgPool;

#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    pub pool: PgPool,
    pub redis: fred::prelude::Client,
    pub keys: Keys,
    pub tokens: TokenKeys,
    pub metrics: Metrics,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    pub fn new(config: Config, pool: PgPool, redis: fred::prelude::Client) -> Self {
        let tokens = TokenKeys::new(&config.jwt_secret, config.access_token_ttl);
        let keys = Keys::new(config.redis_prefix.clone());
        Self {
            inner: Arc::new(Inner {
                metrics: Metrics::new("gateway"),
                config,
                pool,
                redis,
                keys,
                tokens,
            }),
        }
    }
}
