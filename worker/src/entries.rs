//! Redis stream consumer groups as every worker consumer uses them
//! (ingest, push, search index): creating a group, claiming what others
//! left pending, and decoding replies into entries.
//!
//! fred's typed stream helpers do not cover Redis 7's three-part XAUTOCLAIM
//! reply, so replies are read as plain values here, in one place, and
//! anything unexpected becomes an unreadable entry for the dead-letter
//! path rather than a panic.

use fechatter_shared::ingest::{IngestEntry, ENTRY_FIELD};
use fred::prelude::*;

/// Creates consumer group `group` on `stream` (and the stream) unless it
/// exists already.
pub async fn ensure_group(redis: &Client, stream: &str, group: &str) -> Result<(), Error> {
    let created: Result<(), Error> = redis.xgroup_create(stream, group, "0", true).await;
    match created {
        Err(e) if !e.details().contains("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

/// Claims for `consumer` every entry pending in `group` on `stream`,
/// whoever read it, `page` entries per XAUTOCLAIM.
pub async fn claim_all(
    redis: &Client,
    stream: &str,
    group: &str,
    consumer: &str,
    page: u64,
) -> Result<Vec<RawEntry>, Error> {
    claim_idle(redis, stream, group, consumer, 0, page).await
}

/// [`claim_all`], only entries unacknowledged for at least `min_idle_ms`.
pub async fn claim_idle(
    redis: &Client,
    stream: &str,
    group: &str,
    consumer: &str,
    min_idle_ms: u64,
    page: u64,
) -> Result<Vec<RawEntry>, Error> {
    let mut pending = Vec::new();
    let mut cursor = "0-0".to_string();
    loop {
        let reply: Value = redis
            .xautoclaim(
                stream,
                group,
                consumer,
                min_idle_ms,
                cursor.as_str(),
                Some(page),
                false,
            )
            .await?;
        let (next, entries) = parse_autoclaim(reply);
        pending.extend(entries);
        if next == "0-0" || next.is_empty() {
            return Ok(pending);
        }
        cursor = next;
    }
}

/// One stream entry read from an ingest shard.
#[derive(Debug, Clone)]
pub struct Pending {
    pub stream: String,
    /// The ingest shard of `stream`, and the fencing epoch this worker held
    /// it with when it read the entry.
    pub shard: u32,
    pub epoch: i64,
    pub id: String,
    pub entry: Result<IngestEntry, Undecodable>,
}

/// An entry that is not an [`IngestEntry`] (garbage, or a kind this
/// worker does not know yet: written by a newer gateway during a rolling
/// upgrade). Its text is kept for the dead-letter stream, so an operator
/// can replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub why: String,
    /// The entry's `e` field as read (empty when it had none).
    pub text: String,
}

/// Field/value pairs of one stream entry.
pub type Fields = Vec<(String, String)>;

/// One stream entry as read from Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    pub id: String,
    pub fields: Fields,
}

pub fn decode(fields: Fields) -> Result<IngestEntry, Undecodable> {
    let Some((_, text)) = fields.into_iter().find(|(k, _)| k == ENTRY_FIELD) else {
        return Err(Undecodable {
            why: format!("entry has no field {ENTRY_FIELD:?}"),
            text: String::new(),
        });
    };
    serde_json::from_str(&text).map_err(|e| Undecodable {
        why: format!("unreadable entry: {e}"),
        text,
    })
}

fn as_string(v: &Value) -> String {
    v.as_string().unwrap_or_default()
}

/// `[id, [field, value, ...]]`; None for deleted entries.
fn parse_entry(v: &Value) -> Option<RawEntry> {
    let Value::Array(parts) = v else { return None };
    let id = as_string(parts.first()?);
    let Some(Value::Array(kv)) = parts.get(1) else {
        return Some(RawEntry {
            id,
            fields: Vec::new(),
        });
    };
    let fields = kv
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (as_string(&c[0]), as_string(&c[1])))
        .collect();
    Some(RawEntry { id, fields })
}

/// XAUTOCLAIM reply -> (next cursor, entries).
pub fn parse_autoclaim(v: Value) -> (String, Vec<RawEntry>) {
    let Value::Array(parts) = v else {
        return (String::new(), Vec::new());
    };
    let next = parts.first().map(as_string).unwrap_or_default();
    let entries = match parts.get(1) {
        Some(Value::Array(es)) => es.iter().filter_map(parse_entry).collect(),
        _ => Vec::new(),
    };
    (next, entries)
}

/// XREADGROUP reply (RESP2: `[[stream, [entry...]], ...]`; RESP3 maps are
/// normalized by fred into arrays of pairs) -> (stream, id, fields).
pub fn parse_xread(v: Value) -> Vec<(String, RawEntry)> {
    let mut out = Vec::new();
    let streams: Vec<(Value, Value)> = match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let entries = pair.pop()?;
                    let name = pair.pop()?;
                    Some((name, entries))
                }
                _ => None,
            })
            .collect(),
        Value::Map(map) => map
            .inner()
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
        _ => Vec::new(),
    };
    for (name, entries) in streams {
        let stream = as_string(&name);
        if let Value::Array(es) = entries {
            for e in &es {
                if let Some(entry) = parse_entry(e) {
                    out.push((stream.clone(), entry));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn reads_xreadgroup_and_xautoclaim_replies() {
        let entry = Value::Array(vec![s("1-0"), Value::Array(vec![s("e"), s("{}")])]);
        let xread = Value::Array(vec![Value::Array(vec![
            s("fc:ingest:{0}"),
            Value::Array(vec![entry.clone()]),
        ])]);
        let parsed = parse_xread(xread);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, "fc:ingest:{0}");
        assert_eq!(parsed[0].1.id, "1-0");
        let claim = Value::Array(vec![
            s("0-0"),
            Value::Array(vec![entry, Value::Null]),
            Value::Array(vec![]),
        ]);
        let (next, entries) = parse_autoclaim(claim);
        assert_eq!((next.as_str(), entries.len()), ("0-0", 1));
        assert_eq!(
            decode(entries[0].fields.clone()).unwrap_err().text,
            "{}",
            "{{}} is not an entry, and is kept as it was"
        );
        assert!(decode(vec![]).is_err());
    }
}
