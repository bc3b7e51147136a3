//! Connection life cycle: connect, refuse, half-close each way, reset,
//! and backpressure from a paused reader.

mod common;

use common::{drain, received_by, run_quiet, two_hosts};
use warren_sim::app::fill_stream;
use warren_sim::net::{ConnectError, HostId, Net, NetConfig, NetError, NetEvent, SocketId};

/// Connects host `a` to a listener on `b`:80; returns (client, server)
/// sockets once both sides know.
fn connected_pair(net: &mut Net, a: HostId, b: HostId) -> (SocketId, SocketId) {
    let listener = net.listen(b, 80).unwrap();
    let client = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    assert_eq!(net.write(client, b"x"), Err(NetError::NotConnected));
    let log = run_quiet(net);
    let mut server = None;
    let mut connected = false;
    for (h, ev) in log {
        match ev {
            NetEvent::Accepted {
                listener: l,
                sock,
                peer,
            } => {
                assert_eq!((h, l), (b, listener));
                assert_eq!(Some(peer), net.local_addr(client));
                server = Some(sock);
            }
            NetEvent::Connected { sock, result } => {
                assert_eq!((h, sock, result), (a, client, Ok(())));
                connected = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(connected);
    let server = server.expect("no accept");
    assert_eq!(net.peer_addr(server), net.local_addr(client));
    assert_eq!(net.socket_host(server), Some(b));
    (client, server)
}

fn stream(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_stream(seed, 0, &mut v);
    v
}

fn has(log: &[(HostId, NetEvent)], host: HostId, ev: NetEvent) -> bool {
    log.iter().any(|(h, e)| *h == host && *e == ev)
}

#[test]
fn connect_without_listener_is_refused() {
    let (mut net, a, _b) = two_hosts(1, NetConfig::default());
    let sock = net.connect(a, "10.0.0.2:81".parse().unwrap()).unwrap();
    let log = run_quiet(&mut net);
    assert_eq!(
        log,
        vec![(
            a,
            NetEvent::Connected {
                sock,
                result: Err(ConnectError::Refused)
            }
        )]
    );
    assert_eq!(net.open_connections(), 0);
    assert_eq!(net.write(sock, b"x"), Err(NetError::UnknownSocket));
}

#[test]
fn client_half_closes_first_and_server_keeps_sending() {
    let (mut net, a, b) = two_hosts(2, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    let up = stream(1, 50_000);
    assert_eq!(net.write(c, &up), Ok(up.len()));
    net.shutdown_write(c).unwrap();
    assert_eq!(net.write(c, b"late"), Err(NetError::WriteShutdown));
    let log = run_quiet(&mut net);
    assert_eq!(received_by(&log, b), up);
    assert_eq!(log.last(), Some(&(b, NetEvent::ReadClosed { sock: s })));
    // Half-open: the server still sends, the client still reads.
    let down = stream(2, 30_000);
    assert_eq!(net.write(s, &down), Ok(down.len()));
    let log = run_quiet(&mut net);
    assert_eq!(received_by(&log, a), down);
    assert!(!has(&log, a, NetEvent::ReadClosed { sock: c }));
    net.shutdown_write(s).unwrap();
    let log = run_quiet(&mut net);
    assert_eq!(log, vec![(a, NetEvent::ReadClosed { sock: c })]);
    net.close(c);
    net.close(s);
    assert!(run_quiet(&mut net).is_empty());
    assert_eq!(net.open_connections(), 0);
}

#[test]
fn server_half_closes_first_and_client_keeps_sending() {
    let (mut net, a, b) = two_hosts(3, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    net.shutdown_write(s).unwrap();
    let log = run_quiet(&mut net);
    assert_eq!(log, vec![(a, NetEvent::ReadClosed { sock: c })]);
    let up = stream(3, 20_000);
    assert_eq!(net.write(c, &up), Ok(up.len()));
    net.close(c);
    let log = run_quiet(&mut net);
    assert_eq!(received_by(&log, b), up);
    assert_eq!(log.last(), Some(&(b, NetEvent::ReadClosed { sock: s })));
    net.close(s);
    assert_eq!(net.open_connections(), 0);
}

#[test]
fn abort_resets_the_peer_and_drops_queued_bytes() {
    let (mut net, a, b) = two_hosts(4, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    assert_eq!(net.write(s, &stream(4, 10_000)), Ok(10_000));
    net.abort(s);
    let log = run_quiet(&mut net);
    assert_eq!(log, vec![(a, NetEvent::Reset { sock: c })]);
    assert_eq!(net.write(c, b"x"), Err(NetError::UnknownSocket));
    assert_eq!(net.open_connections(), 0);
}

#[test]
fn close_with_unread_bytes_is_a_reset() {
    let (mut net, a, b) = two_hosts(5, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    net.pause_read(s).unwrap();
    net.write(c, b"unread").unwrap();
    assert!(run_quiet(&mut net).is_empty());
    net.close(s);
    let log = run_quiet(&mut net);
    assert_eq!(log, vec![(a, NetEvent::Reset { sock: c })]);
    assert_eq!(net.open_connections(), 0);
}

#[test]
fn bytes_for_a_closed_socket_draw_a_reset() {
    let (mut net, a, b) = two_hosts(6, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    net.close(s);
    let log = run_quiet(&mut net);
    assert_eq!(log, vec![(a, NetEvent::ReadClosed { sock: c })]);
    net.write(c, b"anyone there?").unwrap();
    let log = run_quiet(&mut net);
    assert_eq!(log, vec![(a, NetEvent::Reset { sock: c })]);
    assert_eq!(net.open_connections(), 0);
}

#[test]
fn injected_reset_reaches_both_ends() {
    let (mut net, a, b) = two_hosts(7, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    net.write(c, &stream(7, 100_000)).unwrap();
    net.reset_connection(c);
    let log = run_quiet(&mut net);
    assert!(has(&log, a, NetEvent::Reset { sock: c }));
    assert!(has(&log, b, NetEvent::Reset { sock: s }));
    // Nothing is delivered after the reset.
    let reset_at = log
        .iter()
        .position(|(h, e)| *h == b && *e == NetEvent::Reset { sock: s })
        .unwrap();
    assert!(received_by(&log[reset_at..], b).is_empty());
    assert_eq!(net.open_connections(), 0);
}

/// Property over windows and seeds: while the reader is paused the writer
/// gets exactly one window in, no more; the reader then gets every byte in
/// order and the writer hears `Writable`.
#[test]
fn paused_reader_bounds_the_writer_to_the_window() {
    for (seed, window) in [(1, 1), (2, 1_000), (3, 65_536), (4, 200_000), (5, 12_345)] {
        let config = NetConfig {
            window,
            ..NetConfig::default()
        };
        let (mut net, a, b) = two_hosts(seed, config);
        let (c, s) = connected_pair(&mut net, a, b);
        net.pause_read(s).unwrap();
        let data = stream(seed, window * 3 + 17);
        let mut written = 0;
        // Offer more repeatedly while the network runs: the window stays
        // shut however long we wait.
        for _ in 0..5 {
            written += net.write(c, &data[written..]).unwrap();
            let log = run_quiet(&mut net);
            assert!(log.is_empty(), "seed {seed}: {log:?}");
        }
        assert_eq!(written, window, "seed {seed}");
        assert_eq!(net.write(c, &data[written..]), Ok(0));
        net.resume_read(s).unwrap();
        let mut got = Vec::new();
        let mut writable = 0;
        loop {
            let mut log = drain(&mut net);
            while net.step() {
                log.extend(drain(&mut net));
            }
            if log.is_empty() {
                break;
            }
            for (h, ev) in log {
                match ev {
                    NetEvent::Received { sock, data } if h == b && sock == s => got.extend(data),
                    NetEvent::Writable { sock } if h == a && sock == c => {
                        writable += 1;
                        written += net.write(c, &data[written..]).unwrap();
                    }
                    other => panic!("seed {seed}: unexpected {other:?}"),
                }
            }
        }
        assert!(writable > 0, "seed {seed}");
        assert_eq!(written, data.len(), "seed {seed}");
        assert_eq!(got, data, "seed {seed}");
    }
}

#[test]
fn loopback_connects_a_host_to_itself() {
    let (mut net, a, _b) = two_hosts(8, NetConfig::default());
    let listener = net.listen(a, 9000).unwrap();
    let c = net.connect(a, "127.0.0.1:9000".parse().unwrap()).unwrap();
    assert_eq!(net.local_addr(c).unwrap().ip().to_string(), "127.0.0.1");
    let log = run_quiet(&mut net);
    let s = log
        .iter()
        .find_map(|(h, e)| match e {
            NetEvent::Accepted {
                listener: l, sock, ..
            } if *h == a && *l == listener => Some(*sock),
            _ => None,
        })
        .expect("no accept");
    assert!(has(
        &log,
        a,
        NetEvent::Connected {
            sock: c,
            result: Ok(())
        }
    ));
    net.write(c, b"to myself").unwrap();
    let log = run_quiet(&mut net);
    assert_eq!(received_by(&log, a), b"to myself");
    assert!(log
        .iter()
        .all(|(_, e)| matches!(e, NetEvent::Received { sock, .. } if *sock == s)));
}

#[test]
fn a_crashed_host_is_silent_until_its_peer_sends() {
    let (mut net, a, b) = two_hosts(9, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    net.pause_read(c).unwrap();
    net.write(s, b"sent before the crash").unwrap();
    // Queued but not yet sent when the host dies: never leaves.
    net.crash_host(b);
    assert_eq!(net.write(s, b"x"), Err(NetError::UnknownSocket));
    net.resume_read(c).unwrap();
    let log = run_quiet(&mut net);
    assert!(log.is_empty(), "{log:?}");
    net.write(c, b"hello?").unwrap();
    let log = run_quiet(&mut net);
    assert_eq!(log, vec![(a, NetEvent::Reset { sock: c })]);
    assert_eq!(net.open_connections(), 0);
    // Nothing listens after the restart.
    let again = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    let log = run_quiet(&mut net);
    assert_eq!(
        log,
        vec![(
            a,
            NetEvent::Connected {
                sock: again,
                result: Err(ConnectError::Refused)
            }
        )]
    );
}

#[test]
fn bytes_on_the_wire_arrive_ahead_of_an_abort() {
    let (mut net, a, b) = two_hosts(10, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    net.write(s, b"last words").unwrap();
    // One step: the segment leaves (the pump), it has not arrived yet.
    assert!(net.step());
    assert!(drain(&mut net).is_empty());
    assert!(net.next_event_time().is_some());
    net.abort(s);
    let log = run_quiet(&mut net);
    assert_eq!(received_by(&log, a), b"last words");
    assert_eq!(log.last(), Some(&(a, NetEvent::Reset { sock: c })));
}

#[test]
fn loopback_listener_refuses_other_hosts() {
    let (mut net, a, b) = two_hosts(11, NetConfig::default());
    let listener = net.listen_on(b, "127.0.0.1:5432".parse().unwrap()).unwrap();
    assert_eq!(
        net.listener_addr(listener),
        Some("127.0.0.1:5432".parse().unwrap())
    );
    assert_eq!(
        net.listen_on(b, "10.0.0.1:1".parse().unwrap()),
        Err(NetError::AddressNotLocal)
    );
    assert_eq!(net.listen(b, 5432), Err(NetError::PortInUse));
    let remote = net.connect(a, "10.0.0.2:5432".parse().unwrap()).unwrap();
    let local = net.connect(b, "127.0.0.1:5432".parse().unwrap()).unwrap();
    let log = run_quiet(&mut net);
    assert!(has(
        &log,
        a,
        NetEvent::Connected {
            sock: remote,
            result: Err(ConnectError::Refused)
        }
    ));
    assert!(has(
        &log,
        b,
        NetEvent::Connected {
            sock: local,
            result: Ok(())
        }
    ));
    let accepted: Vec<_> = log
        .iter()
        .filter(|(_, e)| matches!(e, NetEvent::Accepted { .. }))
        .collect();
    assert_eq!(accepted.len(), 1);
}

#[test]
fn a_closed_socket_hears_nothing_more() {
    let (mut net, a, b) = two_hosts(12, NetConfig::default());
    let (c, s) = connected_pair(&mut net, a, b);
    net.pause_read(s).unwrap();
    net.write(c, b"data then FIN").unwrap();
    net.shutdown_write(c).unwrap();
    assert!(run_quiet(&mut net).is_empty());
    // Resuming hands over the bytes and the FIN at once; the host closes on
    // the first event and must not see the second.
    net.resume_read(s).unwrap();
    let (h, first) = net.poll_event().unwrap();
    assert_eq!(h, b);
    assert!(matches!(first, NetEvent::Received { sock, .. } if sock == s));
    net.close(s);
    let log = run_quiet(&mut net);
    assert!(log.iter().all(|(h, _)| *h == a), "{log:?}");
    assert_eq!(log, vec![(a, NetEvent::ReadClosed { sock: c })]);
}
