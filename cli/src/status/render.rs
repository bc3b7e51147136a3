//! `/status` JSON as the few readable lines `warren status` prints. Keys
//! that are missing (an older or newer agent) print as `?` instead of
//! failing: the summary is for reading, not for scripts (they have the
//! JSON).

use core::fmt::{self, Write};

use serde_json::Value;

/// The summary of `status`, with ages and expiry measured to `now_unix_ms`.
pub struct Summary<'a> {
    /// The `/status` document.
    pub status: &'a Value,
    /// The wall clock, milliseconds since the Unix epoch.
    pub now_unix_ms: u64,
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

fn number(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// `1.5 MB`, `812 B`: bytes for a person (powers of 1000).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `850 ms`, `12.3 s`, `4 min`, `3 h`, `2 d`: a duration for a person.
pub fn age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min", ms / 60_000),
        3_600_000..86_400_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time as `/status`
/// writes it (`2026-11-23T19:21:09Z`).
pub fn unix_seconds(rfc3339: &str) -> Option<i64> {
    let b = rfc3339.as_bytes();
    if b.len() != 20 || b.get(19) != Some(&b'Z') {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = rfc3339.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from 1970-01-01 in the proleptic Gregorian calendar, counting
    // years from March so that the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `expires in 29 d` or `EXPIRED 3 h ago`.
fn expiry(not_after: &str, now_unix_ms: u64) -> String {
    let Some(end) = unix_seconds(not_after) else {
        return "expiry unknown".into();
    };
    let now = i64::try_from(now_unix_ms / 1000).unwrap_or(i64::MAX);
    let left_ms = end.saturating_sub(now).saturating_mul(1000);
    if left_ms >= 0 {
        format!("expires in {}", age(left_ms.unsigned_abs()))
    } else {
        format!("EXPIRED {} ago", age(left_ms.unsigned_abs()))
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.status;
        writeln!(
            f,
            "agent      {} (trust domain {})",
            text(&s["identity"]),
            text(&s["trust_domain"])
        )?;
        let cert = &s["certificate"];
        writeln!(
            f,
            "cert       valid {} to {}, {}",
            text(&cert["not_before"]),
            text(&cert["not_after"]),
            expiry(text(&cert["not_after"]), self.now_unix_ms)
        )?;

        writeln!(f, "\nlisteners")?;
        for l in list(&s["listeners"]) {
            let mut line = format!("  {:<13} {}", text(&l["kind"]), text(&l["addr"]));
            if let Some(to) = l["to"].as_str() {
                let _ = write!(line, " -> {to}");
            }
            writeln!(f, "{line}")?;
        }

        writeln!(f, "\npeers (mesh connections; dialled = our pool)")?;
        let peers = list(&s["connections"]);
        if peers.is_empty() {
            writeln!(f, "  none")?;
        }
        for p in peers {
            let role = if p["role"] == "client" {
                "dialled"
            } else {
                "accepted"
            };
            let conns = number(&p["connections"]);
            let streams = number(&p["streams"]);
            writeln!(
                f,
                "  {role:<9} {:<21} {}  {conns} connection{}, {streams} stream{}, up {}",
                text(&p["address"]),
                p["identity"].as_str().unwrap_or("(handshaking)"),
                if conns == 1 { "" } else { "s" },
                if streams == 1 { "" } else { "s" },
                age(number(&p["age_ms"])),
            )?;
        }

        let flows = &s["flows"];
        writeln!(
            f,
            "\nflows      {} open ({} inbound, {} outbound); since start {} opened, {} sent, {} received",
            number(&flows["open"]),
            number(&flows["inbound"]),
            number(&flows["outbound"]),
            number(&flows["opened_total"]),
            bytes(number(&flows["bytes_sent_total"])),
            bytes(number(&flows["bytes_received_total"])),
        )?;
        for b in list(&flows["by_service"]) {
            writeln!(
                f,
                "  {:<9} {:<30} {} open",
                text(&b["direction"]),
                text(&b["service"]),
                number(&b["open"])
            )?;
        }
        let top = list(&flows["top"]);
        if !top.is_empty() {
            writeln!(f, "  busiest:")?;
        }
        for t in top {
            writeln!(
                f,
                "    flow-{:<5} {:<9} {}  {} -> {}  sent {}, received {}, age {}",
                number(&t["id"]),
                text(&t["direction"]),
                text(&t["service"]),
                t["source_identity"].as_str().unwrap_or("-"),
                t["destination_identity"].as_str().unwrap_or("-"),
                bytes(number(&t["bytes_sent"])),
                bytes(number(&t["bytes_received"])),
                age(number(&t["age_ms"])),
            )?;
        }

        writeln!(f, "\nrecent denials")?;
        let denials = list(&s["recent_denials"]);
        if denials.is_empty() {
            writeln!(f, "  none")?;
        }
        // Newest first: the one just caused is the one looked for.
        for d in denials.iter().rev() {
            let ago = self.now_unix_ms.saturating_sub(number(&d["at_unix_ms"]));
            writeln!(
                f,
                "  {:>8} ago  {} -> {}  rule {} ({})",
                age(ago),
                d["source"].as_str().unwrap_or("-"),
                text(&d["destination"]),
                d["rule"].as_str().unwrap_or("(default)"),
                text(&d["reason"]),
            )?;
        }

        write!(f, "\nhubs       ")?;
        match &s["hubs"] {
            Value::Array(hubs) if !hubs.is_empty() => {
                writeln!(f)?;
                for h in hubs {
                    self.hub_link(f, h)?;
                }
            }
            _ => writeln!(f, "none configured")?,
        }
        if let Some(hub) = s["hub"].as_object() {
            self.hub(f, hub)?;
        }
        Ok(())
    }
}

impl Summary<'_> {
    /// One hub as an agent sees it.
    fn hub_link(&self, f: &mut fmt::Formatter<'_>, h: &Value) -> fmt::Result {
        let side = |name: &str| {
            let state = text(&h[name]);
            match number(&h["failures"][name]) {
                0 => format!("{name} {state}"),
                1 => format!("{name} {state} (1 failure)"),
                n => format!("{name} {state} ({n} failures)"),
            }
        };
        write!(
            f,
            "  {:<21}  {}, {}",
            text(&h["address"]),
            side("forward"),
            side("reverse")
        )?;
        if let Some(ms) = h["retry_in_ms"].as_u64() {
            write!(f, ", retry in {}", age(ms))?;
        }
        writeln!(
            f,
            "; registry epoch {}, {} entries",
            number(&h["registry_epoch"]),
            number(&h["registry_entries"])
        )
    }

    /// A hub's own state and who it refused.
    fn hub(&self, f: &mut fmt::Formatter<'_>, hub: &serde_json::Map<String, Value>) -> fmt::Result {
        let n = |key: &str| hub.get(key).map_or(0, number);
        writeln!(
            f,
            "\nhub        {} agents ({} connections); registry epoch {}, {} entries; {} relays; {} refusals, {} suspended",
            n("agents"),
            n("connections"),
            n("registry_epoch"),
            n("registry_entries"),
            n("relays"),
            n("refusals_total"),
            n("suspended"),
        )?;
        for r in hub.get("refusals").map_or(&[][..], list) {
            writeln!(
                f,
                "  refused  {}  {}  {}",
                r["agent"].as_str().unwrap_or("-"),
                text(&r["reason"]),
                number(&r["count"])
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{QuickCheck, TestResult};
    use serde_json::json;

    #[test]
    fn rfc3339_times_become_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(unix_seconds("2026-11-23T19:21:09Z"), Some(1_795_461_669));
        assert_eq!(unix_seconds("2026-13-23T19:21:09Z"), None);
        assert_eq!(unix_seconds("2026-11-23 19:21:09"), None);
        assert_eq!(unix_seconds("2026-11-23T19:21:0xZ"), None);
    }

    /// Against an independent count: whole days from 1970 by summing
    /// month lengths.
    #[test]
    fn dates_agree_with_counting_days() {
        fn leap(y: i64) -> bool {
            (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        }
        fn prop(year: u16, month: u8, day: u8) -> TestResult {
            let year = 1970 + i64::from(year % 400);
            let month = i64::from(month % 12) + 1;
            let lengths = [
                31,
                if leap(year) { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            let day = i64::from(day) % lengths[(month - 1) as usize] + 1;
            let mut days: i64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
            days += lengths[..(month - 1) as usize].iter().sum::<i64>() + day - 1;
            let text = format!("{year:04}-{month:02}-{day:02}T00:00:00Z");
            TestResult::from_bool(unix_seconds(&text) == Some(days * 86_400))
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(u16, u8, u8) -> TestResult);
    }

    #[test]
    fn sizes_and_ages_read_like_a_person_would_say_them() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(age(850), "850 ms");
        assert_eq!(age(12_300), "12.3 s");
        assert_eq!(age(2 * 86_400_000 + 5), "2 d");
    }

    #[test]
    fn a_status_document_reads_as_sections() {
        let status = json!({
            "identity": "spiffe://t.org/ns/web/sa/a",
            "trust_domain": "t.org",
            "certificate": { "not_before": "2026-11-01T00:00:00Z", "not_after": "2026-12-01T00:00:00Z" },
            "listeners": [
                { "kind": "hbone", "addr": "127.0.0.1:15008" },
                { "kind": "tunnel", "addr": "127.0.0.1:7000", "to": "echo.demo:80" },
            ],
            "connections": [{ "role": "client", "address": "10.0.0.2:15008",
                "identity": "spiffe://t.org/ns/demo/sa/b", "connections": 1, "streams": 2,
                "age_ms": 125_000 }],
            "flows": { "open": 2, "inbound": 0, "outbound": 2, "opened_total": 7,
                "bytes_sent_total": 2_000_000, "bytes_received_total": 10,
                "by_service": [{ "direction": "outbound", "service": "echo.demo:80", "open": 2 }],
                "top": [{ "id": 4, "direction": "outbound", "service": "echo.demo:80",
                    "source_identity": "spiffe://t.org/ns/web/sa/a", "destination_identity": null,
                    "bytes_sent": 1_500_000, "bytes_received": 0, "age_ms": 4_000 }] },
            "recent_denials": [
                { "at_unix_ms": 1_795_000_000_000u64, "source": null, "destination": "old:1",
                  "reason": "no-allow-match", "rule": null },
                { "at_unix_ms": 1_795_000_050_000u64, "source": "spiffe://t.org/ns/web/sa/a",
                  "destination": "secret.demo:80", "reason": "deny-rule", "rule": "ops-only" },
            ],
            "hubs": null,
        });
        // 2026-11-18T09:47:40Z: 12 days and some hours before the end.
        let now = 1_795_000_060_000;
        let shown = Summary {
            status: &status,
            now_unix_ms: now,
        }
        .to_string();
        for want in [
            "agent      spiffe://t.org/ns/web/sa/a (trust domain t.org)",
            "expires in 12 d",
            "  tunnel        127.0.0.1:7000 -> echo.demo:80",
            "  dialled   10.0.0.2:15008        spiffe://t.org/ns/demo/sa/b  1 connection, 2 streams, up 2 min",
            "2 open (0 inbound, 2 outbound); since start 7 opened, 2.0 MB sent, 10 B received",
            "  outbound  echo.demo:80                   2 open",
            "flow-4     outbound  echo.demo:80  spiffe://t.org/ns/web/sa/a -> -  sent 1.5 MB, received 0 B, age 4.0 s",
            "hubs       none configured",
        ] {
            assert!(shown.contains(want), "no {want:?} in\n{shown}");
        }
        // Newest denial first.
        let newest = shown.find(
            "10.0 s ago  spiffe://t.org/ns/web/sa/a -> secret.demo:80  rule ops-only (deny-rule)",
        );
        let oldest = shown.find("1 min ago  - -> old:1  rule (default) (no-allow-match)");
        assert!(
            newest.is_some() && oldest.is_some() && newest < oldest,
            "{shown}"
        );
    }

    #[test]
    fn hub_links_and_a_hub_section_are_shown() {
        let status = json!({
            "identity": "spiffe://t.org/ns/mesh/sa/hub",
            "hubs": [
                { "address": "10.0.0.9:15009", "forward": "up", "reverse": "up", "control": true,
                  "failures": { "forward": 0, "reverse": 0 }, "retry_in_ms": null,
                  "registry_epoch": 3, "registry_entries": 12 },
                { "address": "10.0.0.10:15009", "forward": "down", "reverse": "down",
                  "control": false, "failures": { "forward": 3, "reverse": 1 },
                  "retry_in_ms": 1_200, "registry_epoch": 0, "registry_entries": 0 },
            ],
            "hub": { "connections": 4, "agents": 2, "registry_epoch": 7, "registry_entries": 12,
                "relays": 3, "suspended": 1, "refusals_total": 301,
                "refusals": [{ "agent": "spiffe://t.org/ns/x/sa/flood", "reason": "connect_rate",
                    "count": 301 }] },
        });
        let shown = Summary {
            status: &status,
            now_unix_ms: 0,
        }
        .to_string();
        for want in [
            "  10.0.0.9:15009         forward up, reverse up; registry epoch 3, 12 entries",
            "  10.0.0.10:15009        forward down (3 failures), reverse down (1 failure), retry in 1.2 s; registry epoch 0, 0 entries",
            "hub        2 agents (4 connections); registry epoch 7, 12 entries; 3 relays; 301 refusals, 1 suspended",
            "  refused  spiffe://t.org/ns/x/sa/flood  connect_rate  301",
        ] {
            assert!(shown.contains(want), "no {want:?} in\n{shown}");
        }
        assert!(!shown.contains("none configured"), "{shown}");
    }
}
