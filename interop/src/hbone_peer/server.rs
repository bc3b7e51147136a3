//! The peer's HBONE server: accepts mTLS + HTTP/2 on a loopback port,
//! reads the client's SPIFFE id itself, answers each CONNECT by the rule
//! the test chose ([`Answer`]) and echoes the tunnel's bytes after 200.
//! Everything it sees is reported as a [`Seen`] on a channel.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::stream::{next_chunk, send_all};
use super::tls::peer_spiffe_id;
use super::{PeerError, PeerIdentity};

/// How the server answers CONNECTs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 and echo for clients whose SPIFFE id is in the list; 401 for
    /// every other client.
    EchoFor(Vec<String>),
    /// This status to everyone, without a body.
    Status(u16),
}

/// What the server saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A handshake failed, or the client's certificate had no SPIFFE id.
    Rejected(String),
    /// A CONNECT from `client` (the SPIFFE id it proved) for `authority`,
    /// answered `status`.
    Connect {
        /// The client's SPIFFE id.
        client: String,
        /// The request's `:authority`.
        authority: String,
        /// The status sent back.
        status: u16,
    },
    /// A tunnel answered 200 ended after echoing this many bytes.
    Echoed(u64),
}

/// A running peer server on 127.0.0.1.
#[derive(Debug)]
pub struct PeerServer {
    addr: SocketAddr,
    seen: Receiver<Seen>,
}

impl PeerServer {
    /// Binds an ephemeral loopback port and serves on tasks of the current
    /// tokio runtime until the runtime stops.
    pub async fn start(identity: &PeerIdentity, answer: Answer) -> Result<PeerServer, PeerError> {
        let acceptor = TlsAcceptor::from(identity.server_config()?);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(PeerError::Io)?;
        let addr = listener.local_addr().map_err(PeerError::Io)?;
        let (tx, seen) = mpsc::channel();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, answer, tx) = (acceptor.clone(), Arc::clone(&answer), tx.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(tcp, acceptor, &answer, &tx).await {
                        let _ = tx.send(Seen::Rejected(e.to_string()));
                    }
                });
            }
        });
        Ok(PeerServer { addr, seen })
    }

    /// The HBONE address to dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server saw, as it happens.
    pub fn seen(&self) -> &Receiver<Seen> {
        &self.seen
    }
}

/// One connection: handshake, identity, then every CONNECT on it.
async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    answer: &Answer,
    tx: &Sender<Seen>,
) -> Result<(), PeerError> {
    tcp.set_nodelay(true).map_err(PeerError::Io)?;
    let tls = acceptor.accept(tcp).await.map_err(PeerError::Tls)?;
    let client = peer_spiffe_id(tls.get_ref().1)?;
    let mut connection = h2::server::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(1 << 20)
        .handshake::<_, Bytes>(tls)
        .await?;
    while let Some(request) = connection.accept().await {
        let (request, respond) = request?;
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let status = if request.method() != http::Method::CONNECT || authority.is_empty() {
            400
        } else {
            match answer {
                Answer::EchoFor(allowed) if allowed.contains(&client) => 200,
                Answer::EchoFor(_) => 401,
                Answer::Status(status) => *status,
            }
        };
        let _ = tx.send(Seen::Connect {
            client: client.clone(),
            authority,
            status,
        });
        let tx = tx.clone();
        let body = request.into_body();
        tokio::spawn(async move {
            if let Ok(Some(echoed)) = respond_and_echo(respond, body, status).await {
                let _ = tx.send(Seen::Echoed(echoed));
            }
        });
    }
    Ok(())
}

/// Sends the response; after 200 echoes every byte back until END_STREAM
/// and returns the count (`None` for any other status).
async fn respond_and_echo(
    mut respond: SendResponse<Bytes>,
    mut body: RecvStream,
    status: u16,
) -> Result<Option<u64>, PeerError> {
    let response = http::Response::builder()
        .status(status)
        .body(())
        .map_err(|e| PeerError::Setup(e.to_string()))?;
    if status != 200 {
        respond.send_response(response, true)?;
        return Ok(None);
    }
    let mut send = respond.send_response(response, false)?;
    let mut echoed = 0u64;
    while let Some(chunk) = next_chunk(&mut body).await {
        let chunk = chunk?;
        echoed = echoed.saturating_add(chunk.len() as u64);
        send_all(&mut send, chunk, false).await?;
    }
    send_all(&mut send, Bytes::new(), true).await?;
    Ok(Some(echoed))
}
