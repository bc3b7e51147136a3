//! The `h2` crate's side of the tests: builders, and sending, receiving and
//! echoing bodies the way hyper does (reserve capacity, wait for it, send
//! what was granted; release receive capacity once a chunk is handled).

use std::future::poll_fn;

use bytes::Bytes;
use h2::{RecvStream, SendStream};

use crate::payload::Payload;

/// The most bytes handed to `send_data` at once.
const CHUNK: usize = 64 << 10;

/// h2's flow-control and buffer settings for one test.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    pub stream: u32,
    pub connection: u32,
}

impl Windows {
    /// warren's defaults: 4 MiB per stream, 16 MiB per connection.
    pub const LARGE: Windows = Windows {
        stream: 4 << 20,
        connection: 16 << 20,
    };
    /// RFC 9113's initial 64 KiB windows.
    pub const SMALL: Windows = Windows {
        stream: 65_535,
        connection: 65_535,
    };
}

/// Applies one test's settings to an h2 client or server builder: the two
/// builder types share no trait, so the one list of settings is a macro.
macro_rules! with_windows {
    ($builder:expr, $windows:expr) => {{
        let mut builder = $builder;
        builder
            .initial_window_size($windows.stream)
            .initial_connection_window_size($windows.connection)
            .max_concurrent_streams(1000)
            .max_send_buffer_size(1 << 20)
            .max_frame_size(1 << 20);
        builder
    }};
}

pub fn server_builder(windows: Windows) -> h2::server::Builder {
    with_windows!(h2::server::Builder::new(), windows)
}

pub fn client_builder(windows: Windows) -> h2::client::Builder {
    with_windows!(h2::client::Builder::new(), windows)
}

/// A CONNECT request to `authority`, as h2 wants it (authority-form URI).
pub fn connect_request(authority: &str) -> http::Request<()> {
    http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(authority)
        .body(())
        .expect("a valid CONNECT request")
}

/// Queues all of `data` on `send`, waiting for window as needed.
pub async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), String> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(granted) => granted.map_err(|e| format!("waiting for send capacity: {e}"))?,
            None => return Err("stream closed while sending".into()),
        };
        let chunk = data.split_to(granted.min(data.len()));
        send.send_data(chunk, false)
            .map_err(|e| format!("send_data: {e}"))?;
    }
    Ok(())
}

/// Sends the whole of `payload`, then END_STREAM.
pub async fn send_payload(
    send: &mut SendStream<Bytes>,
    mut payload: Payload,
) -> Result<(), String> {
    while payload.remaining() > 0 {
        let n = payload.remaining().min(CHUNK as u64) as usize;
        send_all(send, Bytes::from(payload.take(n))).await?;
    }
    send.send_data(Bytes::new(), true)
        .map_err(|e| format!("END_STREAM: {e}"))
}

/// Reads `body` to its end, checking every byte against `expected`.
pub async fn receive_payload(body: &mut RecvStream, mut expected: Payload) -> Result<(), String> {
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("receiving: {e}"))?;
        expected.check(&chunk)?;
        body.flow_control()
            .release_capacity(chunk.len())
            .map_err(|e| format!("release_capacity: {e}"))?;
    }
    expected.check_complete()
}

/// Sends back every chunk of `body` on `send`, releasing each chunk's
/// capacity once it is queued, then END_STREAM.
pub async fn echo(mut body: RecvStream, mut send: SendStream<Bytes>) -> Result<(), String> {
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("echo receiving: {e}"))?;
        let n = chunk.len();
        send_all(&mut send, chunk).await?;
        body.flow_control()
            .release_capacity(n)
            .map_err(|e| format!("release_capacity: {e}"))?;
    }
    send.send_data(Bytes::new(), true)
        .map_err(|e| format!("echo END_STREAM: {e}"))
}
