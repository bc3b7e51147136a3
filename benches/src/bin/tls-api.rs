//! rustls' two APIs under warren's bulk pattern, TLS alone, for issue 8:
//! `target/release/tls-api [GiB] [rounds]`.
//!
//! The sender seals 64 KiB HTTP/2 DATA frames (a 9-byte header and the
//! payload) and gathers the records into a 256 KiB chunk, as
//! `MeshConn::send_data` does; the chunk is copied into a "host read
//! buffer" (the kernel's copy, not counted) and the receiver opens it and
//! looks at the plaintext in place. Each variant prints the sender's and
//! the receiver's thread CPU seconds per GiB of payload; rounds interleave
//! the variants so load drifts hit all of them.
//!
//! Variants: the buffered `Connection` as `TlsSession` drove it before
//! issue 8's fourth pass (whole frame, then drain); the same draining each
//! 16 KiB record as it is sealed (`TlsSession::write_plaintext_parts`
//! now); the unbuffered API opening records in place in the host buffer
//! (which `Input::Received { data: &[u8] }` does not allow today), with
//! the frame header as its own record or joined to the payload by a copy;
//! and the unbuffered API copying the host buffer into its own first (what
//! `read_tls(&[u8])` would have to do).

use std::io::{BufRead, IoSlice, Write};
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use warren_benches::mtls::{identities, spiffe};

/// Ciphertext gathered per socket write (`FILL_TARGET`).
const CHUNK: usize = 256 * 1024;
/// DATA payload per frame: the TLS buffer limit less a frame header.
const FRAME: usize = 64 * 1024 - 9;
/// Plaintext per TLS record.
const RECORD: usize = 16 * 1024;
/// Room for a chunk and one more frame's records.
const ROOM: usize = CHUNK + 2 * FRAME;

/// This thread's CPU time in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The mesh configs a node would use, client and server.
fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let (client, server) = identities();
    let client_config = client
        .params()
        .client_config([spiffe("server")])
        .expect("client config");
    (client_config, server.server_config().clone())
}

/// Sender and receiver CPU seconds for one run.
struct Cost {
    send: f64,
    receive: f64,
}

/// The buffered API; with `per_record`, each record is drained as soon as
/// it is sealed.
fn buffered(
    total: usize,
    configs: &(Arc<ClientConfig>, Arc<ServerConfig>),
    per_record: bool,
) -> Cost {
    let name = "mesh.invalid".try_into().expect("name");
    let mut c = ClientConnection::new(configs.0.clone(), name).expect("client");
    let mut s = ServerConnection::new(configs.1.clone()).expect("server");
    c.set_buffer_limit(Some(64 * 1024));
    s.set_buffer_limit(Some(64 * 1024));
    while c.is_handshaking() || s.is_handshaking() || c.wants_write() || s.wants_write() {
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).expect("write_tls");
        }
        let mut rest = &wire[..];
        while !rest.is_empty() {
            s.read_tls(&mut rest).expect("read_tls");
            s.process_new_packets().expect("server handshake");
        }
        let mut wire = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut wire).expect("write_tls");
        }
        let mut rest = &wire[..];
        while !rest.is_empty() {
            c.read_tls(&mut rest).expect("read_tls");
            c.process_new_packets().expect("client handshake");
        }
    }
    let payload = vec![7u8; FRAME];
    let head = [0u8; 9];
    let mut out: Vec<u8> = Vec::with_capacity(ROOM);
    let mut host = vec![0u8; ROOM];
    let mut cost = Cost {
        send: 0.0,
        receive: 0.0,
    };
    let (mut sent, mut got) = (0, 0);
    while sent < total {
        let t0 = thread_cpu();
        out.clear();
        while out.len() < CHUNK && sent < total {
            let mut pieces = vec![(&head[..], &payload[..RECORD - 9])];
            pieces.extend(payload[RECORD - 9..].chunks(RECORD).map(|p| (&[][..], p)));
            if !per_record {
                pieces = vec![(&head[..], &payload[..])];
            }
            for (h, b) in pieces {
                let parts = [IoSlice::new(h), IoSlice::new(b)];
                let n = c.writer().write_vectored(&parts).expect("write");
                assert_eq!(n, h.len() + b.len());
                while c.wants_write() {
                    c.write_tls(&mut out).expect("write_tls");
                }
            }
            sent += FRAME;
        }
        let t1 = thread_cpu();
        host[..out.len()].copy_from_slice(&out);
        let t2 = thread_cpu();
        let mut rest = &host[..out.len()];
        while !rest.is_empty() {
            // Refused only while received plaintext is full: drained below.
            let _ = s.read_tls(&mut rest);
            s.process_new_packets().expect("receive");
            let mut reader = s.reader();
            while let Ok(chunk) = reader.fill_buf() {
                let n = std::hint::black_box(chunk).len();
                if n == 0 {
                    break;
                }
                got += n;
                reader.consume(n);
            }
        }
        cost.receive += thread_cpu() - t2;
        cost.send += t1 - t0;
    }
    assert_eq!(got, sent + sent / FRAME * 9, "plaintext lost");
    cost
}

/// What one unbuffered state asks of its driver.
#[derive(PartialEq, Debug)]
enum Step {
    Continue,
    NeedInput,
    Ready,
}

/// Serves one state of a handshake: encodes records into `out`,
/// consumes plaintext.
fn serve<D>(state: Result<ConnectionState<'_, '_, D>, rustls::Error>, out: &mut Vec<u8>) -> Step {
    match state.expect("handshake") {
        ConnectionState::EncodeTlsData(mut e) => {
            let mut tmp = vec![0u8; ROOM];
            let n = e.encode(&mut tmp).expect("encode");
            out.extend_from_slice(&tmp[..n]);
            Step::Continue
        }
        ConnectionState::TransmitTlsData(t) => {
            t.done();
            Step::Continue
        }
        ConnectionState::BlockedHandshake => Step::NeedInput,
        ConnectionState::WriteTraffic(_) => Step::Ready,
        ConnectionState::ReadTraffic(mut r) => {
            while let Some(record) = r.next_record() {
                record.expect("record");
            }
            Step::Continue
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Runs `process` on `input` until it needs more input or is ready.
fn drive(mut process: impl FnMut(&mut [u8]) -> (usize, Step), input: &mut Vec<u8>) -> Step {
    loop {
        let (discard, step) = process(&mut input[..]);
        input.drain(..discard);
        if step != Step::Continue {
            return step;
        }
    }
}

/// The unbuffered API; `join` copies header and payload together before
/// sealing, `copy_in` copies the host buffer into an own buffer first.
fn unbuffered(
    total: usize,
    configs: &(Arc<ClientConfig>, Arc<ServerConfig>),
    join: bool,
    copy_in: bool,
) -> Cost {
    let name = "mesh.invalid".try_into().expect("name");
    let mut c = UnbufferedClientConnection::new(configs.0.clone(), name).expect("client");
    let mut s = UnbufferedServerConnection::new(configs.1.clone()).expect("server");
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    loop {
        let mut out = Vec::new();
        let client = drive(
            |b| {
                let UnbufferedStatus { discard, state } = c.process_tls_records(b);
                (discard, serve(state, &mut out))
            },
            &mut to_client,
        );
        to_server.extend_from_slice(&out);
        let mut out = Vec::new();
        let server = drive(
            |b| {
                let UnbufferedStatus { discard, state } = s.process_tls_records(b);
                (discard, serve(state, &mut out))
            },
            &mut to_server,
        );
        to_client.extend_from_slice(&out);
        let idle = to_client.is_empty() && to_server.is_empty();
        if client == Step::Ready && server == Step::Ready && idle {
            break;
        }
    }
    let payload = vec![7u8; FRAME];
    let head = [0u8; 9];
    let mut out = vec![0u8; ROOM];
    let mut host = vec![0u8; ROOM];
    let mut own: Vec<u8> = Vec::with_capacity(ROOM);
    let mut joined: Vec<u8> = Vec::with_capacity(FRAME + 9);
    let mut cost = Cost {
        send: 0.0,
        receive: 0.0,
    };
    let (mut sent, mut got) = (0, 0);
    while sent < total {
        let t0 = thread_cpu();
        let mut len = 0;
        while len < CHUNK && sent < total {
            let status = c.process_tls_records(&mut []);
            let Ok(ConnectionState::WriteTraffic(mut w)) = status.state else {
                panic!("client cannot write");
            };
            if join {
                joined.clear();
                joined.extend_from_slice(&head);
                joined.extend_from_slice(&payload);
                len += w.encrypt(&joined, &mut out[len..]).expect("seal");
            } else {
                len += w.encrypt(&head, &mut out[len..]).expect("seal");
                len += w.encrypt(&payload, &mut out[len..]).expect("seal");
            }
            sent += FRAME;
        }
        let t1 = thread_cpu();
        host[..len].copy_from_slice(&out[..len]);
        let t2 = thread_cpu();
        let input: &mut [u8] = if copy_in {
            own.clear();
            own.extend_from_slice(&host[..len]);
            &mut own[..]
        } else {
            &mut host[..len]
        };
        let mut start = 0;
        loop {
            let UnbufferedStatus { discard, state } = s.process_tls_records(&mut input[start..]);
            let more = match state.expect("receive") {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        got += std::hint::black_box(record.expect("record").payload).len();
                    }
                    true
                }
                ConnectionState::WriteTraffic(_) => false,
                other => panic!("unexpected {other:?}"),
            };
            start += discard;
            if !more {
                break;
            }
        }
        assert_eq!(start, len, "records left unread");
        cost.receive += thread_cpu() - t2;
        cost.send += t1 - t0;
    }
    assert_eq!(got, sent + sent / FRAME * 9, "plaintext lost");
    cost
}

fn main() {
    let mut args = std::env::args().skip(1);
    let gib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let total = gib << 30;
    let configs = configs();
    let variants = [
        "buffered, drain after each 64 KiB frame",
        "buffered, drain after each 16 KiB record",
        "unbuffered, in place, header its own record",
        "unbuffered, in place, header joined by a copy",
        "unbuffered, host buffer copied in first",
    ];
    for round in 0..rounds {
        for (i, name) in variants.iter().enumerate() {
            let cost = match i {
                0 => buffered(total, &configs, false),
                1 => buffered(total, &configs, true),
                2 => unbuffered(total, &configs, false, false),
                3 => unbuffered(total, &configs, true, false),
                _ => unbuffered(total, &configs, false, true),
            };
            let g = gib as f64;
            println!(
                "round {round} {name:46} send {:.3} receive {:.3} total {:.3} s/GiB",
                cost.send / g,
                cost.receive / g,
                (cost.send + cost.receive) / g
            );
        }
    }
}
