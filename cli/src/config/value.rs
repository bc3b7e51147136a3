//! Single TOML values read by warren-proto's own parsers.
//!
//! The parsing happens inside the serde visitor, so a refused value is a
//! serde error raised while toml still knows where the value is: toml
//! attaches its span, and the message says what was expected.

use core::fmt;
use core::marker::PhantomData;
use std::net::SocketAddr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use warren_proto::front;
use warren_proto::identity::SpiffeId;
use warren_proto::policy::{
    Cidr, Destination, DomainPattern, Glob, PortRange, PrincipalPattern, RuleName, ServiceName,
    Target,
};

/// A type read from a TOML string.
pub trait FromConfigStr: Sized {
    /// What a valid value looks like, quoted in errors.
    const EXPECTED: &'static str;
    /// Parses the string, saying what is wrong with it.
    fn from_config_str(s: &str) -> Result<Self, String>;
}

/// A `T` read from a TOML string by [`FromConfigStr`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<T>(pub T);

impl<'de, T: FromConfigStr> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Parsed<T>, D::Error> {
        struct StrVisitor<T>(PhantomData<T>);

        impl<T: FromConfigStr> Visitor<'_> for StrVisitor<T> {
            type Value = Parsed<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTED)
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Parsed<T>, E> {
                T::from_config_str(s)
                    .map(Parsed)
                    .map_err(|why| E::custom(format!("{s:?}: {why}; expected {}", T::EXPECTED)))
            }
        }

        deserializer.deserialize_str(StrVisitor(PhantomData))
    }
}

impl FromConfigStr for ServiceName {
    const EXPECTED: &'static str = "a service name.namespace such as \"echo.demo\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        ServiceName::parse(s).map_err(|e| e.to_string())
    }
}

impl FromConfigStr for RuleName {
    const EXPECTED: &'static str = "a rule name of A-Z a-z 0-9 . _ : / - such as \"allow-web\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        RuleName::new(s).map_err(|e| e.to_string())
    }
}

impl FromConfigStr for PrincipalPattern {
    const EXPECTED: &'static str =
        "a SPIFFE id or `*` pattern such as \"spiffe://example.org/ns/demo/sa/*\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        PrincipalPattern::new(s).map_err(|e| e.to_string())
    }
}

impl FromConfigStr for Glob {
    const EXPECTED: &'static str = "a namespace or `*` pattern such as \"demo\" or \"team-*\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        Glob::new(s).map_err(|e| e.to_string())
    }
}

impl FromConfigStr for Cidr {
    const EXPECTED: &'static str = "an address or network such as \"10.0.0.0/8\" or \"::1\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        Cidr::parse(s).map_err(|e| e.to_string())
    }
}

impl FromConfigStr for Destination {
    const EXPECTED: &'static str =
        "a network such as \"10.0.0.0/8\" or a domain such as \"example.com\" or \"*.example.com\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        // Anything with a ':' or '/', or made of digits and dots only, was
        // meant as an address: report the address error, not a domain one.
        let looks_like_address =
            s.contains([':', '/']) || s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if looks_like_address {
            Cidr::parse(s)
                .map(Destination::Cidr)
                .map_err(|e| e.to_string())
        } else {
            DomainPattern::parse(s)
                .map(Destination::Domain)
                .map_err(|e| e.to_string())
        }
    }
}

impl FromConfigStr for SocketAddr {
    const EXPECTED: &'static str =
        "an address ip:port such as \"127.0.0.1:8080\" or \"[::1]:8080\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map_err(|_| "not an ip:port socket address".to_owned())
    }
}

impl FromConfigStr for front::Target {
    const EXPECTED: &'static str = "host:port such as \"echo.demo:8080\" or \"10.0.0.5:443\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        front::Target::parse(s).map_err(|e| e.to_string())
    }
}

impl FromConfigStr for Target {
    const EXPECTED: &'static str =
        "where to connect, ip:port or host:port, such as \"127.0.0.1:9000\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        let parsed = front::Target::parse(s).map_err(|e| e.to_string())?;
        Ok(match parsed.host {
            front::Host::Ip(ip) => Target::Addr(SocketAddr::new(ip, parsed.port)),
            front::Host::Domain(name) => Target::Host {
                host: name.as_str().to_owned(),
                port: parsed.port,
            },
        })
    }
}

impl FromConfigStr for SpiffeId {
    const EXPECTED: &'static str = "a SPIFFE id such as \"spiffe://example.org/ns/demo/sa/echo\"";
    fn from_config_str(s: &str) -> Result<Self, String> {
        SpiffeId::parse(s).map_err(|e| e.to_string())
    }
}

/// A port or port range: `443` or `"8000-8080"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports(pub PortRange);

const PORTS_EXPECTED: &str = "a port such as 443 or a range such as \"8000-8080\"";

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Ports, D::Error> {
        struct PortsVisitor;

        impl Visitor<'_> for PortsVisitor {
            type Value = Ports;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PORTS_EXPECTED)
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Ports, E> {
                u16::try_from(n)
                    .map(|p| Ports(PortRange::single(p)))
                    .map_err(|_| E::custom(format!("{n} is not a port; expected 0-65535")))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Ports, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Ports, E> {
                PortRange::parse(s)
                    .map(Ports)
                    .map_err(|e| E::custom(format!("{s:?}: {e}; expected {PORTS_EXPECTED}")))
            }
        }

        deserializer.deserialize_any(PortsVisitor)
    }
}
