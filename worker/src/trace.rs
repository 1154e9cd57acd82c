//! Trace ids in the worker's logs (seed §11.2).
//!
//! A gateway gives every client frame (and REST post) a trace id and puts
//! it in the frame's ingest entry (`IngestEntry::trace_id`). Here it shows
//! up twice: every batch runs in a `batch` span whose `trace_ids` field
//! lists the ids of its entries (so any warning or error about the batch,
//! its retries or its dead letters names them), and each entry's commit
//! and publish are `debug` events with a `trace_id` field. Following one
//! write through the pool is then a search for its id in the gateway's
//! and the worker's logs (`RUST_LOG=info,gateway=debug,worker=debug` for
//! the per-entry events; per-entry logging at `info` would cost more than
//! the write itself under load).

use std::fmt;

use fechatter_shared::ingest::IngestEntry;

use crate::entries::Pending;

/// The span a batch is processed in.
pub fn batch_span(batch: &[Pending]) -> tracing::Span {
    tracing::info_span!("batch", entries = batch.len(), trace_ids = %TraceIds(batch))
}

/// Comma-separated trace ids of a batch's readable entries; formatted only
/// when the span is actually recorded.
struct TraceIds<'a>(&'a [Pending]);

impl fmt::Display for TraceIds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = self.0.iter().filter_map(|p| p.entry.as_ref().ok());
        for (i, e) in ids.filter(|e| !e.trace_id.is_empty()).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&e.trace_id)?;
        }
        Ok(())
    }
}

/// `debug` event per entry: `step` is "committed" or "published".
pub fn entries(entries: &[IngestEntry], step: &'static str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for e in entries {
        tracing::debug!(
            trace_id = %e.trace_id,
            chat = e.chat_id,
            user = e.user_id,
            kind = e.command.kind(),
            step,
            "ingest entry {step}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fechatter_shared::ingest::Command;

    fn pending(trace_id: &str) -> Pending {
        Pending {
            stream: "s".into(),
            shard: 0,
            epoch: 1,
            id: "1-0".into(),
            entry: Ok(IngestEntry {
                chat_id: 1,
                user_id: 2,
                gateway: "gw".into(),
                conn: 3,
                ref_id: "r".into(),
                command: Command::Read { seq: 1 },
                trace_id: trace_id.into(),
                accepted_ms: 0,
            }),
        }
    }

    #[test]
    fn a_batch_lists_its_trace_ids() {
        let mut batch = vec![pending("aa"), pending(""), pending("bb")];
        batch.push(Pending {
            stream: "s".into(),
            shard: 0,
            epoch: 1,
            id: "2-0".into(),
            entry: Err(crate::entries::Undecodable {
                why: "unreadable".into(),
                text: "{}".into(),
            }),
        });
        assert_eq!(TraceIds(&batch).to_string(), "aa,bb");
        assert_eq!(TraceIds(&[]).to_string(), "");
    }
}
