//! A real `warren agent` against an independent HBONE peer
//! (`warren_interop::hbone_peer`: the `h2` crate over tokio-rustls, with
//! its own SPIFFE check), in both directions, on tokio and on smol:
//! - peer → agent: CONNECT `echo.test:7` round-trips bytes (0 B to 1 MiB);
//!   a denied client gets 401 and the agent logs the rule; an unknown
//!   service gets 503; a client from another CA is refused;
//! - agent → peer: the agent's tunnel reaches the peer server, which checks
//!   the agent's SPIFFE id and echoes; a peer answering 401 makes the HTTP
//!   proxy answer 403 and the tunnel close without a byte; a server from
//!   another CA is refused, and so is the agent by a server trusting
//!   another CA.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use bytes::Bytes;
use support::two_agents::{exchange_on, pattern};
use support::{echo_server, free_port, identity_toml, issue_pki, warren, Running, TempDir, WAIT};
use tokio::runtime::Runtime;
use warren_interop::hbone_peer::{
    Answer, PeerClient, PeerError, PeerIdentity, PeerServer, PeerTunnel, Seen,
};

const AGENT: &str = "spiffe://test.warren/ns/app/sa/agent";
const PEER: &str = "spiffe://test.warren/ns/web/sa/peer";
const STRANGER: &str = "spiffe://test.warren/ns/web/sa/stranger";

/// The certificates: one mesh CA with the agent, the peer and a stranger;
/// a second CA (same trust domain name) that issued another "peer".
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = TempDir::new(name);
        let pki = Pki { dir };
        issue_pki(
            pki.dir.path(),
            "ca",
            &[(AGENT, "agent"), (PEER, "peer"), (STRANGER, "stranger")],
        );
        issue_pki(pki.dir.path(), "other-ca", &[(PEER, "forged")]);
        pki
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// The identity `warren ca issue` wrote to `name`.
    fn identity(&self, name: &str) -> PeerIdentity {
        PeerIdentity::from_dir(Path::new(&self.path(name))).unwrap()
    }
}

/// Starts `warren agent` with `config` on `runtime`; waits until ready.
fn agent(pki: &Pki, runtime: &str, config: &str) -> Running {
    let file = pki.dir.path().join("agent.toml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = warren();
    cmd.args([
        "agent",
        "--config",
        file.to_str().unwrap(),
        "--runtime",
        runtime,
    ]);
    let agent = Running::start(cmd);
    // " ready ": "Address already in use" contains "ready".
    agent.wait_stderr(" ready ");
    agent
}

/// The agent's identity and HBONE listener, plus what it exports.
fn identity_and_listen(hbone: u16) -> String {
    format!(
        r#"hbone_listen = "127.0.0.1:{hbone}"
admin = "127.0.0.1:{admin}"
{identity}"#,
        identity = identity_toml("agent"),
        admin = free_port()
    )
}

/// Connects the peer client to the agent, requiring the agent's id.
async fn dial(client: &PeerClient, hbone: u16) -> Result<PeerTunnel, PeerError> {
    let addr: SocketAddr = ([127, 0, 0, 1], hbone).into();
    client.connect(addr, AGENT).await
}

fn peer_to_agent(runtime: &str) {
    let pki = Pki::new(&format!("peer-to-agent-{runtime}"));
    let hbone = free_port();
    let echo = echo_server();
    let config = format!(
        r#"{}[[export]]
service = "echo.test"
port = 7
target = "127.0.0.1:{echo}"
[[authz.rule]]
name = "strangers-stay-out"
action = "deny"
service = "echo.test"
principals = ["{STRANGER}"]
"#,
        identity_and_listen(hbone)
    );
    let agent = agent(&pki, runtime, &config);
    let rt = Runtime::new().unwrap();

    // The peer client reaches the export; every byte comes back in order.
    let client = PeerClient::new(&pki.identity("peer")).unwrap();
    let mut tunnel = rt.block_on(dial(&client, hbone)).unwrap();
    assert_eq!(tunnel.server_id(), AGENT);
    let mut total = 0;
    for size in [0, 1, 16_384, 100_000, 1 << 20] {
        let data = pattern(size);
        let (status, got) = rt
            .block_on(tunnel.exchange("echo.test:7", Bytes::from(data.clone())))
            .unwrap();
        assert_eq!(status, 200, "size {size}");
        assert_eq!(got.len(), size);
        assert!(got == data, "echoed bytes differ at size {size}");
        total += size;
    }
    // One access line per flow, naming the peer; the 1 MiB one counts it.
    agent.wait_stderr("=1048576");
    let log = agent.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("access flow closed") && l.contains("=1048576"))
        .unwrap_or_else(|| panic!("no access line for the 1 MiB flow:\n{log}"));
    assert!(
        line.contains(&format!("source={PEER}")) && line.contains("service=echo.test"),
        "{line}"
    );
    assert_eq!(
        log.matches("access flow closed").count(),
        5,
        "one access line per flow (total {total} bytes):\n{log}"
    );

    // An unknown service: 503, on the same connection.
    let (status, got) = rt
        .block_on(tunnel.exchange("nothing.test:7", Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!((status, got.len()), (503, 0));

    // A mesh identity the policy denies: 401 and a log line with the rule.
    let stranger = PeerClient::new(&pki.identity("stranger")).unwrap();
    let mut denied = rt.block_on(dial(&stranger, hbone)).unwrap();
    let (status, got) = rt
        .block_on(denied.exchange("echo.test:7", Bytes::from_static(b"secret")))
        .unwrap();
    assert_eq!((status, got.len()), (401, 0));
    agent.wait_stderr("rule=strangers-stay-out");
    let log = agent.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("rule=strangers-stay-out"))
        .unwrap();
    assert!(
        line.contains("policy denied") && line.contains(STRANGER),
        "{line}"
    );

    // A client whose certificate another CA signed never gets a stream.
    let forged = pki
        .identity("forged")
        .trusting(Path::new(&pki.path("ca/ca.pem")))
        .unwrap();
    let forged = PeerClient::new(&forged).unwrap();
    let result = rt.block_on(async {
        let mut tunnel = dial(&forged, hbone).await?;
        tunnel
            .exchange("echo.test:7", Bytes::from_static(b"x"))
            .await
    });
    assert!(result.is_err(), "{result:?}");
    agent.wait_stderr("handshake failed");

    // The peer refuses an agent it cannot chain to its own CA.
    let wary = pki
        .identity("peer")
        .trusting(Path::new(&pki.path("other-ca/ca.pem")))
        .unwrap();
    let wary = PeerClient::new(&wary).unwrap();
    match rt.block_on(dial(&wary, hbone)) {
        Err(PeerError::Tls(_)) => {}
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// Waits for the next thing the peer server saw.
fn next_seen(server: &PeerServer) -> Seen {
    server
        .seen()
        .recv_timeout(WAIT)
        .expect("the peer server saw nothing")
}

fn agent_to_peer(runtime: &str) {
    let pki = Pki::new(&format!("agent-to-peer-{runtime}"));
    let rt = Runtime::new().unwrap();
    let start =
        |identity: PeerIdentity, answer| rt.block_on(PeerServer::start(&identity, answer)).unwrap();
    let welcoming = start(pki.identity("peer"), Answer::EchoFor(vec![AGENT.into()]));
    let refusing = start(pki.identity("peer"), Answer::EchoFor(vec![STRANGER.into()]));
    let forged = start(pki.identity("forged"), Answer::EchoFor(vec![AGENT.into()]));
    let wary = start(
        pki.identity("peer")
            .trusting(Path::new(&pki.path("other-ca/ca.pem")))
            .unwrap(),
        Answer::EchoFor(vec![AGENT.into()]),
    );
    let servers = [&welcoming, &refusing, &forged, &wary];
    let names = ["welcoming", "refusing", "forged", "wary"];
    let tunnels: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let proxy = free_port();
    let mut config = identity_and_listen(free_port());
    for ((name, server), tunnel) in names.iter().zip(servers).zip(&tunnels) {
        config.push_str(&format!(
            r#"[[tunnel]]
listen = "127.0.0.1:{tunnel}"
to = "{name}.test:9"
[[service]]
name = "{name}.test"
endpoints = [{{ addr = "{}", identity = "{PEER}" }}]
"#,
            server.addr()
        ));
    }
    config.push_str(&format!("[http_proxy]\nlisten = \"127.0.0.1:{proxy}\"\n"));
    let agent = agent(&pki, runtime, &config);

    // The agent's tunnel reaches the peer, which sees the agent's id.
    let data = pattern(1 << 20);
    let mut conn = TcpStream::connect(("127.0.0.1", tunnels[0])).unwrap();
    let got = exchange_on(&mut conn, &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echoed bytes differ");
    assert_eq!(
        next_seen(&welcoming),
        Seen::Connect {
            client: AGENT.into(),
            authority: "welcoming.test:9".into(),
            status: 200
        }
    );
    assert_eq!(next_seen(&welcoming), Seen::Echoed(1 << 20));

    // The peer answers 401: the tunnel closes without a byte, and the HTTP
    // proxy answers 403 naming the remote policy.
    let mut conn = TcpStream::connect(("127.0.0.1", tunnels[1])).unwrap();
    assert_eq!(exchange_on(&mut conn, b"hello"), b"");
    assert_eq!(
        next_seen(&refusing),
        Seen::Connect {
            client: AGENT.into(),
            authority: "refusing.test:9".into(),
            status: 401
        }
    );
    let mut conn = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    let answer = exchange_on(
        &mut conn,
        b"CONNECT refusing.test:9 HTTP/1.1\r\nHost: refusing.test:9\r\n\r\n",
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("remote policy"), "{answer}");
    agent.wait_stderr("status=401");

    // A server whose certificate another CA signed: the agent refuses it,
    // and the flow closes without a byte.
    let mut conn = TcpStream::connect(("127.0.0.1", tunnels[2])).unwrap();
    assert_eq!(exchange_on(&mut conn, b"hello"), b"");
    agent.wait_stderr("handshake failed");
    match next_seen(&forged) {
        Seen::Rejected(why) => assert!(why.contains("tls"), "{why}"),
        other => panic!("the forged server was accepted: {other:?}"),
    }

    // A server that trusts another CA refuses the agent.
    let mut conn = TcpStream::connect(("127.0.0.1", tunnels[3])).unwrap();
    assert_eq!(exchange_on(&mut conn, b"hello"), b"");
    match next_seen(&wary) {
        Seen::Rejected(why) => assert!(why.contains("tls"), "{why}"),
        other => panic!("the wary server accepted: {other:?}"),
    }
}

#[test]
fn peer_client_to_agent_on_tokio() {
    peer_to_agent("tokio");
}

#[test]
fn peer_client_to_agent_on_smol() {
    peer_to_agent("smol");
}

#[test]
fn agent_to_peer_server_on_tokio() {
    agent_to_peer("tokio");
}

#[test]
fn agent_to_peer_server_on_smol() {
    agent_to_peer("smol");
}
