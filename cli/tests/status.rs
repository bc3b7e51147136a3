//! `warren status` when no agent answers: one line that says where it
//! looked and what to check, exit code 1.

mod support;

use support::{free_port, hub_links_toml, identity_toml, warren, write};

#[test]
fn status_without_an_agent_says_where_it_looked() {
    let admin = format!("127.0.0.1:{}", free_port());
    let out = warren()
        .args(["status", "--admin", &admin])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "warren: no agent answering at {admin}: connection refused; \
             is `warren agent` running with admin = \"{admin}\"?"
        )
    );
}

/// `warren status --admin ADMIN` once `want` shows in it (the links come
/// up a moment after the processes say ready).
fn status_showing(admin: u16, want: &str) -> String {
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let out = warren()
            .args(["status", "--admin", &format!("127.0.0.1:{admin}")])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        if shown.contains(want) {
            return shown;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {want:?} in\n{shown}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An agent's status shows its hub (address, both connections, registry);
/// the hub's shows its agents, registry, relays and refusals.
#[test]
fn status_shows_hub_links_on_an_agent_and_the_hub_itself() {
    let dir = support::TempDir::new("status-hub");
    let hub_id = "spiffe://test.warren/ns/mesh/sa/hub";
    let server = "spiffe://test.warren/ns/demo/sa/server";
    support::issue_pki(dir.path(), "ca", &[(hub_id, "h"), (server, "b")]);
    let target = support::echo_server();
    let (hub_port, hub_admin, b_admin) = (free_port(), free_port(), free_port());
    write(
        &dir.path().join("hub.toml"),
        &format!(
            r#"hbone_listen = "127.0.0.1:{hub_port}"
admin = "127.0.0.1:{hub_admin}"
{identity}[hub]
connects_per_second = 50
[[hub.announce]]
principals = ["*"]
services = ["own-namespace"]
"#,
            identity = identity_toml("h")
        ),
    );
    write(
        &dir.path().join("b.toml"),
        &format!(
            r#"admin = "127.0.0.1:{b_admin}"
{links}{identity}[[export]]
service = "echo.demo"
port = 8080
target = "127.0.0.1:{target}"
"#,
            identity = identity_toml("b"),
            links = hub_links_toml(hub_port, hub_id),
        ),
    );
    let start = |command: &str, file: &str| {
        let path = dir.path().join(file);
        support::start_ready(&[command, "--config", path.to_str().unwrap()])
    };
    let _hub = start("hub", "hub.toml");
    let _b = start("agent", "b.toml");
    let agent = status_showing(b_admin, "1 entries");
    let line = format!("  127.0.0.1:{hub_port}");
    let hub_line = agent
        .lines()
        .find(|l| l.starts_with(&line))
        .unwrap_or_else(|| panic!("no hub line in\n{agent}"));
    assert!(
        hub_line.contains("forward up, reverse up; registry epoch "),
        "{hub_line}"
    );
    let hub = status_showing(hub_admin, "hub        1 agents");
    assert!(
        hub.contains(
            "hub        1 agents (2 connections); registry epoch 1, 1 entries; 0 relays; 0 refusals, 0 suspended"
        ),
        "{hub}"
    );
    // The same numbers on the hub's /metrics.
    let text = support::two_agents::admin_get(hub_admin, "/metrics");
    let samples = support::prometheus::parse(&text).unwrap();
    let value = |name: &str| support::prometheus::sum(&samples, name, &[]);
    assert_eq!(value("warren_hub_agents"), 1.0, "{text}");
    assert_eq!(value("warren_hub_registry_entries"), 1.0, "{text}");
    assert_eq!(value("warren_hub_relays"), 0.0, "{text}");
}
