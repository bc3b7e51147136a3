//! `Net::connect_result_now`: a connect from a host to itself is known at
//! once (connected if something listens, refused if not) and is then never
//! reported again as an event; any other connect is not known at once.

mod common;

use common::{drain, received_by, run_quiet, two_hosts};
use warren_sim::net::{ConnectError, NetConfig, NetEvent};

#[test]
fn a_connect_to_a_local_listener_is_established_at_once() {
    let (mut net, a, _) = two_hosts(1, NetConfig::default());
    let listener = net.listen_on(a, "127.0.0.1:8080".parse().unwrap()).unwrap();
    let client = net.connect(a, "127.0.0.1:8080".parse().unwrap()).unwrap();
    assert_eq!(net.connect_result_now(client), Some(Ok(())));
    // Asked again: the answer was given.
    assert_eq!(net.connect_result_now(client), None);
    // The connection is up: the client writes in the same turn.
    assert_eq!(net.write(client, b"hello"), Ok(5));
    let log = run_quiet(&mut net);
    let accepted = log.iter().find_map(|(h, e)| match e {
        NetEvent::Accepted {
            listener: l, sock, ..
        } if *h == a && *l == listener => Some(*sock),
        _ => None,
    });
    assert!(accepted.is_some(), "the listener accepted: {log:?}");
    assert!(
        !log.iter()
            .any(|(_, e)| matches!(e, NetEvent::Connected { .. })),
        "no Connected event after the answer: {log:?}"
    );
    assert_eq!(received_by(&log, a), b"hello");
}

#[test]
fn a_connect_to_a_local_port_without_listener_is_refused_at_once() {
    let (mut net, a, _) = two_hosts(2, NetConfig::default());
    let client = net.connect(a, "127.0.0.1:8081".parse().unwrap()).unwrap();
    assert_eq!(
        net.connect_result_now(client),
        Some(Err(ConnectError::Refused))
    );
    assert_eq!(run_quiet(&mut net), vec![]);
    assert_eq!(net.open_connections(), 0);
}

#[test]
fn a_connect_to_another_host_is_not_known_at_once() {
    let (mut net, a, b) = two_hosts(3, NetConfig::default());
    net.listen(b, 80).unwrap();
    let client = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    assert_eq!(net.connect_result_now(client), None);
    assert!(drain(&mut net).is_empty());
    let log = run_quiet(&mut net);
    assert!(log.contains(&(
        a,
        NetEvent::Connected {
            sock: client,
            result: Ok(())
        }
    )));
}
