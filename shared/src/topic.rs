//! Reading topic streams (chat topics and user streams): both store one
//! frame per entry in field `f` and are read with `XRANGE` after a known
//! id, to fill gaps live and to answer `sync.request`. A chat event's
//! frame may carry the worker's commit stamp (`crate::wake::stamp`); it is
//! taken off here, so no reader can hand it to a client by mistake.

use fred::prelude::*;

use crate::wake::StreamId;

/// One entry: its id, its stamp if it has one and the frame text.
pub type Stamped = (StreamId, Option<crate::wake::Stamp>, String);

/// `XRANGE stream start + COUNT n` as (id, frame) pairs; `start` is an id
/// or `(id` (exclusive) or `-`.
pub async fn read(
    redis: &Client,
    stream: &str,
    start: &str,
    count: u64,
) -> Result<Vec<(StreamId, String)>, Error> {
    let entries = read_stamped(redis, stream, start, count).await?;
    Ok(entries.into_iter().map(|(id, _, f)| (id, f)).collect())
}

/// [`read`] with each entry's commit stamp.
pub async fn read_stamped(
    redis: &Client,
    stream: &str,
    start: &str,
    count: u64,
) -> Result<Vec<Stamped>, Error> {
    let reply: Value = redis.xrange(stream, start, "+", Some(count)).await?;
    let Value::Array(items) = reply else {
        return Ok(Vec::new());
    };
    Ok(items.into_iter().filter_map(entry).collect())
}

fn entry(item: Value) -> Option<Stamped> {
    let Value::Array(parts) = item else {
        return None;
    };
    let id: StreamId = parts.first()?.as_str()?.parse().ok()?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let mut text = fields
        .chunks(2)
        .find(|kv| kv.len() == 2 && kv[0].as_str().as_deref() == Some("f"))
        .and_then(|kv| kv[1].as_string())?;
    let (stamp, frame) = crate::wake::unstamp(&text);
    let header = text.len() - frame.len();
    text.drain(..header);
    Some((id, stamp, text))
}
