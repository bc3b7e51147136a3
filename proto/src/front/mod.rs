//! The agent's local front ends: how a local TCP client says where it wants
//! to go.
//!
//! Three kinds, all sans-IO:
//! - [`Tunnel`]: a plain listener mapped to one fixed target; no parsing.
//! - [`Socks5`]: a SOCKS5 server (RFC 1928, CONNECT, no authentication).
//! - [`HttpConnect`]: an HTTP/1.1 `CONNECT` proxy.
//!
//! [`FrontEnd`] wraps them so the mesh node handles every accepted socket the
//! same way:
//!
//! ```text
//! accept            -> front = FrontEnd::socks5() / ::http_connect(cfg) / ::tunnel(t)
//!                      step = front.feed(&[])        // a tunnel is ready at once
//! each read(data)   -> step = front.feed(data)
//!                      write step.send to the client (may be non-empty even
//!                      while NeedMore: SOCKS5's method choice)
//!   NeedMore        -> keep reading
//!   Rejected(e)     -> log e, close after step.send is written; read no more
//! deadline passed   -> write front.expire() (408, a SOCKS5 failure reply or
//!   while NeedMore     nothing), then close
//!   Ready{target, leftover}
//!                   -> stop reading, decide policy, open the tunnel;
//!                      `leftover` is application data the client pipelined
//!                      after its request: forward it once the tunnel is up
//! decided/connected -> write front.reply(&outcome) to the client, then relay
//!                      (Connected) or close (Refused)
//! ```
//!
//! Memory is bounded: a front end never holds more than one request head
//! (262 bytes for SOCKS5, [`HttpConnectConfig::max_head_bytes`] for HTTP).

mod http_connect;
mod socks5;
mod target;
mod tunnel;

pub use http_connect::{
    HeadSyntax, HttpConnect, HttpConnectConfig, HttpConnectError, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEAD_BYTES,
};
pub use socks5::{encode_reply, ReplyCode, Socks5, Socks5Error, MAX_GREETING_LEN, MAX_REQUEST_LEN};
pub use target::{DomainName, Host, Target, TargetError, MAX_DOMAIN_LEN};
pub use tunnel::Tunnel;

use core::fmt;
use std::net::SocketAddr;

/// What one [`FrontEnd::feed`] call produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Step<'a, E> {
    /// Bytes to write to the client now, in order, before anything the
    /// front end returns later. Empty most of the time.
    pub send: Vec<u8>,
    /// Where the request stands.
    pub progress: Progress<'a, E>,
}

/// Where a request stands after a [`Step`].
#[derive(Debug, PartialEq, Eq)]
pub enum Progress<'a, E> {
    /// The request is incomplete; feed more bytes.
    NeedMore,
    /// The request is complete.
    Ready {
        /// Where the client wants to go.
        target: Target,
        /// The bytes of the last feed that follow the request: application
        /// data the client sent without waiting for the reply. They belong
        /// to the tunnel, untouched.
        leftover: &'a [u8],
    },
    /// The client broke the protocol. Write [`Step::send`] (the protocol's
    /// answer, possibly empty) and close.
    Rejected(E),
}

/// How the node's attempt to serve a request ended; the front end turns it
/// into its protocol's reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The tunnel is open.
    Connected {
        /// The address the agent's side of the flow is bound to, reported
        /// to SOCKS5 clients (`BND.ADDR`/`BND.PORT`). `None` when there is
        /// no meaningful one (a mesh stream): SOCKS5 then reports
        /// `0.0.0.0:0`, which clients accept.
        bound: Option<SocketAddr>,
    },
    /// The flow was not opened.
    Refused(Refusal),
}

/// Why a flow was not opened, independent of the front end's protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Policy denied the flow.
    Denied {
        /// The name of the rule that denied it (shown to HTTP clients).
        rule: String,
    },
    /// No route to the target: unknown service, no node or hub reachable.
    Unreachable,
    /// The far side actively refused the connection.
    Refused,
    /// Connecting took too long.
    Timeout,
    /// Anything else.
    GeneralFailure,
}

/// Misuse of a front end by the host (never caused by client bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageError {
    /// `feed` after the request was complete: later bytes belong to the
    /// tunnel, not to the front end.
    RequestAlreadyParsed,
    /// `feed` or `reply` after the front end rejected the client.
    AlreadyRejected,
    /// `reply` before a complete request.
    NoRequest,
    /// `reply` called a second time.
    AlreadyReplied,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UsageError::RequestAlreadyParsed => "feed after the request was complete",
            UsageError::AlreadyRejected => "front end already rejected the client",
            UsageError::NoRequest => "reply before a complete request",
            UsageError::AlreadyReplied => "reply already produced",
        })
    }
}

impl std::error::Error for UsageError {}

/// The lifecycle every front end shares; it turns host misuse into
/// [`UsageError`]s in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Still reading the request.
    Reading,
    /// Request complete, waiting for the outcome.
    Ready,
    /// The reply was produced.
    Replied,
    /// The client was rejected.
    Rejected,
}

impl Phase {
    fn check_feed(self) -> Result<(), UsageError> {
        match self {
            Phase::Reading => Ok(()),
            Phase::Ready | Phase::Replied => Err(UsageError::RequestAlreadyParsed),
            Phase::Rejected => Err(UsageError::AlreadyRejected),
        }
    }

    fn check_reply(self) -> Result<(), UsageError> {
        match self {
            Phase::Ready => Ok(()),
            Phase::Reading => Err(UsageError::NoRequest),
            Phase::Replied => Err(UsageError::AlreadyReplied),
            Phase::Rejected => Err(UsageError::AlreadyRejected),
        }
    }

    /// The phase after a step with this progress.
    fn after<E>(progress: &Progress<'_, E>) -> Phase {
        match progress {
            Progress::NeedMore => Phase::Reading,
            Progress::Ready { .. } => Phase::Ready,
            Progress::Rejected(_) => Phase::Rejected,
        }
    }
}

/// A protocol error from any front end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontError {
    /// From the SOCKS5 front end.
    Socks5(Socks5Error),
    /// From the HTTP CONNECT front end.
    HttpConnect(HttpConnectError),
}

impl fmt::Display for FrontError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrontError::Socks5(e) => write!(f, "socks5: {e}"),
            FrontError::HttpConnect(e) => write!(f, "http connect: {e}"),
        }
    }
}

impl std::error::Error for FrontError {}

impl<'a, E> Step<'a, E> {
    fn map_err<F>(self, f: impl FnOnce(E) -> F) -> Step<'a, F> {
        Step {
            send: self.send,
            progress: match self.progress {
                Progress::NeedMore => Progress::NeedMore,
                Progress::Ready { target, leftover } => Progress::Ready { target, leftover },
                Progress::Rejected(e) => Progress::Rejected(f(e)),
            },
        }
    }
}

/// Any of the three front ends, behind one interface for the node.
#[derive(Clone, Debug)]
pub enum FrontEnd {
    /// A plain outbound tunnel.
    Tunnel(Tunnel),
    /// A SOCKS5 proxy connection.
    Socks5(Socks5),
    /// An HTTP CONNECT proxy connection.
    HttpConnect(HttpConnect),
}

impl FrontEnd {
    /// A front end for a connection accepted on a plain tunnel listener.
    pub fn tunnel(target: Target) -> FrontEnd {
        FrontEnd::Tunnel(Tunnel::new(target))
    }

    /// A front end for a connection accepted on a SOCKS5 listener.
    pub fn socks5() -> FrontEnd {
        FrontEnd::Socks5(Socks5::new())
    }

    /// A front end for a connection accepted on an HTTP CONNECT listener.
    pub fn http_connect(config: HttpConnectConfig) -> FrontEnd {
        FrontEnd::HttpConnect(HttpConnect::new(config))
    }

    /// Feeds bytes read from the client. Call once with an empty slice
    /// right after accepting: a tunnel needs no bytes (its server may be
    /// the one to speak first) and reports its target at once.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a, FrontError>, UsageError> {
        Ok(match self {
            FrontEnd::Tunnel(t) => t.feed(input)?.map_err(|never| match never {}),
            FrontEnd::Socks5(s) => s.feed(input)?.map_err(FrontError::Socks5),
            FrontEnd::HttpConnect(h) => h.feed(input)?.map_err(FrontError::HttpConnect),
        })
    }

    /// The request did not complete before the host's deadline: the
    /// protocol's answer to write before closing (possibly none). The
    /// front end is rejected from then on.
    pub fn expire(&mut self) -> Result<Vec<u8>, UsageError> {
        match self {
            FrontEnd::Tunnel(t) => t.expire(),
            FrontEnd::Socks5(s) => s.expire(),
            FrontEnd::HttpConnect(h) => h.expire(),
        }
    }

    /// The bytes to write to the client for `outcome` (possibly none).
    /// After a [`Outcome::Refused`] the node closes once they are written.
    pub fn reply(&mut self, outcome: &Outcome) -> Result<Vec<u8>, UsageError> {
        match self {
            FrontEnd::Tunnel(t) => t.reply(outcome),
            FrontEnd::Socks5(s) => s.reply(outcome),
            FrontEnd::HttpConnect(h) => h.reply(outcome),
        }
    }
}

#[cfg(test)]
mod fed;
#[cfg(test)]
mod tests;
