//! Three network namespaces — hub, A, B — where A and B each have one veth
//! link to the hub's namespace and nothing else (the hub does not forward
//! packets): B listens on nothing but its admin port, curl in A's
//! namespace reaches B's HTTP service through A's SOCKS5 proxy and the hub,
//! and A cannot open a TCP connection to B at all.
//!
//! Needs root (or CAP_SYS_ADMIN) and iproute2; without them the tests say
//! so in one line and pass without running.

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::sync::Once;
use std::time::{Duration, Instant};

use support::hub_mesh::{listening_ports, Backends, HubMesh, CLIENT, SERVER};
use support::netns::{inside, Namespaces};
use support::two_agents::{echo_server, http_server};
use support::WAIT;

/// A's and B's links: A is 10.77.1.2, B 10.77.2.2, the hub .1 on each.
const A_NET: (&str, &str) = ("10.77.1.2/24", "10.77.1.1/24");
const B_NET: (&str, &str) = ("10.77.2.2/24", "10.77.2.1/24");
const HUB_FOR_A: &str = "10.77.1.1";
const HUB_FOR_B: &str = "10.77.2.1";
const B_ADDR: &str = "10.77.2.2";

fn b_is_reached_only_through_the_hub(runtime: &str) {
    // scripts/test-all.sh removes `warren-t<pid>...` namespaces whose
    // process is gone, should a test be killed before its guard ran.
    let tag = format!("warren-t{}{}", std::process::id(), &runtime[..1]);
    let (hub_ns, a_ns, b_ns) = (format!("{tag}-hub"), format!("{tag}-a"), format!("{tag}-b"));
    // Dropped last: every process below is gone before its namespace.
    let spaces = match Namespaces::create(&[hub_ns.clone(), a_ns.clone(), b_ns.clone()]) {
        Ok(spaces) => spaces,
        Err(why) => {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                eprintln!("SKIPPED the network namespace tests: {why}; they need root (CAP_SYS_ADMIN) and iproute2");
            });
            return;
        }
    };
    spaces.link((&a_ns, "va", A_NET.0), (&hub_ns, "ha", A_NET.1));
    spaces.link((&b_ns, "vb", B_NET.0), (&hub_ns, "hb", B_NET.1));
    // Everything off-link goes to the hub, as behind a NAT gateway; the hub
    // namespace does not forward, so nothing gets further.
    spaces.ip(&a_ns, &["route", "add", "default", "via", HUB_FOR_A]);
    spaces.ip(&b_ns, &["route", "add", "default", "via", HUB_FOR_B]);

    // B's services listen on B's loopback, inside B's namespace.
    let backends = inside(&b_ns, || Backends {
        web: http_server("B"),
        echo: echo_server(),
        replica_echo: echo_server(),
    });
    let mesh = HubMesh::new("netns", runtime, 1, backends);
    let port = mesh.hubs[0].0;
    mesh.write_configs(
        "0.0.0.0",
        &[format!("{HUB_FOR_A}:{port}")],
        &[format!("{HUB_FOR_B}:{port}")],
    );
    let hub = mesh.start_in("hub", "hub1.toml", Some(&hub_ns));
    let b = mesh.start_in("agent", "b.toml", Some(&b_ns));
    let a = mesh.start_in("agent", "a.toml", Some(&a_ns));
    hub.wait_stderr(&format!("announced {SERVER} "));
    a.wait_stderr(&format!("link up hub={HUB_FOR_A}:{port} kind=forward"));

    // curl in A's namespace, through A's SOCKS5 proxy and the hub.
    let socks = format!("127.0.0.1:{}", mesh.socks);
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let out = spaces.exec(
            &a_ns,
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--socks5-hostname",
                &socks,
                "http://web.demo:80/from-a",
            ],
        );
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "curl in {a_ns} never worked: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body, "B: GET /from-a\n");
    // B served it knowing A's identity (relayed as it is, or inside an
    // end-to-end session between A and B).
    b.wait_stderr(&format!("direction=inbound source={CLIENT}"));

    // B listens on its admin port and nothing else.
    assert_eq!(listening_ports(b.pid()), BTreeSet::from([mesh.b_admin]));
    // From A's namespace B cannot be reached directly, on its admin port
    // or its service's. (A refused or unanswered SYN:
    // either way no connection; the bound only ends the wait.)
    for port in [mesh.b_admin, mesh.backends.web] {
        let to: SocketAddr = format!("{B_ADDR}:{port}").parse().unwrap();
        let direct = inside(&a_ns, || {
            TcpStream::connect_timeout(&to, Duration::from_secs(1))
        });
        assert!(direct.is_err(), "{a_ns} reached B at {to} directly");
    }
    // Nor from the hub's namespace through B's admin address: B accepts
    // nothing from outside.
    let to: SocketAddr = format!("{B_ADDR}:{}", mesh.b_admin).parse().unwrap();
    let from_hub = inside(&hub_ns, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(1))
    });
    assert!(from_hub.is_err(), "the hub's namespace reached B at {to}");
    drop((a, b, hub));
}

#[test]
fn b_is_reached_only_through_the_hub_on_tokio() {
    b_is_reached_only_through_the_hub("tokio");
}

#[test]
fn b_is_reached_only_through_the_hub_on_smol() {
    b_is_reached_only_through_the_hub("smol");
}
