//! `Cidr`: an IPv4 or IPv6 network, parsed from `addr/len`.
//!
//! IPv4 and IPv6 never match each other, with one deliberate exception for
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`). A dual-stack socket
//! reports an IPv4 peer in that form, and the peer is an IPv4 host: so an
//! address is canonicalized to IPv4 before matching ([`canonical_ip`]), and
//! a network written inside `::ffff:0:0/96` (prefix 96 or longer) is stored
//! as the IPv4 network it denotes (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
//! Wider IPv6 networks (`::/0`, `::/80`) contain the mapped range on paper
//! but never match an IPv4 peer: "all IPv6" must not silently mean "all
//! IPv4 too".

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest `addr/len` string accepted (an IPv6 address with an embedded
/// IPv4 tail is 45 bytes, plus `/128`).
pub const MAX_CIDR_LEN: usize = 64;

/// An address with the IPv4-mapped IPv6 form turned into plain IPv4.
pub fn canonical_ip(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

/// An IP network: the address with host bits clear, and the prefix length.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a string or address/length pair is not a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// Longer than [`MAX_CIDR_LEN`].
    TooLong,
    /// The part before `/` is not an IPv4 or IPv6 address.
    InvalidAddress,
    /// The prefix length is not a decimal number within the address size
    /// (32 or 128).
    InvalidPrefixLen,
    /// The address has bits set beyond the prefix (`10.0.0.1/8`): almost
    /// always a typo for a different network, so refused rather than masked.
    HostBitsSet,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CidrError::TooLong => "CIDR longer than 64 bytes",
            CidrError::InvalidAddress => "CIDR address is not an IPv4 or IPv6 address",
            CidrError::InvalidPrefixLen => "CIDR prefix length must be 0-32 (IPv4) or 0-128 (IPv6)",
            CidrError::HostBitsSet => "CIDR address has bits set beyond the prefix length",
        })
    }
}

impl std::error::Error for CidrError {}

fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix_len)))
        .unwrap_or(0)
}

fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix_len)))
        .unwrap_or(0)
}

impl Cidr {
    /// A network from its address and prefix length. A bare address is
    /// `Cidr::new(addr, 32)` or `Cidr::new(addr, 128)`.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Cidr, CidrError> {
        match addr {
            IpAddr::V4(v4) => {
                if prefix_len > 32 {
                    return Err(CidrError::InvalidPrefixLen);
                }
                if u32::from(v4) & !mask_v4(prefix_len) != 0 {
                    return Err(CidrError::HostBitsSet);
                }
                Ok(Cidr {
                    network: addr,
                    prefix_len,
                })
            }
            IpAddr::V6(v6) => {
                if prefix_len > 128 {
                    return Err(CidrError::InvalidPrefixLen);
                }
                if u128::from(v6) & !mask_v6(prefix_len) != 0 {
                    return Err(CidrError::HostBitsSet);
                }
                match v6.to_ipv4_mapped() {
                    Some(v4) if prefix_len >= 96 => Ok(Cidr {
                        network: IpAddr::V4(v4),
                        prefix_len: prefix_len - 96,
                    }),
                    _ => Ok(Cidr {
                        network: addr,
                        prefix_len,
                    }),
                }
            }
        }
    }

    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host
    /// network, /32 or /128). The prefix length is plain decimal digits.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        if s.len() > MAX_CIDR_LEN {
            return Err(CidrError::TooLong);
        }
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::InvalidAddress)?;
        let prefix_len = match len {
            None if addr.is_ipv4() => 32,
            None => 128,
            Some(len) => {
                if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError::InvalidPrefixLen);
                }
                len.parse::<u8>().map_err(|_| CidrError::InvalidPrefixLen)?
            }
        };
        Cidr::new(addr, prefix_len)
    }

    /// The network address (host bits clear; IPv4 for mapped networks).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length (relative to IPv4 for mapped networks).
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `addr` (canonicalized, see the module docs) is inside.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical_ip(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                u32::from(a) & mask_v4(self.prefix_len) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask_v6(self.prefix_len) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl From<Ipv4Addr> for Cidr {
    /// The /32 host network.
    fn from(addr: Ipv4Addr) -> Cidr {
        Cidr {
            network: IpAddr::V4(addr),
            prefix_len: 32,
        }
    }
}

impl From<Ipv6Addr> for Cidr {
    /// The /128 host network (the /32 one for an IPv4-mapped address).
    fn from(addr: Ipv6Addr) -> Cidr {
        match addr.to_ipv4_mapped() {
            Some(v4) => Cidr::from(v4),
            None => Cidr {
                network: IpAddr::V6(addr),
                prefix_len: 128,
            },
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_at_the_edges() {
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(1), 0x8000_0000);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(128), u128::MAX);
        assert_eq!(mask_v6(127), u128::MAX - 1);
    }
}
