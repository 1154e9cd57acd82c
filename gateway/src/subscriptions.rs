//! Keeps the gateway's Redis Pub/Sub subscriptions equal to what its hub
//! needs: the wake channels of chats with a local member, of local users,
//! of users whose presence a local connection watches, and of the gateway
//! itself. One task applies changes, coalescing bursts
//! (a reconnect storm changes thousands of memberships at once) into one
//! SUBSCRIBE/UNSUBSCRIBE pass, and callers can wait until it is done.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use fred::{clients::SubscriberClient, prelude::*};
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
                    result = subscriber.subscribe(add).await;
                }
                if result.is_ok() && !remove.is_empty() {
                    result = subscriber.unsubscribe(remove).await;
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
        let _ = subscriber
            .unsubscribe(current.into_iter().collect::<Vec<_>>())
            .await;
    });
    Subscriptions { tx, resubscribe }
}
