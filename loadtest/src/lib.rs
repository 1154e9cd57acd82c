//! The load-test suite and the client-side building blocks it shares with
//! the chat demo. Scenarios only ever target loopback addresses
//! ([`target::ensure_loopback`]) and are bounded in size and time.

pub mod baseline;
pub mod bench;
pub mod channel;
pub mod chaos;
pub mod client;
pub mod conn;
pub mod connections;
pub mod cost;
pub mod growth;
pub mod growth_archive;
pub mod notify;
pub mod presence;
pub mod redis_info;
pub mod report;
pub mod scale;
pub mod search;
pub mod storm;
pub mod target;
pub mod tls;
pub mod traffic;
