//! The peer's HBONE client: one mTLS + HTTP/2 connection to a node's HBONE
//! port, the server's SPIFFE id checked, then CONNECT streams on it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::stream::{read_to_end, send_all};
use super::tls::peer_spiffe_id;
use super::{PeerError, PeerIdentity};

/// The SNI the client sends: HBONE names the destination in `:authority`,
/// and mesh certificates carry no DNS name to match it against anyway.
const SNI: &str = "hbone.mesh.invalid";

/// Dials HBONE ports as one identity.
#[derive(Clone, Debug)]
pub struct PeerClient {
    config: Arc<ClientConfig>,
}

/// The answer to one CONNECT.
#[derive(Debug)]
pub enum Opened {
    /// 200: the tunnel's two directions.
    Established(SendStream<Bytes>, RecvStream),
    /// Any other status (401 denied, 503 unavailable, ...).
    Refused(u16),
}

impl PeerClient {
    /// A client presenting `identity`.
    pub fn new(identity: &PeerIdentity) -> Result<PeerClient, PeerError> {
        Ok(PeerClient {
            config: identity.client_config()?,
        })
    }

    /// Connects to the HBONE port `addr`, requires the server to prove
    /// `server_id`, and starts HTTP/2. The connection is driven by a task
    /// on the current tokio runtime.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_id: &str,
    ) -> Result<PeerTunnel, PeerError> {
        let tcp = TcpStream::connect(addr).await.map_err(PeerError::Io)?;
        tcp.set_nodelay(true).map_err(PeerError::Io)?;
        let name = ServerName::try_from(SNI)
            .map_err(|e| PeerError::Setup(e.to_string()))?
            .to_owned();
        let tls = TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
            .map_err(PeerError::Tls)?;
        let found = peer_spiffe_id(tls.get_ref().1)?;
        if found != server_id {
            return Err(PeerError::WrongIdentity {
                expected: server_id.to_owned(),
                found,
            });
        }
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .max_frame_size(1 << 20)
            .handshake(tls)
            .await?;
        tokio::spawn(async move {
            // Ends when the connection closes; its error reaches the
            // streams, which is where the tests look.
            let _ = connection.await;
        });
        Ok(PeerTunnel {
            send,
            server_id: found,
        })
    }
}

/// One HBONE connection: CONNECT streams to any authority.
#[derive(Debug)]
pub struct PeerTunnel {
    send: SendRequest<Bytes>,
    server_id: String,
}

impl PeerTunnel {
    /// The SPIFFE id the server proved.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Sends `CONNECT authority` and waits for the answer.
    pub async fn open(&mut self, authority: &str) -> Result<Opened, PeerError> {
        let request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(authority)
            .body(())
            .map_err(|e| PeerError::Setup(format!("CONNECT {authority}: {e}")))?;
        let mut ready = self.send.clone().ready().await?;
        let (response, send) = ready.send_request(request, false)?;
        let response = response.await?;
        let status = response.status().as_u16();
        if status == 200 {
            Ok(Opened::Established(send, response.into_body()))
        } else {
            Ok(Opened::Refused(status))
        }
    }

    /// Opens a tunnel to `authority`, sends `data` and a half-close while
    /// reading, and returns the status and every byte received (at most
    /// `data.len()` plus 64 KiB). A refused CONNECT returns its status and
    /// no bytes.
    pub async fn exchange(
        &mut self,
        authority: &str,
        data: Bytes,
    ) -> Result<(u16, Vec<u8>), PeerError> {
        let (mut send, mut recv) = match self.open(authority).await? {
            Opened::Established(send, recv) => (send, recv),
            Opened::Refused(status) => return Ok((status, Vec::new())),
        };
        let limit = data.len().saturating_add(64 << 10);
        let (sent, received) = tokio::join!(
            send_all(&mut send, data, true),
            read_to_end(&mut recv, limit)
        );
        sent?;
        Ok((200, received?))
    }
}
