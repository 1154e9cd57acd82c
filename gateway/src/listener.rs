//! The gateway's own HTTP listener: accept loop, per-connection HTTP
//! server, graceful drain.
//!
//! Why not `axum::serve`: it cannot bound how long a client may take to
//! send its request headers, so a slowloris client holds a connection (and
//! a file descriptor) forever. Here connections (HTTP/1.1 only) get a
//! header-read timeout, also while idle between requests, every request carries its peer address (`ConnectInfo`, for the
//! client-address rate limits), and shutdown stops accepting, asks every
//! connection to finish its current request, and returns.

use std::{net::SocketAddr, pin::pin, time::Duration};

use axum::{body::Body, extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

/// Longest a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` fires, then lets open requests
/// finish (upgraded WebSockets are closed by their sessions).
pub async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        // Small frames (acks, typing) must not wait for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        connections.spawn(serve_connection(tcp, peer, app.clone(), closing.clone()));
    }
    drop(listener);
    closing.cancel();
    connections.close();
    // Wait until every connection finished its request (bounded: a request
    // stuck upstream must not hold the process forever).
    let _ = tokio::time::timeout(Duration::from_secs(10), connections.wait()).await;
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    closing: CancellationToken,
) {
    let service = app.map_request(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let service = TowerToHyperService::new(service);
    // HTTP/1.1 only (HAProxy and WebSocket clients speak it): the header
    // timer then runs from the first byte the connection could send, with
    // no protocol sniffing ahead of it that would wait without a limit.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    let mut conn = pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        }
        _ = closing.cancelled() => {
            conn.as_mut().graceful_shutdown();
            // Keep polling the connection until it finishes.
            if let Err(e) = conn.as_mut().await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        }
    }
}
