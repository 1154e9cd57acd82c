//! Code shared by the gateway, the worker and the load tester.
//!
//! The gateway and the worker are separate processes that must agree on the
//! database schema, the Redis key layout, the token format and the wire
//! protocol; keeping those definitions in one crate makes disagreement a
//! compile error instead of a production incident.

pub mod config;
pub mod error;
pub mod health;
pub mod ingest;
pub mod mention;
pub mod metrics;
pub mod model;
pub mod password;
pub mod presence;
pub mod protocol;
pub mod redis;
pub mod revocation;
pub mod scripts;
pub mod search;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod topic;
pub mod user_stream;
pub mod wake;

pub use config::Config;
pub use error::{AppError, AppResult};

/// The embedded migrations; the worker runs them at start and `worker migrate`
/// runs them on demand. Tests use them through `#[sqlx::test(migrator = ...)]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The migrations older than `version`: a database as an earlier release
/// left it, for tests of a migration on existing data.
pub fn migrator_before(version: i64) -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version < version)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}
