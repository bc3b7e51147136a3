//! One mesh connection: TLS session and HTTP/2 connection stacked on one
//! socket, with the ciphertext chunk waiting for the socket.

use core::net::SocketAddr;
use std::collections::BTreeMap;

use crate::control::{DecodeError, FrameDecoder, Message};
use crate::h2::{self, StreamId};
use crate::identity::SpiffeId;
use crate::pool::PoolKey;
use crate::time::Instant;
use crate::tls::{TlsError, TlsSession};

use super::{FlowId, SockId};

/// Ciphertext produced ahead of the socket at most (one fill); the next is
/// produced only when this one drained.
const FILL_TARGET: usize = 256 * 1024;

/// A mesh connection's state.
#[derive(Debug)]
pub(super) struct MeshConn {
    pub sock: SockId,
    pub peer_addr: SocketAddr,
    pub tls: TlsSession,
    pub h2: h2::Connection,
    /// Client connections: the pool key they serve.
    pub pool_key: Option<PoolKey>,
    /// The verified peer identity, once the handshake is done.
    pub peer: Option<SpiffeId>,
    /// TCP connected (always true for accepted connections).
    pub connected: bool,
    /// The peer's SETTINGS arrived: streams may be opened.
    pub ready: bool,
    /// A resumed handshake failed its re-check: its flows may try the
    /// same endpoint again, with a full handshake.
    pub resume_refused: bool,
    /// The handshake was counted and the peer checked for revocation.
    pub handshake_seen: bool,
    /// Handshake deadline, cleared once TLS is up.
    pub deadline: Option<Instant>,
    /// When the connection was dialled or accepted (for its age).
    pub opened: Instant,
    /// When the peer's bytes last arrived (early data needs a recent one).
    pub last_heard: Instant,
    /// Client flows waiting for `ready`.
    pub waiting: Vec<FlowId>,
    /// Streams carrying flows.
    pub streams: BTreeMap<StreamId, FlowId>,
    /// HTTP/2 output not yet accepted by TLS.
    plain: Vec<u8>,
    plain_pos: usize,
    /// Ciphertext for the socket, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// The connection is finished; close the socket once `out` drained.
    pub closing: bool,
    /// A hub's accepted connection whose HTTP/2 role waits for the ALPN
    /// the handshake settles (`warren-reverse` makes us the client, with
    /// this config); nothing of HTTP/2 is sent until then.
    pub alpn_role: Option<h2::Config>,
    /// The HTTP/2 roles are the reverse of the TLS roles (a hub's reverse
    /// connection, on either end).
    pub reverse: bool,
    /// End-to-end mode: the transport is a stream on another connection,
    /// and `sock` a placeholder the host never hears of.
    pub tunnel: Option<super::tunnel::Tunnel>,
    /// A copy of the plaintext in both directions since the node last
    /// collected it, while the node records plaintext (see
    /// `Node::record_plaintext`).
    pub tapped: Option<Vec<u8>>,
}

impl MeshConn {
    /// Decodes the control frames that arrived on `stream` into `messages`
    /// and gives their bytes back to the stream's window. Returns why the
    /// stream broke the control framing, if it did (the bytes after the
    /// bad frame stay unread: the caller closes the stream).
    pub(super) fn read_control(
        &mut self,
        stream: StreamId,
        decoder: &mut FrameDecoder,
        messages: &mut Vec<Message>,
    ) -> Option<DecodeError> {
        // The stream's buffer comes in pieces and a message may span two:
        // the decoder keeps a partial frame (bounded by its limit) across
        // pieces, so each piece is decoded and released in turn.
        loop {
            let mut input = self.h2.recv_data(stream);
            let total = input.len();
            if total == 0 {
                return None;
            }
            let mut failure = None;
            while !input.is_empty() {
                match decoder.decode(&mut input) {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => {}
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let taken = total - input.len();
            let released = self.h2.release_capacity(stream, taken).is_ok();
            if failure.is_some() || !released || taken == 0 {
                return failure;
            }
        }
    }
}

impl MeshConn {
    pub fn new(
        sock: SockId,
        peer_addr: SocketAddr,
        tls: TlsSession,
        h2: h2::Connection,
        pool_key: Option<PoolKey>,
        opened: Instant,
        deadline: Instant,
    ) -> MeshConn {
        MeshConn {
            sock,
            peer_addr,
            tls,
            h2,
            connected: pool_key.is_none(),
            pool_key,
            peer: None,
            ready: false,
            resume_refused: false,
            handshake_seen: false,
            deadline: Some(deadline),
            opened,
            last_heard: opened,
            waiting: Vec::new(),
            streams: BTreeMap::new(),
            plain: Vec::new(),
            plain_pos: 0,
            out: Vec::new(),
            out_pos: 0,
            closing: false,
            alpn_role: None,
            reverse: false,
            tunnel: None,
            tapped: None,
        }
    }

    /// The ciphertext waiting for the socket.
    pub fn chunk(&self) -> &[u8] {
        self.out.get(self.out_pos..).unwrap_or(&[])
    }

    /// Frees the spare room of the connection's drained buffers (HTTP/2's
    /// own, the plaintext waiting for TLS, the ciphertext waiting for the
    /// socket): after a burst each keeps the size of the most it held.
    /// Unsent bytes stay.
    pub fn shrink_buffers(&mut self) {
        self.h2.shrink_buffers();
        if self.plain_pos >= self.plain.len() {
            self.plain = Vec::new();
            self.plain_pos = 0;
        }
        if self.out_pos >= self.out.len() {
            self.out = Vec::new();
            self.out_pos = 0;
        }
    }

    /// Bytes allocated for the connection's buffers, held bytes or not.
    pub fn buffer_capacity(&self) -> usize {
        self.h2.buffer_capacity() + self.plain.capacity() + self.out.capacity()
    }

    /// HTTP/2 output taken from the connection but not yet by TLS.
    pub fn unencrypted(&self) -> usize {
        self.plain.len().saturating_sub(self.plain_pos)
    }

    /// The socket took `n` bytes of the chunk.
    pub fn consume(&mut self, n: usize) {
        self.out_pos = self.out_pos.saturating_add(n).min(self.out.len());
    }

    /// Feeds ciphertext through TLS into HTTP/2. Returns how many bytes
    /// TLS took (fewer only while its plaintext buffer is full, which
    /// cannot last since HTTP/2 takes all plaintext at once).
    pub fn receive(&mut self, now: Instant, data: &[u8]) -> Result<usize, TlsError> {
        if !data.is_empty() {
            self.last_heard = now;
        }
        let mut taken = 0;
        loop {
            let rest = data.get(taken..).unwrap_or(&[]);
            let n = self.tls.read_tls(rest)?;
            taken += n;
            self.settle_alpn(now);
            let moved = self.plaintext_to_h2(now);
            self.note_handshake();
            if taken >= data.len() || (n == 0 && moved == 0) {
                return Ok(taken);
            }
        }
    }

    /// The transport ended.
    pub fn receive_eof(&mut self, now: Instant) -> Result<(), TlsError> {
        let result = self.tls.read_eof();
        self.plaintext_to_h2(now);
        self.h2.handle_eof(now);
        result
    }

    fn plaintext_to_h2(&mut self, now: Instant) -> usize {
        let mut moved = 0;
        loop {
            let chunk = self.tls.plaintext();
            if chunk.is_empty() {
                return moved;
            }
            let n = chunk.len();
            if let Some(tap) = self.tapped.as_mut() {
                tap.extend_from_slice(chunk);
            }
            self.h2.handle_input(now, chunk);
            self.tls.consume_plaintext(n);
            moved += n;
        }
    }

    /// Once the handshake is done, a connection waiting for its ALPN gets
    /// its HTTP/2 role: `warren-reverse` turns us into the client.
    fn settle_alpn(&mut self, now: Instant) {
        if self.alpn_role.is_none() || self.tls.is_handshaking() {
            return;
        }
        let reverse = self.tls.alpn_protocol() == Some(crate::hub::ALPN_REVERSE);
        if let Some(config) = self.alpn_role.take() {
            if reverse {
                // The placeholder server never sent or received a byte.
                self.h2 = h2::Connection::new(h2::Role::Client, config, now);
                self.reverse = true;
            }
        }
    }

    fn note_handshake(&mut self) {
        if self.peer.is_none() && !self.tls.is_handshaking() {
            self.peer = self.tls.peer_identity().cloned();
            self.deadline = None;
        }
    }

    /// Refills the chunk once the previous one drained: HTTP/2 output into
    /// TLS, TLS records out. Before the TCP connect completes nothing is
    /// produced (the bytes would have nowhere to go).
    pub fn fill(&mut self, now: Instant) -> Result<(), TlsError> {
        if !self.connected || self.out_pos < self.out.len() {
            return Ok(());
        }
        self.out.clear();
        self.out_pos = 0;
        loop {
            if self.plain_pos >= self.plain.len() && self.alpn_role.is_none() {
                self.plain.clear();
                self.plain_pos = 0;
                self.h2.poll_transmit(now, &mut self.plain);
            }
            let pending = self.plain.get(self.plain_pos..).unwrap_or(&[]);
            let before = self.out.len();
            let accepted = if pending.is_empty() {
                0
            } else {
                self.tls
                    .write_plaintext_parts(pending, &[], &mut self.out)?
            };
            if let Some(tap) = self.tapped.as_mut() {
                tap.extend_from_slice(pending.get(..accepted).unwrap_or(&[]));
            }
            self.plain_pos += accepted;
            self.tls.write_tls(&mut self.out);
            let produced = self.out.len() - before;
            if (accepted == 0 && produced == 0) || self.out.len() >= FILL_TARGET {
                return Ok(());
            }
        }
    }

    /// Sends `data` on `stream` as DATA; returns how many bytes were taken
    /// (as [`h2::Connection::send_data`], which also arms `Writable`).
    ///
    /// While nothing is queued ahead of it (no HTTP/2 output, no plaintext
    /// TLS has not taken, TLS's own records drained into the chunk) and the
    /// chunk has room, the bytes go straight from `data` into TLS records
    /// behind their frame headers: one copy per byte fewer than through
    /// HTTP/2's output (the bulk path's largest user-space copy, issue 8).
    /// The rest goes through `send_data`.
    pub fn send_data(&mut self, stream: StreamId, data: &[u8]) -> Result<usize, h2::UsageError> {
        let frame_max = self
            .tls
            .buffer_limit()
            .saturating_sub(h2::frame::HEADER_LEN);
        let mut sent = 0;
        let mut header = Vec::with_capacity(h2::frame::HEADER_LEN);
        while self.direct_ready() {
            let rest = data.get(sent..).unwrap_or(&[]);
            header.clear();
            let n = self
                .h2
                .frame_data(stream, rest.len().min(frame_max), &mut header)?;
            let Some(payload) = rest.get(..n).filter(|p| !p.is_empty()) else {
                break;
            };
            sent += n;
            // TLS takes the whole frame: its records were drained and the
            // frame is within its limit. Should it take less (a key update
            // or a failed session), the rest waits in `plain`, which goes
            // out first; a failed session then fails at the next fill.
            let taken = self
                .tls
                .write_plaintext_parts(&header, payload, &mut self.out)
                .unwrap_or(0);
            if let Some(tap) = self.tapped.as_mut() {
                let frame = header.iter().chain(payload).take(taken);
                tap.extend(frame);
            }
            let untaken = header.iter().chain(payload).skip(taken);
            self.plain.extend(untaken);
            self.tls.write_tls(&mut self.out);
        }
        let rest = data.get(sent..).unwrap_or(&[]);
        Ok(sent + self.h2.send_data(stream, rest)?)
    }

    /// Whether a DATA frame may go straight into TLS now: the connection is
    /// up and nothing waits ahead of it in HTTP/2's output, in `plain` or
    /// in TLS, and the chunk has room.
    fn direct_ready(&self) -> bool {
        self.connected
            && !self.closing
            && self.alpn_role.is_none()
            && !self.tls.is_handshaking()
            && !self.tls.wants_write()
            && self.plain_pos >= self.plain.len()
            && self.h2.pending_transmit() == 0
            && self.chunk().len() < FILL_TARGET
    }

    /// Moves HTTP/2's queued output into TLS, as much as TLS takes, so a
    /// GOAWAY queued just before [`MeshConn::close_tls`] goes out ahead of
    /// close_notify instead of being dropped with the connection.
    pub fn flush_h2(&mut self, now: Instant) {
        loop {
            if self.plain_pos >= self.plain.len() {
                if self.alpn_role.is_some() {
                    return;
                }
                self.plain.clear();
                self.plain_pos = 0;
                self.h2.poll_transmit(now, &mut self.plain);
            }
            let pending = self.plain.get(self.plain_pos..).unwrap_or(&[]);
            match self.tls.write_plaintext(pending) {
                Ok(n) if n > 0 => self.plain_pos += n,
                _ => return,
            }
        }
    }

    /// Sends close_notify after what is queued. Its record joins the
    /// chunk still waiting for the socket (the GOAWAY that ended the
    /// connection, usually), so both leave in one write: the chunk was
    /// filled before HTTP/2 said it was closed, and a chunk of its own
    /// cost a second write on every connection's close.
    pub fn close_tls(&mut self) {
        self.tls.close();
        // Before the TCP connect nothing is sent (the socket just closes).
        if self.connected {
            self.flush_alert();
        }
    }
}

impl MeshConn {
    /// After a TLS failure or close: the alert rustls queued goes out with
    /// the chunk.
    pub fn flush_alert(&mut self) {
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.tls.write_tls(&mut self.out);
    }
}
