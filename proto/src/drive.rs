//! The one event-loop step every host shares (tokio, smol, the simulator,
//! a user's own loop): apply an input, carry out every output, return the
//! next deadline. No runtime re-implements any of this.

use core::net::SocketAddr;

use crate::node::{ConnectError, HostError, Input, ListenerId, Node, NodeEvent, Output, SockId};
use crate::time::Instant;

/// What a host does for the node. Every method must return at once.
pub trait Host {
    /// Start listening on `addr`; report connections with [`accept`], or
    /// `Input::ListenFailed` (after the drain) if it cannot bind.
    fn listen(&mut self, listener: ListenerId, addr: SocketAddr);
    /// Close the listener; report nothing more for it.
    fn stop_listening(&mut self, listener: ListenerId);
    /// Start a TCP connect; report the result with `Input::Connected`
    /// (or, if it is known at once, through [`Host::connect_result_now`]).
    fn connect(&mut self, sock: SockId, addr: SocketAddr);
    /// Asked right after [`Host::connect`]: the connect's result if it is
    /// already known without waiting (on loopback the TCP handshake ends
    /// inside connect(2)), else `None` and the host reports it later as
    /// `Input::Connected`. A result given here must not be reported again.
    ///
    /// Why: fed in the same drain, what the connect unblocks leaves with
    /// what caused it. An agent's 200 to a CONNECT whose target is on
    /// loopback then goes in the same TLS flight and the same write as the
    /// session tickets and SETTINGS of a new connection (one wake-up of
    /// the client's agent instead of two), and a flow's first bytes reach
    /// the target in the turn that read them.
    fn connect_result_now(&mut self, sock: SockId) -> Option<Result<(), ConnectError>> {
        let _ = sock;
        None
    }
    /// Start resolving `host` (a DNS name) for `sock`'s coming connect;
    /// report the addresses with `Input::Resolved`.
    fn resolve(&mut self, sock: SockId, host: &str);
    /// Write as much of `data` as the socket takes now, without blocking;
    /// return how much. Less than `data.len()` means full: report
    /// `Input::Writable` once it can take more.
    fn write(&mut self, sock: SockId, data: &[u8]) -> usize;
    /// Stop reading `sock` until `resume_read`.
    fn pause_read(&mut self, sock: SockId);
    /// Read `sock` again.
    fn resume_read(&mut self, sock: SockId);
    /// Half-close `sock` (FIN); everything for it was written.
    fn shutdown_write(&mut self, sock: SockId);
    /// Close `sock`, with RST when `reset`.
    fn close(&mut self, sock: SockId, reset: bool);
    /// Log / count / export an event.
    fn event(&mut self, event: NodeEvent);
}

/// Applies `input` at `now`, carries out every output, and returns when
/// to deliver `Input::Timeout` next.
pub fn step<H: Host + ?Sized>(
    node: &mut Node,
    host: &mut H,
    now: Instant,
    input: Input<'_>,
) -> Result<Option<Instant>, HostError> {
    node.handle_input(now, input)?;
    drain(node, host, now)
}

/// A connection arrived on `listener` from `peer`: the node names its
/// socket, `register` records the host's connection under that id, and
/// only then are the outputs carried out (the first of them may already
/// write to the socket or close it). Returns the socket and the next
/// deadline.
pub fn accept<H: Host + ?Sized>(
    node: &mut Node,
    host: &mut H,
    now: Instant,
    listener: ListenerId,
    peer: SocketAddr,
    register: impl FnOnce(&mut H, SockId),
) -> Result<(SockId, Option<Instant>), HostError> {
    accept_and_read(node, host, now, listener, peer, register, |_, _| None)
}

/// [`accept`], with one read of the new socket before the drain:
/// `read_first` reads what the socket already holds without waiting and
/// returns it as the socket's input (`Received`, `ReadClosed`, `Reset`),
/// or `None` if nothing is there. It is called only if the node reads the
/// socket at all.
///
/// Why: a client writes right after its connect, so by the time the host
/// accepts, its first bytes are usually there. Fed before the drain, what
/// they cause leaves together with what the accept caused: a tunnel's
/// CONNECT and the first DATA in one TLS record and one write (one wake-up
/// of the peer instead of two), a TLS server's reply to the ClientHello at
/// once.
pub fn accept_and_read<'b, H: Host + ?Sized>(
    node: &mut Node,
    host: &mut H,
    now: Instant,
    listener: ListenerId,
    peer: SocketAddr,
    register: impl FnOnce(&mut H, SockId),
    read_first: impl FnOnce(&mut H, SockId) -> Option<Input<'b>>,
) -> Result<(SockId, Option<Instant>), HostError> {
    let sock = node.accept(now, listener, peer)?;
    register(host, sock);
    if node.reads(sock) {
        if let Some(input) = read_first(host, sock) {
            node.handle_input(now, input)?;
        }
    }
    let deadline = drain(node, host, now)?;
    Ok((sock, deadline))
}

/// Carries out every pending output (e.g. the listeners of a new node)
/// and returns the next deadline.
pub fn drain<H: Host + ?Sized>(
    node: &mut Node,
    host: &mut H,
    now: Instant,
) -> Result<Option<Instant>, HostError> {
    while let Some(output) = node.poll_output() {
        match output {
            Output::Listen { listener, addr } => host.listen(listener, addr),
            Output::StopListening { listener } => host.stop_listening(listener),
            Output::Connect { sock, addr } => {
                host.connect(sock, addr);
                if let Some(result) = host.connect_result_now(sock) {
                    // Its outputs join this drain's, ahead of the
                    // transmits still due (the node queues those last).
                    node.handle_input(now, Input::Connected { sock, result })?;
                }
            }
            Output::Resolve { sock, host: name } => host.resolve(sock, &name),
            Output::Transmit { sock } => loop {
                let chunk = node.transmit_chunk(sock);
                if chunk.is_empty() {
                    break;
                }
                let offered = chunk.len();
                let taken = host.write(sock, chunk).min(offered);
                node.transmit_done(now, sock, taken)?;
                if taken < offered {
                    break;
                }
            },
            Output::PauseRead { sock } => host.pause_read(sock),
            Output::ResumeRead { sock } => host.resume_read(sock),
            Output::ShutdownWrite { sock } => host.shutdown_write(sock),
            Output::Close { sock, reset } => host.close(sock, reset),
            Output::Event(event) => host.event(event),
        }
    }
    Ok(node.poll_timeout())
}
