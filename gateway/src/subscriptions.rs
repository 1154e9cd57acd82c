//! Keeps the gateway's Redis Pub/Sub subscriptions equal to what its hub
//! needs: the wake channels of chats with a local member, of local users,
//! of users whose presence a local connection watches, and of the gateway
//! itself. One task applies changes, coalescing bursts
//! (a reconnect storm changes thousands of memberships at once) into one
//! SUBSCRIBE/UNSUBSCRIBE pass, and callers can wait until it is done.
//!
//! Subscriptions are sharded (`SSUBSCRIBE`, see `fechatter_shared::redis`):
//! in a Redis Cluster each channel is served by the node owning its slot,
//! and one SSUBSCRIBE may only name channels of one slot, so a pass sends
//! one command per slot, many at a time.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use fred::{clients::SubscriberClient, prelude::*};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Asks the subscription task to make Redis subscriptions match the hub.
#[derive(Clone)]
pub struct Subscriptions {
    tx: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// Set after a Redis reconnect: the next pass subscribes to every
    /// wanted channel again instead of trusting what it did before.
    resubscribe: Arc<AtomicBool>,
}

impl Subscriptions {
    /// After a Redis reconnect: subscribe to every wanted channel again
    /// (SUBSCRIBE is idempotent), without waiting. The client library
    /// re-subscribes by itself too, but a subscription lost there would
    /// silence a chat until the gateway restarts.
    pub fn resubscribe_all(&self) {
        self.resubscribe.store(true, Ordering::SeqCst);
        let (done, _) = oneshot::channel();
        let _ = self.tx.send(done);
    }

    /// Returns once the subscriptions match the hub as it is now.
    pub async fn refresh(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(done).is_ok() {
            let _ = wait.await;
        }
    }
}

/// Starts the subscription task; it stops when `shutdown` fires.
pub fn spawn_subscriptions(
    subscriber: SubscriberClient,
    hub: Arc<crate::hub::Hub>,
    watch: Arc<crate::presence_watch::PresenceWatch>,
    keys: fechatter_shared::redis::Keys,
    gateway_channel: String,
    shutdown: CancellationToken,
) -> Subscriptions {
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let resubscribe = Arc::new(AtomicBool::new(false));
    let reset = resubscribe.clone();
    tokio::spawn(async move {
        let mut current: HashSet<String> = HashSet::new();
        loop {
            let first = tokio::select! {
                r = rx.recv() => match r { Some(d) => d, None => break },
                _ = shutdown.cancelled() => break,
            };
            // Coalesce every request queued meanwhile into one pass.
            let mut waiters = vec![first];
            while let Ok(d) = rx.try_recv() {
                waiters.push(d);
            }
            // Retry until Redis takes it (or shutdown): the waiters are
            // sessions that must not go live before their chats are heard.
            loop {
                if reset.swap(false, Ordering::SeqCst) {
                    current.clear();
                }
                let mut wanted: HashSet<String> = hub
                    .local_chats()
                    .into_iter()
                    .map(|c| keys.chat_channel(c))
                    .collect();
                wanted.extend(hub.local_users().into_iter().map(|u| keys.user_channel(u)));
                wanted.extend(
                    watch
                        .watched_users()
                        .into_iter()
                        .map(|u| keys.presence_channel(u)),
                );
                wanted.insert(gateway_channel.clone());
                let add: Vec<String> = wanted.difference(&current).cloned().collect();
                let remove: Vec<String> = current.difference(&wanted).cloned().collect();
                let mut result = Ok(());
                if !add.is_empty() {
                    result = sharded(&subscriber, add, Change::Subscribe).await;
                }
                if result.is_ok() && !remove.is_empty() {
                    result = sharded(&subscriber, remove, Change::Unsubscribe).await;
                }
                match result {
                    Ok(()) => {
                        current = wanted;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "changing subscriptions failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                            _ = shutdown.cancelled() => break,
                        }
                    }
                }
            }
            for w in waiters {
                let _ = w.send(());
            }
        }
        let _ = sharded(
            &subscriber,
            current.into_iter().collect(),
            Change::Unsubscribe,
        )
        .await;
    });
    Subscriptions { tx, resubscribe }
}

#[derive(Clone, Copy)]
enum Change {
    Subscribe,
    Unsubscribe,
}

/// SSUBSCRIBEs (or SUNSUBSCRIBEs) `channels`: one command per hash slot,
/// up to [`IN_FLIGHT`] at a time.
async fn sharded(
    subscriber: &SubscriberClient,
    channels: Vec<String>,
    change: Change,
) -> Result<(), Error> {
    let mut by_slot: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for channel in channels {
        let slot = fred::util::redis_keyslot(channel.as_bytes());
        by_slot.entry(slot).or_default().push(channel);
    }
    futures::stream::iter(by_slot.into_values())
        .map(|group| async move {
            match change {
                Change::Subscribe => subscriber.ssubscribe(group).await,
                Change::Unsubscribe => subscriber.sunsubscribe(group).await,
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// Subscription commands in flight at once during a pass: enough to
/// subscribe thousands of chats after a reconnect in a few round trips.
const IN_FLIGHT: usize = 128;
