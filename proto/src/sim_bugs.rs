//! Bugs the simulator can inject, one at a time, to prove it finds them
//! (feature `sim-bugs`; without it this module and every injection point
//! compile to nothing).
//!
//! A bug is chosen at run time per node ([`crate::node::Node::inject_bug`]),
//! never through global state: a node stays a deterministic value, and one
//! build covers every bug.

use core::fmt;
use core::str::FromStr;

/// A real-looking bug in the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// The stream WINDOW_UPDATE due when a release empties a stream's
    /// receive buffer is never sent: the peer's send window leaks credit
    /// until the stream stalls.
    LostWindowUpdate,
    /// The peer's END_STREAM (a TCP half-close) also ends our direction:
    /// what the local side still sends is cut off.
    HalfCloseAsFullClose,
    /// A configuration reload does not re-check live flows against the new
    /// policy, so a revoked flow keeps carrying bytes.
    PolicySkippedAfterReload,
    /// An idle pooled connection says GOAWAY but stays in the pool, and the
    /// pool does not learn from the streams it then refuses, so new flows
    /// keep going to a connection that can no longer open streams. (With
    /// the learning intact, the node routes around such a connection.)
    PoolReuseAfterGoaway,
    /// After a partial send of a socket's bytes into a stream, one byte
    /// fewer is dropped from the buffer than was sent: a byte is repeated.
    RelayOffByOne,
    /// A local socket whose bytes the stream cannot take yet is not paused:
    /// the node buffers whatever the application sends.
    MissingPauseRead,
    /// The hub, relaying between two streams, releases a whole chunk from
    /// the sending leg when the other leg took only part of it: the rest
    /// of the chunk is lost in the middle of the flow.
    HubRelayDropsUnsent,
    /// A socket whose connect the node queued and abandoned in the same
    /// input (a stream's HEADERS and RST_STREAM read together) gets a
    /// `Close` queued behind its `Connect` instead of the `Connect` taken
    /// back: a host that knows a connect's result at once
    /// (`Host::connect_result_now`) reports it for a socket the node
    /// already forgot.
    AbandonedConnectNotTakenBack,
}

impl Bug {
    /// Every bug, in a fixed order.
    pub const ALL: [Bug; 8] = [
        Bug::LostWindowUpdate,
        Bug::HalfCloseAsFullClose,
        Bug::PolicySkippedAfterReload,
        Bug::PoolReuseAfterGoaway,
        Bug::RelayOffByOne,
        Bug::MissingPauseRead,
        Bug::HubRelayDropsUnsent,
        Bug::AbandonedConnectNotTakenBack,
    ];

    /// The bug's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::LostWindowUpdate => "lost-window-update",
            Bug::HalfCloseAsFullClose => "half-close-as-full-close",
            Bug::PolicySkippedAfterReload => "policy-skipped-after-reload",
            Bug::PoolReuseAfterGoaway => "pool-reuse-after-goaway",
            Bug::RelayOffByOne => "relay-off-by-one",
            Bug::MissingPauseRead => "missing-pause-read",
            Bug::HubRelayDropsUnsent => "hub-relay-drops-unsent",
            Bug::AbandonedConnectNotTakenBack => "abandoned-connect-not-taken-back",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug {s:?}; one of {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_list_the_choices() {
        for bug in Bug::ALL {
            assert_eq!(bug.name().parse::<Bug>(), Ok(bug));
        }
        let e = "lost".parse::<Bug>().unwrap_err();
        assert!(e.contains("relay-off-by-one"), "{e}");
    }
}
