//! Agents that join with nothing but a join ticket naming a hub: they dial
//! it, verify its identity against the ticket's hub identities (by default
//! `spiffe://<trust-domain>/ns/mesh/sa/hub*`) without a `hub_identities`
//! line anywhere, refuse a mesh certificate that is not a hub's, and open
//! no HBONE port of their own.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::hub_mesh::{curl_until_ok, listening_ports, CLIENT, SERVER};
use support::two_agents::http_server;
use support::{curl, free_port, identity_toml, issue_pki, ok, start_ready, TempDir};

/// The hub's identity: matches the tickets' default hub pattern.
const HUB: &str = "spiffe://test.warren/ns/mesh/sa/hub1";
/// A valid mesh identity that is not a hub's.
const IMPOSTOR: &str = "spiffe://test.warren/ns/web/sa/hub1";

/// A hub configuration with the certificate in `folder`.
fn hub_toml(dir: &Path, name: &str, folder: &str, port: u16, admin: u16) {
    let text = format!(
        r#"hbone_listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin}"
{identity}[hub]
[[hub.announce]]
principals = ["*"]
services = ["own-namespace"]
"#,
        identity = identity_toml(folder)
    );
    std::fs::write(dir.join(name), text).unwrap();
}

fn agents_from_tickets_verify_their_hub(runtime: &str) {
    let dir = TempDir::new(&format!("hub-tickets-{runtime}"));
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    issue_pki(dir.path(), "ca", &[(HUB, "hub"), (IMPOSTOR, "impostor")]);
    let (port, hub_admin, impostor_admin) = (free_port(), free_port(), free_port());
    let hub_addr = format!("127.0.0.1:{port}");
    for (id, out) in [(CLIENT, "a.ticket"), (SERVER, "b.ticket")] {
        let (ca, out) = (d("ca"), d(out));
        ok(&[
            "ca", "ticket", "--ca", &ca, "--id", id, "--out", &out, "--hub", &hub_addr,
        ]);
    }
    hub_toml(dir.path(), "hub.toml", "hub", port, hub_admin);
    hub_toml(
        dir.path(),
        "impostor.toml",
        "impostor",
        port,
        impostor_admin,
    );
    let (a_admin, socks, b_admin) = (free_port(), free_port(), free_port());
    let web = http_server("B");
    // Neither file names hubs, hub identities or an HBONE listener.
    std::fs::write(
        d("a.toml"),
        format!("admin = \"127.0.0.1:{a_admin}\"\n[socks5]\nlisten = \"127.0.0.1:{socks}\"\n"),
    )
    .unwrap();
    std::fs::write(
        d("b.toml"),
        format!(
            "admin = \"127.0.0.1:{b_admin}\"\n[[export]]\nservice = \"web.demo\"\nport = 80\ntarget = \"127.0.0.1:{web}\"\n"
        ),
    )
    .unwrap();
    let start = |command: &str, args: &[&str]| {
        start_ready(&[&[command], args, &["--runtime", runtime]].concat())
    };

    // A mesh identity that is not a hub's holds the hub's address: the
    // agents refuse it, handshake after handshake.
    let impostor = start("hub", &["--config", &d("impostor.toml")]);
    let (a_ticket, b_ticket) = (d("a.ticket"), d("b.ticket"));
    let b = start("agent", &["--config", &d("b.toml"), "--ticket", &b_ticket]);
    let a = start("agent", &["--config", &d("a.toml"), "--ticket", &a_ticket]);
    let refused = format!("link down hub={hub_addr} kind=forward failures=2");
    a.wait_stderr(&refused);
    b.wait_stderr(&refused);
    assert!(!a.stderr().contains("link up"), "{}", a.stderr());
    assert!(!b.stderr().contains("link up"), "{}", b.stderr());
    let socks_addr = format!("127.0.0.1:{socks}");
    let out = curl(&["--socks5-hostname", &socks_addr, "http://web.demo:80/"]);
    assert!(!out.status.success(), "{out:?}");
    drop(impostor);

    // The real hub on the same address: both agents verify it and meet.
    let hub = start("hub", &["--config", &d("hub.toml")]);
    let up = format!("link up hub={hub_addr} kind=forward peer={HUB}");
    a.wait_stderr(&up);
    b.wait_stderr(&up);
    hub.wait_stderr(&format!("announced {SERVER} "));
    let body = curl_until_ok(socks, "http://web.demo:80/joined-by-ticket");
    assert_eq!(body, "B: GET /joined-by-ticket\n");
    b.wait_stderr(&format!("source={CLIENT}"));
    // The ticket's hub made B dial out only: its admin port is all it
    // listens on.
    assert_eq!(listening_ports(b.pid()), BTreeSet::from([b_admin]));
}

#[test]
fn agents_from_tickets_verify_their_hub_on_tokio() {
    agents_from_tickets_verify_their_hub("tokio");
}

#[test]
fn agents_from_tickets_verify_their_hub_on_smol() {
    agents_from_tickets_verify_their_hub("smol");
}
