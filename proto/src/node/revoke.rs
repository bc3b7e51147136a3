//! Revoked identities and certificates: a connection whose verified peer
//! (its identity, or its certificate's serial) is on the configured
//! revocation list is ended (GOAWAY, then close) as soon as its
//! HTTP/2 comes up, and every live one is looked at again when a new list
//! arrives with a configuration.

use rustls::HandshakeKind;

use crate::h2::ErrorCode;
use crate::hub::HubEvent;
use crate::pool::ConnId;
use crate::revocation::Revoked;

use super::event::NodeEvent;
use super::Node;

impl Node {
    /// Ends connection `c` if its peer is revoked; returns whether it did.
    pub(super) fn refuse_if_revoked(&mut self, c: ConnId) -> bool {
        let Some(m) = self.conns.get_mut(&c) else {
            return false;
        };
        let Some(peer) = m.peer.clone() else {
            return false;
        };
        let reason = match self.config.revocation.check(&peer, m.tls.peer_serial()) {
            Ok(()) => return false,
            Err(Revoked::Identity { reason }) => format!("identity revoked: {reason}"),
            Err(Revoked::Certificate { serial, reason }) => {
                format!("certificate serial {serial} revoked: {reason}")
            }
        };
        // A resumed session carries the certificate of its first handshake;
        // say so, since that is the one found revoked.
        let reason = if m.tls.handshake_kind() == Some(HandshakeKind::Resumed) {
            format!("resumed session refused: {reason}")
        } else {
            reason
        };
        m.h2.abort(ErrorCode::REFUSED_STREAM, b"revoked");
        m.flush_h2(self.now);
        let addr = m.peer_addr;
        self.emit(NodeEvent::Hub(HubEvent::Revoked { peer, addr, reason }));
        self.conn_finish(c);
        true
    }

    /// Counts connection `c`'s handshake by kind, once, when it comes up.
    pub(super) fn count_handshake(&mut self, c: ConnId) {
        let Some(kind) = self.conns.get(&c).and_then(|m| m.tls.handshake_kind()) else {
            return;
        };
        let counter = match kind {
            HandshakeKind::Resumed => &mut self.handshakes.resumed,
            _ => &mut self.handshakes.full,
        };
        *counter = counter.saturating_add(1);
    }

    /// Ends every connection of a revoked peer; returns how many.
    pub(super) fn enforce_revocation(&mut self) -> usize {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.into_iter()
            .filter(|c| self.refuse_if_revoked(*c))
            .count()
    }
}
