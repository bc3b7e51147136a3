//! The TLS room: one mesh TLS session over rustls' buffered connection,
//! which is itself sans-IO. Ciphertext comes in as slices and goes out into
//! the caller's `Vec`; plaintext is read into the caller's buffer (or
//! borrowed in place) and written from the caller's slice. Nothing here
//! does IO, reads a clock or draws randomness: rustls takes those from the
//! provider and time provider inside the config.
//!
//! Memory is bounded by rustls: outgoing plaintext and ciphertext by the
//! buffer limit set here, received plaintext by rustls' fixed 16 KiB limit
//! (plus the record being decrypted), incoming records by its deframer.

use core::fmt;
use std::io::{BufRead, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ServerConnection;
use rustls::{
    AlertDescription, ClientConfig, ClientConnection, Connection, HandshakeKind, ServerConfig,
};

use crate::identity::{
    serial_number, spiffe_id_of, IdentityError, ResumableConfig, ResumedCheck, SpiffeId,
};

/// Default bound on outgoing buffered data (plaintext written before the
/// handshake ends, and encrypted records not yet taken by the host).
pub const DEFAULT_BUFFER_LIMIT: usize = 64 * 1024;

/// The most plaintext one TLS record carries (rustls' default maximum
/// fragment, which mesh configs keep).
const RECORD_PLAINTEXT: usize = 16 * 1024;

/// Why a TLS session failed. After any of these the session is dead; the
/// host should still drain [`TlsSession::write_tls`] once, which carries
/// the alert telling the peer why, then close the socket.
#[derive(Clone, Debug, PartialEq)]
pub enum TlsError {
    /// We rejected the peer's certificate, for this reason.
    PeerCertificate(IdentityError),
    /// The peer sent this fatal alert: usually it rejected our certificate
    /// (`unknown_ca`, `certificate_expired`, `certificate_unknown`, ...).
    AlertReceived(AlertDescription),
    /// Any other TLS failure (no shared cipher suite or ALPN protocol, a
    /// missing client certificate, a corrupt record, ...), as rustls says.
    Protocol(rustls::Error),
    /// Host misuse: plaintext written after [`TlsSession::close`].
    WriteAfterClose,
    /// The handshake resumed a stored session, but the peer certificate
    /// stored with it no longer passes the full handshake's check (expired,
    /// not the identity expected now, ...). The client's other tickets for
    /// that endpoint are dropped, so the next connection does a full
    /// handshake.
    ResumedRefused(IdentityError),
}

impl TlsError {
    fn from_rustls(error: rustls::Error) -> TlsError {
        if let rustls::Error::AlertReceived(alert) = error {
            return TlsError::AlertReceived(alert);
        }
        match IdentityError::from_rustls(&error) {
            Some(reason) => TlsError::PeerCertificate(reason),
            None => TlsError::Protocol(error),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::PeerCertificate(e) => write!(f, "peer certificate rejected: {e}"),
            TlsError::AlertReceived(alert) => write!(f, "peer sent alert {alert:?}"),
            TlsError::Protocol(e) => write!(f, "TLS error: {e}"),
            TlsError::WriteAfterClose => f.write_str("plaintext written after close_notify"),
            TlsError::ResumedRefused(e) => write!(f, "resumed session refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// What [`TlsSession::read_plaintext`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaintextRead {
    /// This many bytes were copied into the buffer (never 0).
    Data(usize),
    /// Nothing to read yet; feed more ciphertext.
    Empty,
    /// The peer closed its sending side with close_notify; nothing more
    /// will come.
    Closed,
    /// The transport ended without close_notify: what was received may be
    /// cut short.
    Truncated,
}

/// One end of a mesh TLS session.
#[derive(Debug)]
pub struct TlsSession {
    conn: Connection,
    peer: Option<SpiffeId>,
    peer_serial: Option<Vec<u8>>,
    /// Re-runs the certificate check on a resumed handshake; without one,
    /// a resumed handshake is refused.
    resumed_check: Option<Arc<ResumedCheck>>,
    /// Why a resumed handshake was refused: the session stays failed.
    refused: Option<IdentityError>,
    closed: bool,
    peer_closed: bool,
    transport_eof: bool,
    buffer_limit: usize,
}

impl TlsSession {
    /// Starts a client session. The server name is never sent (SNI is off
    /// in mesh configs) nor checked (the verifier checks SPIFFE ids).
    pub fn client(config: Arc<ClientConfig>, buffer_limit: usize) -> Result<TlsSession, TlsError> {
        // rustls wants a syntactically valid name even when it uses none.
        let name = ServerName::try_from("mesh.invalid")
            .map_err(|_| TlsError::Protocol(rustls::Error::General("dummy server name".into())))?;
        let conn = ClientConnection::new(config, name).map_err(TlsError::from_rustls)?;
        Ok(TlsSession::with(Connection::Client(conn), buffer_limit))
    }

    /// Starts a server session.
    pub fn server(config: Arc<ServerConfig>, buffer_limit: usize) -> Result<TlsSession, TlsError> {
        let conn = ServerConnection::new(config).map_err(TlsError::from_rustls)?;
        Ok(TlsSession::with(Connection::Server(conn), buffer_limit))
    }

    /// Starts a client session that may resume a stored session; if it
    /// does, the server's stored certificate is checked again before the
    /// handshake counts as done.
    pub fn client_resumable(
        config: &ResumableConfig<ClientConfig>,
        buffer_limit: usize,
    ) -> Result<TlsSession, TlsError> {
        let mut session = TlsSession::client(config.config().clone(), buffer_limit)?;
        session.resumed_check = Some(config.check().clone());
        Ok(session)
    }

    /// Starts a server session that may resume a stored session; if it
    /// does, the client's stored certificate is checked again before the
    /// handshake counts as done.
    pub fn server_resumable(
        config: &ResumableConfig<ServerConfig>,
        buffer_limit: usize,
    ) -> Result<TlsSession, TlsError> {
        let mut session = TlsSession::server(config.config().clone(), buffer_limit)?;
        session.resumed_check = Some(config.check().clone());
        Ok(session)
    }

    fn with(mut conn: Connection, buffer_limit: usize) -> TlsSession {
        conn.set_buffer_limit(Some(buffer_limit));
        TlsSession {
            conn,
            peer: None,
            peer_serial: None,
            resumed_check: None,
            refused: None,
            closed: false,
            peer_closed: false,
            transport_eof: false,
            buffer_limit,
        }
    }

    /// Feeds ciphertext received from the peer and processes every complete
    /// record. Returns how many bytes were taken: fewer than `ciphertext.len()`
    /// when received plaintext is at its limit, in which case the host keeps
    /// the rest, takes plaintext, and feeds it again (and pauses the socket
    /// meanwhile). Bytes after the peer's close_notify are discarded.
    pub fn read_tls(&mut self, ciphertext: &[u8]) -> Result<usize, TlsError> {
        let mut rest = ciphertext;
        while !rest.is_empty() {
            match self.conn.read_tls(&mut rest) {
                // rustls reads nothing after close_notify; nothing may follow it.
                Ok(0) => rest = &[],
                Ok(_) => {}
                // Received plaintext is full: backpressure, not a failure;
                // unless the session already failed, which must not look
                // like backpressure.
                Err(_) => {
                    self.process()?;
                    break;
                }
            }
            self.process()?;
        }
        Ok(ciphertext.len() - rest.len())
    }

    /// Tells the session the transport has no more bytes (TCP FIN). Reads
    /// then end with [`PlaintextRead::Closed`] if the peer sent
    /// close_notify and [`PlaintextRead::Truncated`] if it did not.
    pub fn read_eof(&mut self) -> Result<(), TlsError> {
        // Remembered here too: rustls learns of EOF from an empty read,
        // which it refuses while its plaintext buffer is full.
        self.transport_eof = true;
        let _ = self.conn.read_tls(&mut &[][..]);
        self.process()
    }

    fn process(&mut self) -> Result<(), TlsError> {
        if let Some(why) = &self.refused {
            return Err(TlsError::ResumedRefused(why.clone()));
        }
        let state = self
            .conn
            .process_new_packets()
            .map_err(TlsError::from_rustls)?;
        self.peer_closed = state.peer_has_closed();
        if self.peer.is_none() && !self.conn.is_handshaking() {
            // The verifier already accepted this leaf, so it parses.
            if self.conn.handshake_kind() == Some(HandshakeKind::Resumed) {
                self.recheck_resumed()?;
            }
            let leaf = self
                .conn
                .peer_certificates()
                .and_then(|chain| chain.first());
            self.peer = leaf.and_then(|leaf| spiffe_id_of(leaf).ok());
            self.peer_serial = leaf
                .and_then(|leaf| serial_number(leaf).ok())
                .map(<[u8]>::to_vec);
        }
        Ok(())
    }

    /// rustls does not verify certificates on a resumed handshake; the
    /// stored peer chain must pass the full check now, or the session ends
    /// before any plaintext of it is used.
    fn recheck_resumed(&mut self) -> Result<(), TlsError> {
        let chain = self.conn.peer_certificates().unwrap_or(&[]);
        let verdict = match &self.resumed_check {
            Some(check) => check.check(chain).map(|_| ()),
            None => Err(IdentityError::ChainRejected(
                "resumed without a re-check".into(),
            )),
        };
        verdict.map_err(|why| {
            self.refused = Some(why.clone());
            self.conn.send_close_notify();
            TlsError::ResumedRefused(why)
        })
    }

    /// Whether the handshake was a full one or resumed a stored session
    /// (`None` while it is under way).
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.conn.handshake_kind()
    }

    /// Copies decrypted plaintext into `buf`.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> PlaintextRead {
        if buf.is_empty() || self.refused.is_some() {
            return PlaintextRead::Empty;
        }
        match self.conn.reader().read(buf) {
            Ok(0) => PlaintextRead::Closed,
            Ok(n) => PlaintextRead::Data(n),
            Err(_) if self.peer_closed => PlaintextRead::Closed,
            Err(_) if self.transport_eof => PlaintextRead::Truncated,
            Err(_) => PlaintextRead::Empty,
        }
    }

    /// Borrows the next chunk of decrypted plaintext in place (empty when
    /// there is none), for callers that can use it without a copy; follow
    /// with [`TlsSession::consume_plaintext`].
    pub fn plaintext(&mut self) -> &[u8] {
        if self.refused.is_some() {
            return &[];
        }
        self.conn.reader().into_first_chunk().unwrap_or(&[])
    }

    /// Marks `n` bytes of [`TlsSession::plaintext`]'s chunk as taken
    /// (clamped to its length).
    pub fn consume_plaintext(&mut self, n: usize) {
        let available = self.plaintext().len();
        self.conn.reader().consume(n.min(available));
    }

    /// Writes plaintext to send; returns how much was accepted, which is
    /// less than `data.len()` when the buffer limit is reached (drain
    /// [`TlsSession::write_tls`] and write the rest later). Before the
    /// handshake ends it is buffered, within the same limit.
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        if self.closed {
            return Err(TlsError::WriteAfterClose);
        }
        let written = self.conn.writer().write(data);
        written.map_err(|e| self.write_failed(e))
    }

    /// Writes `head` followed by `body` as plaintext, like
    /// [`TlsSession::write_plaintext`] of their concatenation without joining
    /// them first (an HTTP/2 frame header and its payload), and appends the
    /// records to `out` as [`TlsSession::write_tls`] does. Returns how much
    /// plaintext was taken: at most [`TlsSession::buffer_limit`] per call,
    /// less when TLS's own limit is reached (same errors as
    /// `write_plaintext`).
    ///
    /// It hands rustls at most one record's plaintext at a time and moves
    /// that record into `out` before sealing the next: rustls seals each
    /// record into a fresh buffer, so taking it at once copies it while it
    /// is still in cache and lets the allocator reuse one buffer for every
    /// record (issue 8: about 10 % less CPU in TLS on the sending side than
    /// sealing a 64 KiB frame's four records before draining them).
    pub fn write_plaintext_parts(
        &mut self,
        head: &[u8],
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        if self.closed {
            return Err(TlsError::WriteAfterClose);
        }
        let total = head.len().saturating_add(body.len()).min(self.buffer_limit);
        let mut taken = 0;
        while taken < total {
            let piece = RECORD_PLAINTEXT.min(total - taken);
            let head_part = head.get(taken..).unwrap_or(&[]);
            let head_part = head_part.get(..piece).unwrap_or(head_part);
            let body_start = taken.saturating_sub(head.len());
            let body_end = body_start.saturating_add(piece - head_part.len());
            let body_part = body.get(body_start..body_end).unwrap_or(&[]);
            let parts = [
                std::io::IoSlice::new(head_part),
                std::io::IoSlice::new(body_part),
            ];
            match self.conn.writer().write_vectored(&parts) {
                Ok(n) => {
                    taken += n;
                    self.write_tls(out);
                    if n < piece {
                        break;
                    }
                }
                // Bytes already taken were sealed: report them; the
                // failure repeats on the next write.
                Err(_) if taken > 0 => break,
                Err(e) => return Err(self.write_failed(e)),
            }
        }
        Ok(taken)
    }

    /// rustls only fails a write to repeat the session's fatal error.
    fn write_failed(&mut self, e: std::io::Error) -> TlsError {
        match self.conn.process_new_packets() {
            Err(error) => TlsError::from_rustls(error),
            Ok(_) => TlsError::Protocol(rustls::Error::General(e.to_string())),
        }
    }

    /// The bound on outgoing buffered data this session was made with: a
    /// write of at most this much is taken whole once
    /// [`TlsSession::write_tls`] has drained what was pending.
    pub fn buffer_limit(&self) -> usize {
        self.buffer_limit
    }

    /// Appends every pending TLS record (handshake, application data,
    /// alerts) to `out`; returns how many bytes were appended.
    pub fn write_tls(&mut self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail.
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
        out.len() - start
    }

    /// Whether records are waiting for [`TlsSession::write_tls`].
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer's verified SPIFFE id, once the handshake is done.
    pub fn peer_identity(&self) -> Option<&SpiffeId> {
        self.peer.as_ref()
    }

    /// The serial number field of the peer's certificate (big-endian, as
    /// DER carries it), once the handshake is done.
    pub fn peer_serial(&self) -> Option<&[u8]> {
        self.peer_serial.as_deref()
    }

    /// The negotiated ALPN protocol, once the handshake is done.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Queues close_notify: we send nothing more (a TLS half-close). Drain
    /// [`TlsSession::write_tls`] to send it.
    pub fn close(&mut self) {
        self.closed = true;
        self.conn.send_close_notify();
    }

    /// Whether the peer sent close_notify.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }
}
