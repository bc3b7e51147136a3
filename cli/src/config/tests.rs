use super::*;
use quickcheck::{QuickCheck, TestResult};
use std::time::Duration;
use warren_proto::balance::{Ejection, Strategy};
use warren_proto::hub::Route;
use warren_proto::node::Balancing;
use warren_proto::policy::{Action, Cidr, PortRange, Scope, Target};

const EXAMPLE: &str = include_str!("../../examples/agent.toml");

/// The smallest valid file: one line, so a case's own text starts on
/// line 2 (and may set top-level keys).
const BASE: &str = "identity = { cert = \"c.pem\", key = \"k.pem\", ca = \"ca.pem\" }\n";

fn parse_str(text: &str) -> Result<AgentConfig, ConfigError> {
    parse(text, Path::new("conf/agent.toml"))
}

/// The identity files `cfg` names; panics when it names a ticket.
fn files(cfg: &AgentConfig) -> &IdentityFiles {
    match &cfg.identity {
        IdentitySource::Files(files) => files,
        IdentitySource::Ticket(t) => panic!("a ticket {t:?}, not files"),
    }
}

#[test]
fn the_documented_example_parses_into_the_policy_it_describes() {
    let cfg = parse(EXAMPLE, Path::new("cli/examples/agent.toml")).unwrap();
    assert_eq!(files(&cfg).cert, Path::new("cli/examples/echo/cert.pem"));
    assert_eq!(files(&cfg).ca, Path::new("cli/examples/echo/ca.pem"));
    assert_eq!(cfg.hbone_listen, Some("0.0.0.0:15008".parse().unwrap()));
    assert_eq!(cfg.admin, "127.0.0.1:15000".parse().unwrap());

    let exports: Vec<_> = cfg.exports.iter().collect();
    assert_eq!(exports.len(), 2);
    assert_eq!(exports[0].service.as_str(), "echo.demo");
    assert_eq!(exports[0].port, 8080);
    assert_eq!(
        exports[0].target,
        Target::Addr("127.0.0.1:9000".parse().unwrap())
    );

    let rules = &cfg.authz.rules;
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].name.as_str(), "deny-outside-addresses");
    assert_eq!(rules[0].action, Action::Deny);
    assert_eq!(rules[0].scope, Scope::AllServices);
    assert_eq!(
        rules[0].when.not_ip_blocks,
        vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("192.168.0.0/16").unwrap()
        ]
    );
    assert_eq!(rules[1].action, Action::Allow);
    assert!(matches!(&rules[1].scope, Scope::Service(s) if s.as_str() == "echo.demo"));
    assert_eq!(
        rules[1].when.principals[0].as_str(),
        "spiffe://example.org/ns/web/sa/*"
    );
    assert_eq!(rules[1].when.ports, vec![PortRange::single(8080)]);
    // Istio's scheme-less spelling means the same id.
    assert_eq!(
        rules[2].when.not_principals[0].as_str(),
        "spiffe://example.org/ns/ops/sa/intern"
    );
    assert_eq!(rules[2].when.namespaces[0].as_str(), "ops");

    let egress = &cfg.egress.rules;
    assert_eq!(egress.len(), 2);
    assert_eq!(egress[0].action, Action::Deny);
    assert_eq!(
        egress[1].ports,
        vec![PortRange::single(443), PortRange::new(8000, 8080).unwrap()]
    );
    assert_eq!(egress[1].destinations.len(), 2);

    assert_eq!(cfg.tunnels.len(), 1);
    assert_eq!(cfg.tunnels[0].listen, "127.0.0.1:18080".parse().unwrap());
    assert_eq!(cfg.tunnels[0].to.to_string(), "echo.demo:8080");
    assert_eq!(
        cfg.socks5.as_ref().map(|s| s.listen),
        Some("127.0.0.1:1080".parse().unwrap())
    );
    let http = cfg.http_proxy.as_ref().unwrap();
    assert_eq!(http.limits, HttpConnectConfig::default());

    let echo = &cfg.services[&ServiceName::parse("echo.demo").unwrap()];
    assert_eq!(echo.len(), 2);
    assert_eq!(echo[1].addr, "10.0.0.12:15008".parse().unwrap());
    assert_eq!(
        echo[0].identity.as_str(),
        "spiffe://example.org/ns/demo/sa/echo"
    );

    // The example spells out the defaults.
    assert_eq!(cfg.h2, h2::Config::default());
    assert_eq!(cfg.hub_links.route, Route::DirectFirst);
    assert_eq!(
        cfg.hub_links.registry_wait,
        warren_proto::hub::DEFAULT_REGISTRY_WAIT
    );
    let mut balance = Balancing::default();
    balance.services.insert(
        ServiceName::parse("echo.demo").unwrap(),
        Strategy::LeastFlows,
    );
    assert_eq!(cfg.balance, balance);
}

#[test]
fn a_minimal_file_gets_the_defaults() {
    let cfg = parse_str(BASE).unwrap();
    assert_eq!(cfg.hbone_listen, Some("0.0.0.0:15008".parse().unwrap()));
    assert_eq!(cfg.admin, "127.0.0.1:15000".parse().unwrap());
    assert_eq!(files(&cfg).key, Path::new("conf/k.pem"));
    assert!(cfg.exports.is_empty());
    assert!(cfg.authz.rules.is_empty());
    assert!(cfg.egress.rules.is_empty());
    assert!(cfg.tunnels.is_empty() && cfg.socks5.is_none() && cfg.http_proxy.is_none());
    assert!(cfg.services.is_empty());
    assert_eq!(cfg.h2, h2::Config::default());
    assert_eq!(cfg.balance, Balancing::default());
    assert_eq!(cfg.resumption, Resumption::default());
    assert!(cfg.resumption.enabled);
}

#[test]
fn the_tls_table_sets_resumption() {
    let cfg = parse_str(&format!(
        "{BASE}[tls]\nresumption = false\nresumption_max_age_secs = 30\nresumption_max_sessions = 8\n"
    ))
    .unwrap();
    assert_eq!(
        cfg.resumption,
        Resumption {
            enabled: false,
            max_age: Duration::from_secs(30),
            max_sessions: 8,
        }
    );
}

#[test]
fn the_node_loop_spins_up_to_100_us_unless_the_runtime_table_says_otherwise() {
    let cfg = parse_str(BASE).unwrap();
    assert_eq!(cfg.runtime.spin, Duration::from_micros(100));
    let cfg = parse_str(&format!("{BASE}[runtime]\nspin_us = 0\n")).unwrap();
    assert_eq!(cfg.runtime.spin, Duration::ZERO, "0 turns the spin off");
    let cfg = parse_str(&format!("{BASE}[runtime]\nspin_us = 50\n")).unwrap();
    assert_eq!(cfg.runtime.spin, Duration::from_micros(50));
    let cfg = parse_str(&format!("{BASE}[runtime]\nspin_us = 1000\n")).unwrap();
    assert_eq!(cfg.runtime.spin, Duration::from_millis(1));
}

#[test]
fn balance_and_route_keys_map_onto_the_node_config() {
    let cfg = parse_str(&format!(
        "{BASE}route = \"direct-only\"\n\
         [balance]\nstrategy = \"sticky\"\neject_after_failures = 3\n\
         eject_base_ms = 250\neject_max_ms = 4000\n\
         [[balance.service]]\nname = \"db.shop\"\nstrategy = \"round-robin\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.hub_links.route, Route::DirectOnly);
    assert_eq!(cfg.balance.strategy, Strategy::Sticky);
    let db = ServiceName::parse("db.shop").unwrap();
    assert_eq!(cfg.balance.strategy_for(&db), Strategy::RoundRobin);
    let other = ServiceName::parse("web.shop").unwrap();
    assert_eq!(cfg.balance.strategy_for(&other), Strategy::Sticky);
    assert_eq!(
        cfg.balance.ejection,
        Ejection {
            consecutive_failures: 3,
            base: Duration::from_millis(250),
            max: Duration::from_secs(4),
        }
    );
    assert_eq!(cfg.hub_links.registry_wait, Duration::from_secs(5));
    let cfg = parse_str(&format!("{BASE}hub_registry_wait_ms = 1500\n")).unwrap();
    assert_eq!(cfg.hub_links.registry_wait, Duration::from_millis(1500));
    for (text, route) in [
        ("hub-only", Route::HubOnly),
        ("direct-first", Route::DirectFirst),
    ] {
        let cfg = parse_str(&format!("{BASE}route = \"{text}\"\n")).unwrap();
        assert_eq!(cfg.hub_links.route, route);
    }
}

#[test]
fn exports_are_end_to_end_unless_told_otherwise() {
    let cfg = parse_str(&format!(
        "{BASE}[[export]]\nservice = \"a.demo\"\nport = 80\ntarget = \"127.0.0.1:81\"\n\
         [[export]]\nservice = \"b.demo\"\nport = 80\ntarget = \"127.0.0.1:82\"\nend_to_end = false\n\
         [[export]]\nservice = \"c.demo\"\nport = 80\ntarget = \"127.0.0.1:83\"\nend_to_end = true\n"
    ))
    .unwrap();
    assert_eq!(cfg.exports.iter().count(), 3);
    let plain: Vec<String> = cfg
        .relay_plaintext
        .iter()
        .map(|s| format!("{}:{}", s.service, s.port))
        .collect();
    assert_eq!(plain, ["b.demo:80"]);
    let summary = super::Summary(&cfg).to_string();
    assert!(summary.contains("b.demo:80 -> 127.0.0.1:82 (end_to_end = false)"));
    assert!(summary.contains("a.demo:80 -> 127.0.0.1:81\n"));
    let bad = parse_str(&format!(
        "{BASE}[[export]]\nservice = \"a.demo\"\nport = 80\ntarget = \"127.0.0.1:81\"\nend_to_end = \"no\"\n"
    ));
    assert!(bad.is_err());
}

#[test]
fn listeners_on_port_zero_never_clash() {
    let cfg = parse_str(&format!(
        "{BASE}hbone_listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [socks5]\nlisten = \"0.0.0.0:0\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.admin.port(), 0);
    assert_eq!(cfg.socks5.map(|s| s.listen.port()), Some(0));
}

#[test]
fn limits_map_onto_the_h2_config() {
    let cfg = parse_str(&format!(
        "{BASE}[limits]\nstream_window = 65536\nconnection_window = 1048576\n\
         max_frame_size = 16384\nmax_concurrent_streams = 10\nkeepalive_interval_secs = 0\n\
         keepalive_timeout_secs = 3\n"
    ))
    .unwrap();
    assert_eq!(cfg.h2.initial_stream_window, 65536);
    assert_eq!(cfg.h2.initial_connection_window, 1 << 20);
    assert_eq!(cfg.h2.max_frame_size, 16384);
    assert_eq!(cfg.h2.max_concurrent_streams, 10);
    assert_eq!(cfg.h2.keepalive_interval, None);
    assert_eq!(cfg.h2.keepalive_timeout, Duration::from_secs(3));
    assert_eq!(
        cfg.h2.max_header_list_size,
        h2::Config::default().max_header_list_size
    );
}

#[test]
fn pool_maps_onto_the_pool_config() {
    let cfg = parse_str(&format!(
        "{BASE}[pool]\nmax_connections_per_endpoint = 2\ncongestion_window = 65536\n\
         idle_timeout_secs = 5\n"
    ))
    .unwrap();
    assert_eq!(cfg.pool.max_connections_per_endpoint, 2);
    assert_eq!(cfg.pool.congestion_window, 65536);
    assert_eq!(cfg.pool.idle_timeout, Duration::from_secs(5));
    let defaults = parse_str(BASE).unwrap();
    assert_eq!(defaults.pool, warren_proto::pool::PoolConfig::default());
}

/// One malformed file: its text after [`BASE`], and the line, key and
/// message fragments its error must show.
struct Case {
    text: &'static str,
    line: usize,
    key: &'static str,
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        text: "hbone_lsten = \"0.0.0.0:15008\"\n",
        line: 2,
        key: "hbone_lsten",
        says: &["unknown field `hbone_lsten`", "did you mean `hbone_listen`?"],
    },
    Case {
        text: "[[export]]\nservice = \"echo.demo\"\nprot = 8080\ntarget = \"127.0.0.1:9000\"\n",
        line: 4,
        key: "export[0].prot",
        says: &["unknown field `prot`", "did you mean `port`?"],
    },
    Case {
        text: "[[export]]\nservice = \"echo.demo\"\nport = 70000\ntarget = \"127.0.0.1:9000\"\n",
        line: 4,
        key: "export[0].port",
        says: &["70000", "u16"],
    },
    Case {
        text: "[[export]]\nservice = \"echo.demo\"\nport = 0\ntarget = \"127.0.0.1:9000\"\n",
        line: 4,
        key: "export[0].port",
        says: &["expected 1 to 65535"],
    },
    Case {
        text: "[[export]]\nservice = \"Echo\"\nport = 1\ntarget = \"127.0.0.1:9000\"\n",
        line: 3,
        key: "export[0].service",
        says: &["\"Echo\": service must be name.namespace", "expected a service name.namespace"],
    },
    Case {
        text: "[[export]]\nservice = \"echo.demo\"\nport = 1\n",
        line: 2,
        key: "export[0]",
        says: &["missing field `target`"],
    },
    Case {
        text: "[[export]]\nservice = \"a.demo\"\nport = 1\ntarget = \"127.0.0.1:9000\"\n\
               [[export]]\nservice = \"b.demo\"\nport = 1\ntarget = \"127.0.0.1:9000\"\n",
        line: 6,
        key: "export[1]",
        says: &["127.0.0.1:9000", "expected each service port and each target once"],
    },
    Case {
        text: "[[authz.rule]]\nname = \"r\"\naction = \"deny\"\nip_blocks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
        line: 5,
        key: "authz.rule[0].ip_blocks[1]",
        says: &["\"10.0.0.0/33\"", "expected an address or network"],
    },
    Case {
        text: "[[authz.rule]]\nname = \"r\"\naction = \"permit\"\n",
        line: 4,
        key: "authz.rule[0].action",
        says: &["unknown variant `permit`, expected `allow` or `deny`"],
    },
    Case {
        text: "[[authz.rule]]\nname = \"r\"\naction = \"alow\"\n",
        line: 4,
        key: "authz.rule[0].action",
        says: &["did you mean `allow`?"],
    },
    Case {
        text: "[[authz.rule]]\nname = \"r\"\naction = \"deny\"\n\
               [[authz.rule]]\nname = \"r\"\naction = \"allow\"\n",
        line: 6,
        key: "authz.rule[1].name",
        says: &["a rule named \"r\" already exists"],
    },
    Case {
        text: "[[authz.rule]]\nname = \"has space\"\naction = \"deny\"\n",
        line: 3,
        key: "authz.rule[0].name",
        says: &["expected a rule name"],
    },
    Case {
        text: "[[authz.rule]]\nname = \"r\"\naction = \"deny\"\nservice = \"echo.demo\"\nprincipal = [\"x\"]\n",
        line: 6,
        key: "authz.rule[0].principal",
        says: &["unknown field `principal`", "did you mean `principals`?"],
    },
    Case {
        text: "[[authz.rule]]\nname = \"r\"\naction = \"deny\"\nports = [\"90-80\"]\n",
        line: 5,
        key: "authz.rule[0].ports[0]",
        says: &["\"90-80\"", "FIRST <= LAST"],
    },
    Case {
        text: "[[authz.rule]]\nname = \"r\"\naction = \"deny\"\nnot_ports = [-1]\n",
        line: 5,
        key: "authz.rule[0].not_ports[0]",
        says: &["-1 is not a port"],
    },
    Case {
        text: "[egress]\n[[egress.rule]]\nname = \"e\"\naction = \"allow\"\ndestinations = [\"ok.com\", \"*.bad*.com\"]\n",
        line: 6,
        key: "egress.rule[0].destinations[1]",
        says: &["wildcard must be the whole first label"],
    },
    Case {
        text: "[[egress.rule]]\nname = \"e\"\naction = \"allow\"\ndestinations = [\"10.0.0.300/8\"]\n",
        line: 5,
        key: "egress.rule[0].destinations[0]",
        says: &["expected a network such as"],
    },
    Case {
        text: "[[tunnel]]\nlisten = \"127.0.0.1:1\"\nto = \"echo.demo\"\n",
        line: 4,
        key: "tunnel[0].to",
        says: &["missing :port", "expected host:port"],
    },
    Case {
        text: "[[tunnel]]\nlisten = \"localhost:1\"\nto = \"echo.demo:1\"\n",
        line: 3,
        key: "tunnel[0].listen",
        says: &["not an ip:port socket address"],
    },
    Case {
        text: "[socks5]\nlisten = \"127.0.0.1:15000\"\n",
        line: 3,
        key: "socks5.listen",
        says: &["127.0.0.1:15000 overlaps the admin address 127.0.0.1:15000"],
    },
    Case {
        text: "[[tunnel]]\nlisten = \"127.0.0.1:15008\"\nto = \"echo.demo:1\"\n",
        line: 3,
        key: "tunnel[0].listen",
        says: &["overlaps the hbone_listen address 0.0.0.0:15008"],
    },
    Case {
        text: "[http_proxy]\nlisten = \"127.0.0.1:3128\"\nmax_headers = 0\n",
        line: 4,
        key: "http_proxy.max_headers",
        says: &["expected at least 1"],
    },
    Case {
        text: "[[service]]\nname = \"echo.demo\"\nendpoints = []\n",
        line: 4,
        key: "service[0].endpoints",
        says: &["no endpoints"],
    },
    Case {
        text: "[[service]]\nname = \"echo.demo\"\nendpoints = [\n  { addr = \"127.0.0.1:1\", identity = \"spiffe://x/ns/a\" },\n]\n",
        line: 5,
        key: "service[0].endpoints[0].identity",
        says: &["SPIFFE id path must be /ns/<namespace>/sa/<name>"],
    },
    Case {
        text: "[[service]]\nname = \"echo.demo\"\nendpoints = [{ addr = \"127.0.0.1:1\", identity = \"spiffe://x/ns/a/sa/b\" }]\n\
               [[service]]\nname = \"echo.demo\"\nendpoints = [{ addr = \"127.0.0.1:2\", identity = \"spiffe://x/ns/a/sa/b\" }]\n",
        line: 6,
        key: "service[1].name",
        says: &["service echo.demo is already listed"],
    },
    Case {
        text: "[hub]\nconnects_burst = 0\n",
        line: 3,
        key: "hub.connects_burst",
        says: &["0 is out of range; expected 1 to 1000000"],
    },
    Case {
        text: "[hub]\nsuspension_secs = 100000\n",
        line: 3,
        key: "hub.suspension_secs",
        says: &["100000 is out of range; expected 1 to 86400"],
    },
    Case {
        text: "hub_max_control_outbox = 1000\n",
        line: 2,
        key: "hub_max_control_outbox",
        says: &["1000 is out of range; expected 65536 to 67108864"],
    },
    Case {
        text: "[hub]\nmax_registry_entries = 0\n",
        line: 3,
        key: "hub.max_registry_entries",
        says: &["0 is out of range; expected 1 to 10000000"],
    },
    Case {
        text: "hub_registry_wait_ms = 50\n",
        line: 2,
        key: "hub_registry_wait_ms",
        says: &["50 is out of range; expected 100 to 300000"],
    },
    Case {
        text: "[limits]\nmax_frame_size = 100\n",
        line: 3,
        key: "limits.max_frame_size",
        says: &["100 is out of range; expected 16384 to 16777215"],
    },
    Case {
        text: "[limits]\nconnection_window = 1000\n",
        line: 3,
        key: "limits.connection_window",
        says: &["expected 65535 to 2147483647"],
    },
    Case {
        text: "[pool]\nmax_connections_per_endpoint = 0\n",
        line: 3,
        key: "pool.max_connections_per_endpoint",
        says: &["0 is out of range; expected 1 to 64"],
    },
    Case {
        text: "[pool]\ncongestion_window = 10\n",
        line: 3,
        key: "pool.congestion_window",
        says: &["10 is out of range; expected 1024 to 2147483647"],
    },
    Case {
        text: "[pool]\nidle_timeout_secs = 0\n",
        line: 3,
        key: "pool.idle_timeout_secs",
        says: &["0 is out of range; expected 1 to 86400"],
    },
    Case {
        text: "[tls]\nresumption_max_age_secs = 86401\n",
        line: 3,
        key: "tls.resumption_max_age_secs",
        says: &["86401 is out of range; expected 1 to 86400"],
    },
    Case {
        text: "[tls]\nresumption_max_sessions = 0\n",
        line: 3,
        key: "tls.resumption_max_sessions",
        says: &["0 is out of range; expected 1 to 1000000"],
    },
    Case {
        text: "[runtime]\nspin_us = 1001\n",
        line: 3,
        key: "runtime.spin_us",
        says: &["1001 is out of range; expected 0 to 1000"],
    },
    Case {
        text: "[tls]\nresumption = \"yes\"\n",
        line: 3,
        key: "tls.resumption",
        says: &["expected a boolean"],
    },
    Case {
        text: "[limits]\nkeepalive_timeout_secs = 0\n",
        line: 3,
        key: "limits.keepalive_timeout_secs",
        says: &["expected at least 1 second"],
    },
    Case {
        text: "route = \"direct\"\n",
        line: 2,
        key: "route",
        says: &["unknown variant `direct`", "`direct-first`, `hub-only`, `direct-only`"],
    },
    Case {
        text: "[balance]\nstrategy = \"random\"\n",
        line: 3,
        key: "balance.strategy",
        says: &["unknown variant `random`", "`round-robin`, `least-flows`, `sticky`"],
    },
    Case {
        text: "[balance]\neject_after_failures = 0\n",
        line: 3,
        key: "balance.eject_after_failures",
        says: &["expected at least 1"],
    },
    Case {
        text: "[balance]\neject_base_ms = 0\n",
        line: 3,
        key: "balance.eject_base_ms",
        says: &["ejects nothing; expected at least 1"],
    },
    Case {
        text: "[balance]\neject_base_ms = 5000\neject_max_ms = 100\n",
        line: 4,
        key: "balance.eject_max_ms",
        says: &["(100 ms) is shorter than the first (5000 ms)"],
    },
    Case {
        text: "[balance]\neject_base_ms = 120000\n",
        line: 3,
        key: "balance.eject_base_ms",
        says: &["expected eject_max_ms >= eject_base_ms"],
    },
    Case {
        text: "[[balance.service]]\nname = \"db.shop\"\nstrategy = \"sticky\"\n\
               [[balance.service]]\nname = \"db.shop\"\nstrategy = \"least-flows\"\n",
        line: 6,
        key: "balance.service[1].name",
        says: &["db.shop already has a strategy"],
    },
    Case {
        text: "[[balance.service]]\nname = \"db\"\nstrategy = \"sticky\"\n",
        line: 3,
        key: "balance.service[0].name",
        says: &["expected a service name.namespace"],
    },
    Case {
        text: "[balance]\nstrategy = \"sticky\"\nejection_ms = 5\n",
        line: 4,
        key: "balance.ejection_ms",
        says: &["unknown field `ejection_ms`"],
    },
    Case {
        text: "admin = 15000\n",
        line: 2,
        key: "admin",
        says: &["invalid type: integer `15000`", "expected an address ip:port"],
    },
    Case {
        text: "[identity]\ncert = \"again\"\n",
        line: 2,
        key: "",
        says: &["duplicate key"],
    },
];

#[test]
fn malformed_files_name_the_line_the_key_and_what_was_expected() {
    for case in CASES {
        let text = format!("{BASE}{}", case.text);
        let err = match parse_str(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.line, case.line, "{shown}\n---\n{text}");
        assert_eq!(err.key, case.key, "{shown}\n---\n{text}");
        assert_eq!(err.file, Path::new("conf/agent.toml"));
        for fragment in case.says {
            assert!(shown.contains(fragment), "{shown:?} lacks {fragment:?}");
        }
        let prefix = if case.key.is_empty() {
            format!("conf/agent.toml:{}:", case.line)
        } else {
            format!(
                "conf/agent.toml:{}:{}: `{}`: ",
                case.line, err.column, case.key
            )
        };
        assert!(
            shown.starts_with(&prefix),
            "{shown:?} does not start with {prefix:?}"
        );
    }
}

#[test]
fn a_missing_identity_section_is_reported_for_the_document() {
    let err = parse_str("admin = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(err.message.contains("no identity"), "{err}");
    assert!(err.message.contains("--ticket FILE"), "{err}");
    assert_eq!(err.key, "");
}

#[test]
fn an_unreadable_file_names_the_file() {
    let err = load(Path::new("/nonexistent/warren/agent.toml")).unwrap_err();
    assert_eq!(err.line, 0);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/warren/agent.toml: cannot read:"),
        "{err}"
    );
}

/// Up to four one-byte edits (replace or insert) of the example, at any
/// place, with bytes that matter to TOML.
fn edit_example(edits: &[(u16, u8)]) -> Option<String> {
    const BYTES: &[u8] = b" \n=\"'[]{},.#abc0123456789-_*:/";
    let mut bytes = EXAMPLE.as_bytes().to_vec();
    for &(pos, pick) in edits.iter().take(4) {
        let at = usize::from(pos) % (bytes.len() + 1);
        let byte = BYTES[usize::from(pick) % BYTES.len()];
        if pick & 0x80 == 0 && at < bytes.len() {
            bytes[at] = byte;
        } else {
            bytes.insert(at, byte);
        }
    }
    String::from_utf8(bytes).ok()
}

#[test]
fn any_small_edit_of_the_example_parses_or_is_reported_inside_the_file() {
    fn prop(edits: Vec<(u16, u8)>) -> TestResult {
        let Some(text) = edit_example(&edits) else {
            return TestResult::discard();
        };
        match parse(&text, Path::new("a.toml")) {
            Ok(_) => TestResult::passed(),
            Err(e) => {
                let lines = text.split('\n').count();
                let line = text.split('\n').nth(e.line.saturating_sub(1)).unwrap_or("");
                let top_key = e.key.split(['.', '[']).next().unwrap_or("");
                TestResult::from_bool(
                    (1..=lines).contains(&e.line)
                        && (1..=line.chars().count() + 1).contains(&e.column)
                        && !e.message.is_empty()
                        && text.contains(top_key),
                )
            }
        }
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<(u16, u8)>) -> TestResult);
}

#[test]
fn identity_paths_resolve_against_the_files_folder_unless_absolute() {
    let cfg = parse(
        "identity = { cert = \"/etc/warren/cert.pem\", key = \"k.pem\", ca = \"../ca.pem\" }\n",
        Path::new("/srv/agent/agent.toml"),
    )
    .unwrap();
    assert_eq!(files(&cfg).cert, Path::new("/etc/warren/cert.pem"));
    assert_eq!(files(&cfg).key, Path::new("/srv/agent/k.pem"));
    assert_eq!(files(&cfg).ca, Path::new("/srv/agent/../ca.pem"));
    // A bare file name sits beside the working directory's files.
    let cfg = parse(BASE, Path::new("agent.toml")).unwrap();
    assert_eq!(files(&cfg).cert, Path::new("c.pem"));
    let err = parse_str("[identity]\ncert = \"c\"\nkey = \"\"\nca = \"a\"\n").unwrap_err();
    assert_eq!((err.line, err.key.as_str()), (3, "identity.key"), "{err}");
    assert!(err.message.contains("empty file name"), "{err}");
}

#[test]
fn the_identity_is_files_or_a_ticket_never_both() {
    let file = Path::new("/srv/agent/agent.toml");
    let ticket = Path::new("join.ticket");
    let cfg = parse("identity = { ticket = \"me.ticket\" }\n", file).unwrap();
    assert_eq!(
        cfg.identity,
        IdentitySource::Ticket("/srv/agent/me.ticket".into())
    );
    // The command line's ticket stands in for a missing [identity].
    let cfg = parse_with_ticket("admin = \"127.0.0.1:1\"\n", file, Some(ticket)).unwrap();
    assert_eq!(cfg.identity, IdentitySource::Ticket(ticket.into()));

    let both = parse_with_ticket(BASE, file, Some(ticket)).unwrap_err();
    assert_eq!((both.line, both.key.as_str()), (1, "identity"), "{both}");
    assert!(both.message.contains("given twice"), "{both}");
    assert!(both.message.contains("--ticket join.ticket"), "{both}");

    let mixed = parse_str("[identity]\nticket = \"t\"\nkey = \"k.pem\"\n").unwrap_err();
    assert_eq!(
        (mixed.line, mixed.key.as_str()),
        (3, "identity.key"),
        "{mixed}"
    );
    assert!(mixed.message.contains("either ticket or cert"), "{mixed}");

    let partial = parse_str("[identity]\ncert = \"c\"\nkey = \"k\"\n").unwrap_err();
    assert!(
        partial.message.contains("missing `identity.ca`"),
        "{partial}"
    );

    let empty = parse_str("[identity]\nticket = \"\"\n").unwrap_err();
    assert!(empty.message.contains("a join ticket"), "{empty}");
}

#[test]
fn the_hub_table_sets_per_agent_limits_and_defaults_the_rest() {
    use warren_proto::hub::{AgentLimits, Rate};
    let text = format!(
        "{BASE}[hub]\nconnects_per_second = 50\nconnects_burst = 80\n\
         control_messages_per_second = 2\nmax_offences = 7\nsuspension_secs = 120\n\
         max_control_frame = 131072\n"
    );
    let hub = parse_str(&text).unwrap().hub.unwrap();
    let d = AgentLimits::default();
    assert_eq!(
        hub.limits,
        AgentLimits {
            connects: Rate {
                per_second: 50,
                burst: 80
            },
            control_messages: Rate {
                per_second: 2,
                burst: d.control_messages.burst
            },
            max_offences: 7,
            offence_window: d.offence_window,
            suspension: Duration::from_secs(120),
        }
    );
    assert_eq!(hub.max_control_frame, 131_072);
    let plain = parse_str(&format!("{BASE}[hub]\n")).unwrap().hub.unwrap();
    assert_eq!(plain.limits, d);
    assert_eq!(plain.max_control_outbox, 1 << 20);
    assert_eq!(plain.max_registry_entries, 65_536);
}

#[test]
fn control_outbox_and_registry_bounds_are_keys_on_hubs_and_agents() {
    let text = format!(
        "{BASE}hub_max_control_outbox = 262144\nhub_max_registry_entries = 5000\n\
         [hub]\nmax_control_outbox = 4194304\nmax_registry_entries = 2000\n"
    );
    let cfg = parse_str(&text).unwrap();
    assert_eq!(cfg.hub_links.max_control_outbox, 262_144);
    assert_eq!(cfg.hub_links.max_registry_entries, 5000);
    let hub = cfg.hub.unwrap();
    assert_eq!(hub.max_control_outbox, 4 << 20);
    assert_eq!(hub.max_registry_entries, 2000);
    let plain = parse_str(BASE).unwrap();
    assert_eq!(plain.hub_links.max_control_outbox, 1 << 20);
    assert_eq!(plain.hub_links.max_registry_entries, 65_536);
}
