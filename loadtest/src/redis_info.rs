//! Redis `INFO` over a raw connection to a loopback Redis, for scenarios
//! that read the server's own counters (command counts, CPU) around a run
//! without a client library's connection setup in the figures.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The text of `INFO <name>` from `addr` (`host:port`, loopback only).
pub async fn section(addr: &str, name: &str) -> Result<String> {
    crate::target::ensure_loopback(&format!("redis://{addr}"))?;
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to Redis at {addr}"))?;
    s.write_all(format!("INFO {name}\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(body) = bulk(&buf)? {
            return Ok(body);
        }
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk)).await??;
        if n == 0 {
            bail!("Redis at {addr} closed the connection during INFO {name}");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The body of a complete RESP bulk string (`$<len>\r\n<body>\r\n`), or
/// None while more bytes are needed.
fn bulk(buf: &[u8]) -> Result<Option<String>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let header = std::str::from_utf8(&buf[..end])?;
    let Some(len) = header.strip_prefix('$') else {
        bail!("unexpected Redis answer: {header}");
    };
    let len: usize = len.parse()?;
    let start = end + 2;
    if buf.len() < start + len {
        return Ok(None);
    }
    Ok(Some(
        String::from_utf8_lossy(&buf[start..start + len]).into_owned(),
    ))
}

/// A numeric `name:value` field of an INFO text (0 when absent).
pub fn field(info: &str, name: &str) -> f64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_strings_are_read_whole_or_not_at_all() {
        let full = b"$12\r\nused_cpu:1\r\n\r\n";
        assert_eq!(bulk(full).unwrap().as_deref(), Some("used_cpu:1\r\n"));
        assert_eq!(bulk(&full[..8]).unwrap(), None);
        assert_eq!(bulk(b"$5").unwrap(), None);
        assert!(bulk(b"-ERR no\r\n").is_err());
    }

    #[test]
    fn fields_are_found_by_exact_name() {
        let info = "used_cpu_sys:1.50\r\nused_cpu_sys_children:9\r\nused_cpu_user:0.25\r\n";
        assert_eq!(field(info, "used_cpu_sys"), 1.5);
        assert_eq!(field(info, "used_cpu_user"), 0.25);
        assert_eq!(field(info, "missing"), 0.0);
    }
}
