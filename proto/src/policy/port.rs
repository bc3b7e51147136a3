//! `PortRange`: one TCP port or an inclusive range of them.

use core::fmt;

/// An inclusive range of ports, `first..=last`; a single port has
/// `first == last`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    first: u16,
    last: u16,
}

/// Why a string is not a port or port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRangeError {
    /// A bound is not decimal digits in 0-65535.
    InvalidPort,
    /// The range is backwards (`90-80`).
    Reversed,
}

impl fmt::Display for PortRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortRangeError::InvalidPort => "port must be decimal digits in 0-65535",
            PortRangeError::Reversed => "port range must be FIRST-LAST with FIRST <= LAST",
        })
    }
}

impl std::error::Error for PortRangeError {}

fn parse_port(s: &str) -> Result<u16, PortRangeError> {
    // `u16::from_str` would also take a leading `+`.
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortRangeError::InvalidPort);
    }
    s.parse().map_err(|_| PortRangeError::InvalidPort)
}

impl PortRange {
    /// Every port, `0-65535`.
    pub const ALL: PortRange = PortRange {
        first: 0,
        last: u16::MAX,
    };

    /// One port.
    pub const fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// `first..=last`.
    pub fn new(first: u16, last: u16) -> Result<PortRange, PortRangeError> {
        if first > last {
            return Err(PortRangeError::Reversed);
        }
        Ok(PortRange { first, last })
    }

    /// Parses `443` or `8000-8080`.
    pub fn parse(s: &str) -> Result<PortRange, PortRangeError> {
        match s.split_once('-') {
            None => parse_port(s).map(PortRange::single),
            Some((first, last)) => PortRange::new(parse_port(first)?, parse_port(last)?),
        }
    }

    /// The lowest port in the range.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// The highest port in the range.
    pub fn last(&self) -> u16 {
        self.last
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

impl From<u16> for PortRange {
    fn from(port: u16) -> PortRange {
        PortRange::single(port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl fmt::Debug for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortRange({self})")
    }
}
