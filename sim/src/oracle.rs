//! A naive policy oracle, written apart from `proto::policy` so the
//! simulator can check the node's decisions against a second opinion.
//!
//! A flow to `service` from `source` is allowed when the service is
//! exported, no deny rule matches, and either no allow rule covers the
//! service or one of them matches. Globs are matched by plain recursion.

use crate::scenario::RuleSpec;

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (recursion; patterns here are short).
pub fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// The namespace of `spiffe://td/ns/NS/sa/SA`.
fn namespace(source: &str) -> &str {
    source
        .split('/')
        .skip_while(|part| *part != "ns")
        .nth(1)
        .unwrap_or("")
}

fn matches(rule: &RuleSpec, source: &str) -> bool {
    rule.principal.as_deref().is_none_or(|p| glob(p, source))
        && rule
            .namespace
            .as_deref()
            .is_none_or(|n| glob(n, namespace(source)))
}

/// The oracle's answer for a flow from `source` (a full SPIFFE id) to
/// `service` at a node with `rules`, `exported` saying whether that node
/// exports it.
pub fn allowed(rules: &[RuleSpec], exported: bool, source: &str, service: &str) -> bool {
    if !exported {
        return false;
    }
    let covering = || {
        rules
            .iter()
            .filter(move |r| r.service.as_deref().is_none_or(|s| s == service))
    };
    if covering().any(|r| !r.allow && matches(r, source)) {
        return false;
    }
    let mut allows = covering().filter(|r| r.allow).peekable();
    allows.peek().is_none() || allows.any(|r| matches(r, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<RuleSpec> {
        list.iter().map(|r| RuleSpec::parse(r).unwrap()).collect()
    }

    const CART: &str = "spiffe://mesh.test/ns/shop/sa/cart";

    #[test]
    fn globs() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(!glob("a*c", "abd"));
        assert!(glob("spiffe://mesh.test/ns/*/sa/cart", CART));
    }

    #[test]
    fn deny_beats_allow_and_allow_rules_close_a_service() {
        assert!(allowed(&[], true, CART, "echo.shop"));
        assert!(!allowed(&[], false, CART, "echo.shop"));
        let r = rules(&["allow echo.shop ns shop", "deny * from */sa/cart"]);
        assert!(!allowed(&r, true, CART, "echo.shop"));
        let r = rules(&["allow echo.shop ns other"]);
        assert!(!allowed(&r, true, CART, "echo.shop"));
        assert!(
            allowed(&r, true, CART, "db.shop"),
            "allow rules of other services do not apply"
        );
        let r = rules(&["allow echo.shop from mesh.test/ns/shop/*"]);
        assert!(allowed(&r, true, CART, "echo.shop"));
    }
}
