//! Reading topic streams (chat topics and user streams): both store one
//! frame per entry in field `f` and are read with `XRANGE` after a known
//! id, to fill gaps live and to answer `sync.request`.

use fred::prelude::*;

use crate::wake::StreamId;

/// `XRANGE stream start + COUNT n` as (id, frame) pairs; `start` is an id
/// or `(id` (exclusive) or `-`.
pub async fn read(
    redis: &Client,
    stream: &str,
    start: &str,
    count: u64,
) -> Result<Vec<(StreamId, String)>, Error> {
    let reply: Value = redis.xrange(stream, start, "+", Some(count)).await?;
    let Value::Array(items) = reply else {
        return Ok(Vec::new());
    };
    Ok(items.into_iter().filter_map(entry).collect())
}

fn entry(item: Value) -> Option<(StreamId, String)> {
    let Value::Array(parts) = item else {
        return None;
    };
    let id: StreamId = parts.first()?.as_str()?.parse().ok()?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let frame = fields
        .chunks(2)
        .find(|kv| kv.len() == 2 && kv[0].as_str().as_deref() == Some("f"))
        .and_then(|kv| kv[1].as_string())?;
    Some((id, frame))
}
