//! `reconnect-storm`: every client drops at once, messages pile up while
//! they are away, then all reconnect together and catch up with
//! `sync.request`. Measures how long until everyone is resynced and audits
//! that each client got exactly the messages it missed.

use std::{collections::HashMap, time::Duration};

use anyhow::{bail, Context, Result};
use futures::{stream, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    client::Api,
    conn,
    report::{histogram, Audit, Percentiles, Report},
    target::Target,
    traffic::{signup_many, tag},
};

const WAIT: Duration = Duration::from_secs(30);

/// Reads frames until one satisfies `pred`.
async fn until(stream: &mut conn::Stream, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                if pred(&v) {
                    return Ok(v);
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("closed"),
            Err(_) => bail!("timed out"),
        }
    }
}

pub async fn storm(target: &Target, clients: usize, chats: usize, gap: usize) -> Result<Report> {
    anyhow::ensure!(
        chats >= 1 && clients >= 2 * chats,
        "need at least 2 clients per chat"
    );
    anyhow::ensure!(
        gap <= 10,
        "gap is at most 10 (one burst of the send rate limit)"
    );
    let api = Api::new(&target.api);
    let accounts = signup_many(&api, clients + chats, &tag()).await?;
    let (writers, members) = accounts.split_at(chats);
    // Member i is in chat i % chats.
    let mut chat_ids = Vec::new();
    for (c, w) in writers.iter().enumerate() {
        let ids: Vec<i64> = members
            .iter()
            .enumerate()
            .filter(|(i, _)| i % chats == c)
            .map(|(_, a)| a.id)
            .collect();
        chat_ids.push(api.create_chat(w, "group", None, &ids).await?);
    }
    let mut writer_conns = Vec::new();
    for (c, w) in writers.iter().enumerate() {
        writer_conns.push(conn::connect(&target.ws_url(c, &w.token), c).await?);
    }
    let connected: Vec<_> = stream::iter(members.iter().enumerate())
        .map(|(i, m)| {
            let url = target.ws_url(i, &m.token);
            async move { conn::connect(&url, chats + i).await }
        })
        .buffered(128)
        .collect()
        .await;
    let mut member_conns = connected
        .into_iter()
        .collect::<Result<Vec<_>>>()
        .context("connecting members")?;

    // One warm-up message per chat; every member sees it (lastKnownSeq = 1).
    let send = |chat: i64, n: usize| {
        format!(
            r#"{{"type":"message.send","id":"storm-{chat}-{n}","timestamp":"","payload":{{"chatId":{chat},"content":"storm {n}"}}}}"#
        )
    };
    for (c, (sink, _, _)) in writer_conns.iter_mut().enumerate() {
        sink.send(Message::Text(send(chat_ids[c], 0).into()))
            .await?;
    }
    for (_, stream, _) in member_conns.iter_mut() {
        until(stream, |f| f["type"] == "message.new").await?;
    }
    // Everyone drops at once.
    drop(member_conns);
    let dropped = Instant::now();
    // Messages pile up while they are away (writers in parallel).
    let piling = writer_conns
        .into_iter()
        .enumerate()
        .map(|(c, (mut sink, mut stream, _))| {
            let chat = chat_ids[c];
            async move {
                for n in 1..=gap {
                    // Paced under the 10/s send limit (the warm-up used a token).
                    tokio::time::sleep(Duration::from_millis(110)).await;
                    sink.send(Message::Text(send(chat, n).into())).await?;
                }
                let last = format!("storm-{chat}-{gap}");
                let answer = until(&mut stream, |f| f["payload"]["refId"] == last.as_str()).await?;
                anyhow::ensure!(answer["type"] == "ack", "writer refused: {answer}");
                anyhow::Ok(())
            }
        });
    futures::future::try_join_all(piling).await?;
    let last_seq = 1 + gap as i64;

    // The storm: all reconnect together and sync.
    let storm_start = Instant::now();
    let tasks: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let url = target.ws_url(i, &m.token);
            let chat = chat_ids[i % chats];
            tokio::spawn(async move {
                let t0 = Instant::now();
                let (mut sink, mut stream, connect_us) = conn::connect(&url, chats + i).await?;
                let req = json!({ "type": "sync.request", "id": "sync", "timestamp": "", "payload": { "chats": { chat.to_string(): 1 } } });
                sink.send(Message::Text(req.to_string().into())).await?;
                let resp = until(&mut stream, |f| f["type"] == "sync.response").await?;
                let seqs: Vec<i64> = resp["payload"]["events"]
                    .as_array()
                    .map(|es| {
                        es.iter()
                            .filter(|e| e["type"] == "message.new")
                            .filter_map(|e| e["payload"]["message"]["seq"].as_i64())
                            .collect()
                    })
                    .unwrap_or_default();
                anyhow::Ok((connect_us, t0.elapsed().as_micros() as u64, seqs))
            })
        })
        .collect();
    let mut connect = histogram();
    let mut resync = histogram();
    let mut audit = Audit::default();
    let mut errors = 0;
    for t in tasks {
        match t.await? {
            Ok((connect_us, resync_us, seqs)) => {
                let _ = connect.record(connect_us.max(1));
                let _ = resync.record(resync_us.max(1));
                let want: Vec<i64> = (2..=last_seq).collect();
                audit.expected += want.len() as u64;
                let mut counts: HashMap<i64, u64> = HashMap::new();
                for s in &seqs {
                    *counts.entry(*s).or_default() += 1;
                }
                audit.lost += want.iter().filter(|s| !counts.contains_key(s)).count() as u64;
                audit.duplicated += counts.values().map(|c| c - 1).sum::<u64>();
                audit.out_of_order += seqs.windows(2).filter(|w| w[1] < w[0]).count() as u64;
            }
            Err(_) => errors += 1,
        }
    }
    let all_synced = storm_start.elapsed().as_secs_f64();
    let mut report = Report {
        scenario: "reconnect-storm".into(),
        params: json!({ "clients": clients, "chats": chats, "missedPerChat": gap }),
        connections: clients,
        duration_secs: dropped.elapsed().as_secs_f64(),
        errors,
        connect_ms: Percentiles::of(&connect),
        audit: Some(audit),
        ..Default::default()
    };
    // Reconnect start -> sync.response, per client.
    if let Some(p) = Percentiles::of(&resync) {
        report.extra.insert("resync_p50_ms".into(), p.p50);
        report.extra.insert("resync_p99_ms".into(), p.p99);
        report.extra.insert("resync_max_ms".into(), p.max);
    }
    report.extra.insert("all_resynced_secs".into(), all_synced);
    Ok(report)
}
