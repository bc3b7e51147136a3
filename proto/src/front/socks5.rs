//! SOCKS5 server side (RFC 1928), CONNECT only, no authentication.
//!
//! ```text
//! greeting  VER=5 NMETHODS METHODS[NMETHODS]        -> VER=5 METHOD (0x00, or 0xFF: none acceptable)
//! request   VER=5 CMD RSV=0 ATYP DST.ADDR DST.PORT  -> VER=5 REP RSV=0 ATYP BND.ADDR BND.PORT
//! ```
//!
//! The parser copies bytes only until the current message is complete, so
//! it never holds more than [`MAX_REQUEST_LEN`] bytes. A message is judged whole (so the client has finished writing
//! before the reply and close) except where its length cannot be known:
//! a wrong version byte or an unknown address type is answered at once.

use super::{Host, Outcome, Phase, Progress, Refusal, Step, Target, TargetError, UsageError};
use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest greeting: VER, NMETHODS and 255 methods.
pub const MAX_GREETING_LEN: usize = 2 + 255;
/// The longest request: VER CMD RSV ATYP, a 255-byte domain with its length
/// byte, and the port.
pub const MAX_REQUEST_LEN: usize = 4 + 1 + 255 + 2;

const VERSION: u8 = 5;
const METHOD_NO_AUTH: u8 = 0x00;
const METHOD_NONE_ACCEPTABLE: u8 = 0xff;
const CMD_CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// The address reported in replies that have no bound address.
const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// The REP field of a SOCKS5 reply (RFC 1928 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ReplyCode {
    /// 0x00 succeeded.
    Succeeded = 0x00,
    /// 0x01 general SOCKS server failure.
    GeneralFailure = 0x01,
    /// 0x02 connection not allowed by ruleset.
    NotAllowed = 0x02,
    /// 0x03 network unreachable.
    NetworkUnreachable = 0x03,
    /// 0x04 host unreachable.
    HostUnreachable = 0x04,
    /// 0x05 connection refused.
    ConnectionRefused = 0x05,
    /// 0x06 TTL expired (used for timeouts).
    TtlExpired = 0x06,
    /// 0x07 command not supported.
    CommandNotSupported = 0x07,
    /// 0x08 address type not supported.
    AddressTypeNotSupported = 0x08,
}

impl From<&Refusal> for ReplyCode {
    fn from(refusal: &Refusal) -> ReplyCode {
        match refusal {
            Refusal::Denied { .. } => ReplyCode::NotAllowed,
            Refusal::Unreachable => ReplyCode::HostUnreachable,
            Refusal::Refused => ReplyCode::ConnectionRefused,
            Refusal::Timeout => ReplyCode::TtlExpired,
            Refusal::GeneralFailure => ReplyCode::GeneralFailure,
        }
    }
}

/// Encodes a reply: `VER=5 REP RSV=0 ATYP BND.ADDR BND.PORT`.
pub fn encode_reply(code: ReplyCode, bound: SocketAddr) -> Vec<u8> {
    let mut out = vec![VERSION, code as u8, 0x00];
    match bound.ip() {
        IpAddr::V4(v4) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.extend_from_slice(&bound.port().to_be_bytes());
    out
}

/// What was wrong with a client's SOCKS5 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Socks5Error {
    /// The greeting's first byte is not 5 (a SOCKS4 client, TLS, HTTP...).
    /// Closed without a reply: the client does not speak SOCKS5.
    UnsupportedVersion(u8),
    /// The greeting offers no "no authentication" method (or no method at
    /// all). Answered `05 FF`.
    NoAcceptableMethod,
    /// The request's first byte is not 5. Answered 0x01.
    RequestVersion(u8),
    /// The reserved byte of the request is not 0. Answered 0x01.
    NonZeroReserved(u8),
    /// BIND (2), UDP ASSOCIATE (3) or an unknown command. Answered 0x07.
    UnsupportedCommand(u8),
    /// ATYP is not 1, 3 or 4. Answered 0x08.
    UnsupportedAddressType(u8),
    /// A domain of length 0. Answered 0x01.
    EmptyDomain,
    /// A domain that is not a valid LDH host name. Answered 0x08.
    InvalidDomain(TargetError),
    /// DST.PORT is 0. Answered 0x01.
    ZeroPort,
}

impl fmt::Display for Socks5Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socks5Error::UnsupportedVersion(v) => write!(f, "greeting version {v}, expected 5"),
            Socks5Error::NoAcceptableMethod => {
                f.write_str("client offers no acceptable method (need 0x00 no authentication)")
            }
            Socks5Error::RequestVersion(v) => write!(f, "request version {v}, expected 5"),
            Socks5Error::NonZeroReserved(b) => write!(f, "reserved byte is {b:#04x}, expected 0"),
            Socks5Error::UnsupportedCommand(c) => {
                write!(f, "command {c:#04x} not supported (only CONNECT)")
            }
            Socks5Error::UnsupportedAddressType(a) => write!(f, "address type {a:#04x} unknown"),
            Socks5Error::EmptyDomain => f.write_str("empty domain name"),
            Socks5Error::InvalidDomain(e) => write!(f, "invalid domain name: {e}"),
            Socks5Error::ZeroPort => f.write_str("destination port 0"),
        }
    }
}

impl std::error::Error for Socks5Error {}

impl Socks5Error {
    /// The exact bytes that answer this error before the close.
    fn answer(&self) -> Vec<u8> {
        let code = match self {
            Socks5Error::UnsupportedVersion(_) => return Vec::new(),
            Socks5Error::NoAcceptableMethod => return vec![VERSION, METHOD_NONE_ACCEPTABLE],
            Socks5Error::RequestVersion(_)
            | Socks5Error::NonZeroReserved(_)
            | Socks5Error::EmptyDomain
            | Socks5Error::ZeroPort => ReplyCode::GeneralFailure,
            Socks5Error::UnsupportedCommand(_) => ReplyCode::CommandNotSupported,
            Socks5Error::UnsupportedAddressType(_) | Socks5Error::InvalidDomain(_) => {
                ReplyCode::AddressTypeNotSupported
            }
        };
        encode_reply(code, UNSPECIFIED)
    }
}

/// Which message is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Greeting,
    Request,
}

/// One SOCKS5 client connection, from greeting to reply.
#[derive(Clone, Debug)]
pub struct Socks5 {
    phase: Phase,
    stage: Stage,
    /// The current message so far, never longer than [`MAX_REQUEST_LEN`].
    message: Vec<u8>,
}

impl Default for Socks5 {
    fn default() -> Socks5 {
        Socks5::new()
    }
}

impl Socks5 {
    /// A connection waiting for its greeting.
    pub fn new() -> Socks5 {
        Socks5 {
            phase: Phase::Reading,
            stage: Stage::Greeting,
            message: Vec::new(),
        }
    }

    /// Bytes of an incomplete message held; at most [`MAX_REQUEST_LEN`].
    pub fn buffered(&self) -> usize {
        self.message.len()
    }

    /// Feeds bytes read from the client. `send` carries the method choice
    /// as soon as the greeting is complete, then any error reply.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a, Socks5Error>, UsageError> {
        self.phase.check_feed()?;
        let mut send = Vec::new();
        let mut rest = input;
        let progress = loop {
            let want = match message_len(self.stage, &self.message) {
                Ok(want) => want,
                Err(e) => break Progress::Rejected(e),
            };
            if let Some(missing) = want.checked_sub(self.message.len()).filter(|m| *m > 0) {
                if rest.is_empty() {
                    break Progress::NeedMore;
                }
                let (head, tail) = rest.split_at(rest.len().min(missing));
                self.message.extend_from_slice(head);
                rest = tail;
                continue;
            }
            match self.stage {
                Stage::Greeting => {
                    let methods = self.message.get(2..).unwrap_or_default();
                    if !methods.contains(&METHOD_NO_AUTH) {
                        break Progress::Rejected(Socks5Error::NoAcceptableMethod);
                    }
                    send.extend_from_slice(&[VERSION, METHOD_NO_AUTH]);
                    self.stage = Stage::Request;
                    self.message.clear();
                }
                Stage::Request => {
                    break match parse_request(&self.message) {
                        Ok(target) => Progress::Ready {
                            target,
                            leftover: rest,
                        },
                        Err(e) => Progress::Rejected(e),
                    };
                }
            }
        };
        if let Progress::Rejected(e) = &progress {
            send.extend_from_slice(&e.answer());
        }
        if !matches!(progress, Progress::NeedMore) {
            // The message is consumed (or the connection is over).
            self.message = Vec::new();
        }
        self.phase = Phase::after(&progress);
        Ok(Step { send, progress })
    }

    /// The request did not complete before the host's deadline: what to
    /// write before closing. After the method choice that is a general
    /// failure reply (the client waits for a reply to its request); before
    /// it SOCKS5 has no message, so nothing. The client is rejected from
    /// then on.
    pub fn expire(&mut self) -> Result<Vec<u8>, UsageError> {
        self.phase.check_feed()?;
        self.phase = Phase::Rejected;
        self.message = Vec::new();
        Ok(match self.stage {
            Stage::Greeting => Vec::new(),
            Stage::Request => encode_reply(ReplyCode::GeneralFailure, UNSPECIFIED),
        })
    }

    /// The reply for `outcome`: 0x00 with the bound address, or the
    /// refusal's code with `0.0.0.0:0`.
    pub fn reply(&mut self, outcome: &Outcome) -> Result<Vec<u8>, UsageError> {
        self.phase.check_reply()?;
        self.phase = Phase::Replied;
        Ok(match outcome {
            Outcome::Connected { bound } => {
                encode_reply(ReplyCode::Succeeded, bound.unwrap_or(UNSPECIFIED))
            }
            Outcome::Refused(refusal) => encode_reply(ReplyCode::from(refusal), UNSPECIFIED),
        })
    }
}

/// The full length of the message in `stage` as far as the bytes so far
/// tell (grows as they arrive), or the error the bytes so far already show.
fn message_len(stage: Stage, message: &[u8]) -> Result<usize, Socks5Error> {
    match stage {
        Stage::Greeting => match message {
            [version, ..] if *version != VERSION => Err(Socks5Error::UnsupportedVersion(*version)),
            [_, nmethods, ..] => Ok(2 + usize::from(*nmethods)),
            _ => Ok(2),
        },
        Stage::Request => match message {
            [version, ..] if *version != VERSION => Err(Socks5Error::RequestVersion(*version)),
            [_, _, _, ATYP_IPV4, ..] => Ok(4 + 4 + 2),
            [_, _, _, ATYP_IPV6, ..] => Ok(4 + 16 + 2),
            [_, _, _, ATYP_DOMAIN, len, ..] => Ok(4 + 1 + usize::from(*len) + 2),
            [_, _, _, ATYP_DOMAIN] => Ok(5),
            [_, _, _, atyp, ..] => Err(Socks5Error::UnsupportedAddressType(*atyp)),
            _ => Ok(4),
        },
    }
}

/// Validates a complete request (its length already checked by
/// [`message_len`]).
fn parse_request(message: &[u8]) -> Result<Target, Socks5Error> {
    let [_version, command, reserved, atyp, rest @ ..] = message else {
        // Not reached: `message_len` asks for at least 10 bytes. Answered as
        // the malformed request it would be.
        return Err(Socks5Error::RequestVersion(
            message.first().copied().unwrap_or(0),
        ));
    };
    if *reserved != 0 {
        return Err(Socks5Error::NonZeroReserved(*reserved));
    }
    if *command != CMD_CONNECT {
        return Err(Socks5Error::UnsupportedCommand(*command));
    }
    let (address, port) = rest.split_at(rest.len().saturating_sub(2));
    // The address lengths were fixed by `message_len`; the fallbacks below
    // only keep this function total.
    let host = match (*atyp, address) {
        (ATYP_IPV4, _) => <[u8; 4]>::try_from(address)
            .map(|octets| Host::from_ip(IpAddr::V4(Ipv4Addr::from(octets))))
            .map_err(|_| Socks5Error::UnsupportedAddressType(*atyp))?,
        (ATYP_IPV6, _) => <[u8; 16]>::try_from(address)
            .map(|octets| Host::from_ip(IpAddr::V6(Ipv6Addr::from(octets))))
            .map_err(|_| Socks5Error::UnsupportedAddressType(*atyp))?,
        (ATYP_DOMAIN, [_len]) => return Err(Socks5Error::EmptyDomain),
        (ATYP_DOMAIN, [_len, name @ ..]) => {
            let name = core::str::from_utf8(name)
                .map_err(|_| Socks5Error::InvalidDomain(TargetError::InvalidLabel))?;
            Host::parse(name).map_err(Socks5Error::InvalidDomain)?
        }
        _ => return Err(Socks5Error::UnsupportedAddressType(*atyp)),
    };
    let port = match port {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    };
    if port == 0 {
        return Err(Socks5Error::ZeroPort);
    }
    Ok(Target { host, port })
}

#[cfg(test)]
mod tests;
