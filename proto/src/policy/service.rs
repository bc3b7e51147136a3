//! `ServiceName`: a mesh service, `name.namespace`.

use core::fmt;

/// The longest DNS label, and so the longest name or namespace.
pub const MAX_LABEL_LEN: usize = 63;

/// A validated mesh service name, `name.namespace`, in lowercase.
///
/// Both parts are DNS labels as Kubernetes uses them (RFC 1123): 1-63 bytes
/// of `[a-z0-9-]`, starting and ending with a letter or digit. There is
/// exactly one dot, so the split is never ambiguous.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName {
    full: String,
    dot: usize,
}

/// Why a string is not a service name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceNameError {
    /// Not of the form `name.namespace` (no dot, or more than one).
    NotNameDotNamespace,
    /// The name or namespace is not a lowercase RFC 1123 label.
    InvalidLabel,
}

impl fmt::Display for ServiceNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceNameError::NotNameDotNamespace => "service must be name.namespace",
            ServiceNameError::InvalidLabel => {
                "service name and namespace must be 1-63 of a-z 0-9 -, starting and ending alphanumeric"
            }
        })
    }
}

impl std::error::Error for ServiceNameError {}

/// Whether `label` is an RFC 1123 label, ignoring ASCII case.
pub(crate) fn is_label_ignoring_case(label: &str) -> bool {
    let b = label.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            b.len() <= MAX_LABEL_LEN
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

fn is_lowercase_label(label: &str) -> bool {
    is_label_ignoring_case(label) && !label.bytes().any(|b| b.is_ascii_uppercase())
}

impl ServiceName {
    /// Parses `name.namespace`.
    pub fn parse(s: &str) -> Result<ServiceName, ServiceNameError> {
        let (name, namespace) = s
            .split_once('.')
            .ok_or(ServiceNameError::NotNameDotNamespace)?;
        if namespace.contains('.') {
            return Err(ServiceNameError::NotNameDotNamespace);
        }
        if !is_lowercase_label(name) || !is_lowercase_label(namespace) {
            return Err(ServiceNameError::InvalidLabel);
        }
        Ok(ServiceName {
            full: s.to_owned(),
            dot: name.len(),
        })
    }

    /// Builds `name.namespace` from its parts.
    pub fn new(name: &str, namespace: &str) -> Result<ServiceName, ServiceNameError> {
        if name.contains('.') || namespace.contains('.') {
            return Err(ServiceNameError::InvalidLabel);
        }
        ServiceName::parse(&format!("{name}.{namespace}"))
    }

    /// `name.namespace`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The service's own name.
    pub fn name(&self) -> &str {
        self.full.get(..self.dot).unwrap_or_default()
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        self.full.get(self.dot + 1..).unwrap_or_default()
    }

    /// Whether this is `name.namespace`, ignoring ASCII case (hosts in an
    /// HTTP authority are case-insensitive).
    pub fn is(&self, name: &str, namespace: &str) -> bool {
        self.name().eq_ignore_ascii_case(name) && self.namespace().eq_ignore_ascii_case(namespace)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceName({})", self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_name_table() {
        let ok = ServiceName::parse("cart.shop").unwrap();
        assert_eq!((ok.name(), ok.namespace()), ("cart", "shop"));
        assert!(ok.is("CART", "Shop"));
        assert!(!ok.is("cart", "shop2"));
        assert_eq!(ServiceName::new("a-1", "b").unwrap().as_str(), "a-1.b");
        assert!(ServiceName::parse(&format!("{}.b", "a".repeat(63))).is_ok());
        use ServiceNameError::*;
        for (s, e) in [
            ("cart", NotNameDotNamespace),
            ("a.b.c", NotNameDotNamespace),
            (".shop", InvalidLabel),
            ("cart.", InvalidLabel),
            ("Cart.shop", InvalidLabel),
            ("-cart.shop", InvalidLabel),
            ("cart-.shop", InvalidLabel),
            ("ca_rt.shop", InvalidLabel),
            ("ca rt.shop", InvalidLabel),
        ] {
            assert_eq!(ServiceName::parse(s), Err(e), "{s}");
        }
        let long = format!("{}.b", "a".repeat(64));
        assert_eq!(ServiceName::parse(&long), Err(InvalidLabel));
        assert_eq!(ServiceName::new("a.b", "c"), Err(InvalidLabel));
    }
}
