//! Head-of-line blocking on pooled connections: after each turn of a
//! pooled connection the node reports its connection-level send window to
//! the pool, which decides whether the connection is congested (see
//! [`crate::pool`]), and says so in an event when that changes.

use crate::pool::{Congestion, ConnId};

use super::event::NodeEvent;
use super::Node;

impl Node {
    /// Tells the pool where `c`'s send window stands; emits
    /// [`NodeEvent::PoolCongestion`] when `c` became congested or
    /// recovered. Only established pooled connections count: a handshaking
    /// one has sent nothing, a closing one takes no flows anyway.
    pub(super) fn track_congestion(&mut self, c: ConnId) {
        let Some(m) = self.conns.get(&c) else {
            return;
        };
        if m.pool_key.is_none() || !m.ready || m.closing {
            return;
        }
        let window = m.h2.send_window();
        let stream_window = m.h2.initial_stream_send_window();
        let Some(change) = self.pool.send_window(c, window, stream_window) else {
            return;
        };
        let event = NodeEvent::PoolCongestion {
            peer: m.peer_addr,
            identity: m.peer.clone(),
            congested: change == Congestion::Congested,
            send_window: window,
            streams: m.streams.len(),
        };
        self.emit(event);
    }
}
