//! `chat-demo [URL] [--ca-cert PEM]`: two browser-free clients chatting
//! through the pool, over `http://`/`ws://` or `https://`/`wss://`.
//!
//! Signs up Alice and Bob in a fresh workspace, opens a single chat, connects
//! both over WebSocket (through HAProxy with the default URL from
//! `make run`), exchanges messages and checks every one was acked after
//! commit and delivered once, in order. Exits non-zero on any failure.

use std::time::Duration;

use anyhow::{ensure, Result};
use loadtest::client::{Api, Join, Session};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<()> {
    // chat-demo [URL] [--ca-cert PEM]: `https://` URLs (HAProxy's TLS
    // port) need the certificate to trust, e.g. .data/tls/cert.pem.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut url = "http://127.0.0.1:8080".to_string();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--ca-cert" {
            let path = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("--ca-cert needs a path"))?;
            loadtest::tls::trust_pem(std::path::Path::new(path))?;
            i += 2;
        } else {
            url = args[i].clone();
            i += 1;
        }
    }
    let api = Api::new(&url);
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let alice = api
        .signup(
            "Alice",
            &format!("alice-{tag}@demo.test"),
            &Join::New(format!("demo-{tag}")),
        )
        .await?;
    // Bob joins Alice's workspace with an invite of hers.
    let invite = Join::Invite(api.invite(&alice).await?);
    let bob = api
        .signup("Bob", &format!("bob-{tag}@demo.test"), &invite)
        .await?;
    let chat = api.create_chat(&alice, "single", None, &[bob.id]).await?;
    println!(
        "workspace demo-{tag}: Alice (#{}) and Bob (#{}) in chat {chat}",
        alice.id, bob.id
    );

    let mut a = Session::connect(&api, &alice).await?;
    let mut b = Session::connect(&api, &bob).await?;
    let script = [
        (true, "Hi Bob, is the pool up?"),
        (false, "Hi Alice! Both gateways answer."),
        (true, "Great, see you on the other side of HAProxy."),
    ];
    for (n, (from_alice, text)) in script.iter().enumerate() {
        let (sender, receiver, name) = if *from_alice {
            (&mut a, &mut b, "Alice")
        } else {
            (&mut b, &mut a, "Bob")
        };
        let id = sender
            .send("message.send", json!({ "chatId": chat, "content": text }))
            .await?;
        let ack = sender.answer(&id, WAIT).await?;
        let seq = ack["payload"]["seq"].as_i64().unwrap_or_default();
        ensure!(seq == n as i64 + 1, "expected seq {}, got {seq}", n + 1);
        let got = receiver
            .wait_for(
                |f| {
                    f["type"] == "message.new" && f["payload"]["message"]["clientId"] == id.as_str()
                },
                WAIT,
            )
            .await?;
        ensure!(
            got["payload"]["message"]["content"] == *text,
            "content mismatch: {got}"
        );
        println!("[seq {seq}] {name}: {text}");
    }
    a.close().await;
    b.close().await;
    println!("ok: 3 messages acked after commit and delivered in order");
    Ok(())
}
