//! Password hashing with Argon2id on a small, fixed set of threads.
//!
//! Why not `spawn_blocking` per hash: each Argon2id hash needs its memory
//! cost (19 MiB by default) of scratch blocks. Hundreds of concurrent
//! sign-ups then mean hundreds of blocking threads each allocating 19 MiB;
//! measured on one gateway, 250 sign-ups took RSS from 49 MB to 3.1 GB and
//! the allocator never gave it back. Here `ARGON2_THREADS` threads each own
//! one block buffer that every hash reuses, so hashing memory is bounded by
//! threads x memory cost for the life of the process. Requests wait in a
//! bounded queue (`ARGON2_QUEUE`); when it is full the caller gets
//! [`AppError::Overloaded`] (503 + Retry-After) at once instead of piling up.

use std::{
    sync::{mpsc, Arc, Mutex, OnceLock},
    thread,
};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, SaltString},
    Algorithm, Argon2, Block, Params, Version,
};
use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine};
use tokio::sync::oneshot;

use crate::{config::ARGON2_MAX_MEMORY_KIB, AppError};

/// Length of the stored hash output, bytes.
const OUTPUT_LEN: usize = 32;
/// What a saturated queue tells clients to wait.
const RETRY_AFTER_MS: u64 = 1000;

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, AppError>>,
    },
    Verify {
        password: String,
        stored: String,
        reply: oneshot::Sender<Result<bool, AppError>>,
    },
}

struct Pool {
    jobs: mpsc::SyncSender<Job>,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// Starts the hashing threads with the Argon2id cost for new hashes (memory
/// in KiB, iterations); the first call in a process wins. Stored hashes carry
/// their own parameters, so verification is unaffected by the cost.
pub fn configure(
    memory_kib: u32,
    iterations: u32,
    threads: usize,
    queue: usize,
) -> Result<(), AppError> {
    let params = Params::new(memory_kib, iterations, 1, Some(OUTPUT_LEN))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("invalid Argon2 parameters: {e}")))?;
    POOL.get_or_init(|| start(params, threads.max(1), queue));
    Ok(())
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| start(Params::default(), 2, 64))
}

fn start(params: Params, threads: usize, queue: usize) -> Pool {
    let (jobs, rx) = mpsc::sync_channel::<Job>(queue);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let rx = rx.clone();
        let params = params.clone();
        thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || hashing_thread(params, rx))
            .expect("spawning a password hashing thread");
    }
    Pool { jobs }
}

/// One hashing thread: takes jobs until the pool is gone, reusing `blocks`.
fn hashing_thread(params: Params, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut blocks = vec![Block::default(); params.block_count()];
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        match job {
            Job::Hash { password, reply } => {
                let _ = reply.send(hash_with(&params, &password, &mut blocks));
            }
            Job::Verify {
                password,
                stored,
                reply,
            } => {
                let _ = reply.send(verify_with(&password, &stored, &mut blocks));
            }
        }
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("{what}: {e}"))
}

/// Hashes into the thread's buffer; returns the PHC string.
fn hash_with(params: &Params, password: &str, blocks: &mut Vec<Block>) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| internal("encoding salt", e))?;
    let mut out = [0u8; OUTPUT_LEN];
    compute(params, password, salt_raw, &mut out, blocks)?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Recomputes a stored hash with its own parameters and compares.
fn verify_with(password: &str, stored: &str, blocks: &mut Vec<Block>) -> Result<bool, AppError> {
    let parsed = PasswordHash::new(stored).map_err(|e| internal("stored hash unreadable", e))?;
    let params = Params::try_from(&parsed).map_err(|e| internal("stored hash parameters", e))?;
    if params.m_cost() > ARGON2_MAX_MEMORY_KIB {
        return Err(internal("stored hash", "memory cost above the maximum"));
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(internal("stored hash", "no salt or hash"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| internal("stored salt", e))?;
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let params = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(expected.len()),
    )
    .map_err(|e| internal("stored hash parameters", e))?;
    compute(&params, password, salt_raw, &mut out, blocks)?;
    Ok(constant_time_eq(&out, expected))
}

fn compute(
    params: &Params,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
    blocks: &mut Vec<Block>,
) -> Result<(), AppError> {
    let needed = params.block_count();
    if blocks.len() < needed {
        // A stored hash with a higher cost than new hashes: grow once; the
        // buffer stays at the largest cost seen (bounded by the maximum).
        blocks.resize(needed, Block::default());
    }
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut blocks[..needed])
        .map_err(|e| internal("hashing password", e))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn submit(job: Job) -> Result<(), AppError> {
    pool().jobs.try_send(job).map_err(|e| match e {
        mpsc::TrySendError::Full(_) => AppError::Overloaded {
            what: "password hashing",
            retry_after_ms: RETRY_AFTER_MS,
        },
        mpsc::TrySendError::Disconnected(_) => internal("password hashing", "pool stopped"),
    })
}

/// Hashes `password` into a PHC string (algorithm, parameters, salt, hash).
pub async fn hash(password: String) -> Result<String, AppError> {
    let (reply, answer) = oneshot::channel();
    submit(Job::Hash { password, reply })?;
    answer
        .await
        .map_err(|_| internal("password hashing", "thread gone"))?
}

/// True when `password` matches the stored PHC string.
pub async fn verify(password: String, stored: String) -> Result<bool, AppError> {
    let (reply, answer) = oneshot::channel();
    submit(Job::Verify {
        password,
        stored,
        reply,
    })?;
    answer
        .await
        .map_err(|_| internal("password hashing", "thread gone"))?
}

/// A hash of a random password with the current cost: sign-in for an
/// unknown e-mail verifies against it, so the response time does not reveal
/// which e-mails have accounts.
pub async fn dummy_hash() -> Result<String, AppError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash(crate::token::new_refresh_token()))
        .await
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$"));
        assert!(verify("correct horse".into(), stored.clone())
            .await
            .unwrap());
        assert!(!verify("wrong".into(), stored).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_of_the_argon2_crate_verify_and_ours_parse_there() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"pa55word", &salt)
            .unwrap()
            .to_string();
        assert!(verify("pa55word".into(), theirs.clone()).await.unwrap());
        assert!(!verify("pa55wort".into(), theirs).await.unwrap());
        let ours = hash("pa55word".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"pa55word", &parsed)
            .is_ok());
    }

    #[tokio::test]
    async fn garbage_hashes_are_errors_not_panics() {
        for stored in ["", "$argon2id$", "plain", "$argon2id$v=19$m=1,t=1,p=1$x$y"] {
            assert!(verify("x".into(), stored.into()).await.is_err(), "{stored}");
        }
    }
}
