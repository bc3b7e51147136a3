//! Moving tunnel bytes over one h2 stream the way hyper does: reserve send
//! capacity and send what is granted; release receive capacity as soon as
//! a chunk is taken, so the other side's window reopens.

use std::future::poll_fn;

use bytes::Bytes;
use h2::{RecvStream, SendStream};

use super::PeerError;

/// The most bytes handed to `send_data` at once.
const CHUNK: usize = 64 << 10;

/// Sends all of `data` on `send`, waiting for window as needed; ends the
/// stream (a TCP half-close) when `end` is set.
pub async fn send_all(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len().min(CHUNK));
        let granted = match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(granted) => granted?,
            // The stream closed under us: the next send reports why.
            None => return send.send_data(Bytes::new(), false),
        };
        let chunk = data.split_to(granted.min(data.len()));
        send.send_data(chunk, false)?;
    }
    if end {
        send.send_data(Bytes::new(), true)?;
    }
    Ok(())
}

/// The next chunk of `recv`, its receive capacity released; `None` at
/// END_STREAM.
pub async fn next_chunk(recv: &mut RecvStream) -> Option<Result<Bytes, h2::Error>> {
    let chunk = recv.data().await?;
    if let Ok(bytes) = &chunk {
        // Releasing what we just received cannot exceed what was received.
        let _ = recv.flow_control().release_capacity(bytes.len());
    }
    Some(chunk)
}

/// Everything `recv` carries until END_STREAM, at most `limit` bytes.
pub async fn read_to_end(recv: &mut RecvStream, limit: usize) -> Result<Vec<u8>, PeerError> {
    let mut all = Vec::new();
    while let Some(chunk) = next_chunk(recv).await {
        let chunk = chunk?;
        if all.len().saturating_add(chunk.len()) > limit {
            return Err(PeerError::TooLong(limit));
        }
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}
