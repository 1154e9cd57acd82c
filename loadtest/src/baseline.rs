//! The bare fan-out limit: a minimal tokio WebSocket broadcaster with no
//! Redis, no PostgreSQL and no authentication, speaking just enough of the
//! protocol (`session.ready`, `message.send` -> `ack` + `message.new`) for
//! the same load client to drive it. Each event is serialized once and the
//! bytes shared by all connections, with the same bounded-queue writer
//! design as the real gateway, so the ratio between the two isolates the
//! cost of the durable pipeline.

use std::sync::{Arc, Mutex};

use axum::{
    extract::{
        ws::{Message, Utf8Bytes, WebSocket},
        State, WebSocketUpgrade,
    },
    response::Response,
    routing::get,
    Router,
};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::{net::TcpListener, sync::mpsc};

#[derive(Default)]
struct Room {
    seq: i64,
    conns: Vec<mpsc::Sender<Utf8Bytes>>,
}

type Shared = Arc<Mutex<Room>>;

/// Serves the broadcaster on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/ws", get(upgrade))
        .with_state(Shared::default());
    axum::serve(listener, app).await?;
    Ok(())
}

async fn upgrade(State(room): State<Shared>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(4096)
        .write_buffer_size(8192)
        .on_upgrade(move |s| session(room, s))
}

#[derive(Deserialize)]
struct Send {
    id: String,
    payload: SendPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendPayload {
    chat_id: i64,
    content: String,
}

async fn session(room: Shared, socket: WebSocket) {
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(1000);
    room.lock().expect("room").conns.push(tx.clone());
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < 64 {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            for m in batch {
                if sink.feed(Message::Text(m)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let _ = tx.try_send(Utf8Bytes::from_static(
        r#"{"type":"session.ready","id":"0","timestamp":"","payload":{}}"#,
    ));
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(send) = serde_json::from_str::<Send>(text.as_str()) else {
            continue;
        };
        // Sequence and enqueue under one lock, so every connection gets
        // the events in seq order (try_send never blocks).
        let seq = {
            let mut r = room.lock().expect("room");
            r.seq += 1;
            let frame = serde_json::json!({
                "type": "message.new", "id": format!("c{}:{}-0", send.payload.chat_id, r.seq), "timestamp": "",
                "payload": { "chatId": send.payload.chat_id, "message": { "seq": r.seq, "content": send.payload.content } }
            })
            .to_string();
            let frame = Utf8Bytes::from(frame);
            r.conns.retain(|c| !c.is_closed());
            for c in &r.conns {
                let _ = c.try_send(frame.clone());
            }
            r.seq
        };
        let ack = format!(
            r#"{{"type":"ack","id":"","timestamp":"","payload":{{"refId":"{}","status":"ok","seq":{seq}}}}}"#,
            send.id
        );
        let _ = tx.try_send(Utf8Bytes::from(ack));
    }
    writer.abort();
}
