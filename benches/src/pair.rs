//! Two warren connections wired back to back in memory.
//!
//! Bytes move only when a workload asks, through one reusable buffer per
//! direction: `poll_transmit` swaps its queue into the (empty) buffer, the
//! peer's `handle_input` reads it, the buffer is cleared. So the transport
//! adds no copy of its own; every copy counted is the engine's.
//!
//! Time is simulated: each client-to-server transfer advances the clock by
//! [`TICK`] and runs the timers that fell due, as a host would. (A frozen
//! clock is not an option: rate limits such as `window_update_rate` count
//! per time window, and a long benchmark would trip them in "zero" time.)

use core::time::Duration;
use warren_proto::h2::{Config, Connection, Event, Role};

use warren_proto::time::Instant;

/// Simulated time per round trip.
pub const TICK: Duration = Duration::from_millis(1);

/// Which end a piece of work runs on; see [`Pair::set_end_hook`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The benchmark's own code.
    Host,
    /// Inside the client connection.
    Client,
    /// Inside the server connection.
    Server,
}

/// Two connections, a client and a server, and the wire between them.
#[derive(Debug)]
pub struct Pair {
    client: Connection,
    server: Connection,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    now: Instant,
    end_hook: fn(End),
}

impl Pair {
    /// Connects a client and a server with `config` on both ends and runs
    /// the preface and SETTINGS exchange until both report [`Event::Ready`].
    pub fn new(config: Config) -> Pair {
        Pair::with_end_hook(config, |_| {})
    }

    /// Like [`Pair::new`], calling `hook` whenever work moves between the
    /// host and one of the ends (the memory benchmark attributes allocations
    /// with it), starting with the connections' construction.
    pub fn with_end_hook(config: Config, hook: fn(End)) -> Pair {
        let now = Instant::ZERO;
        hook(End::Client);
        let client = Connection::new(Role::Client, config.clone(), now);
        hook(End::Server);
        let server = Connection::new(Role::Server, config, now);
        hook(End::Host);
        let mut pair = Pair {
            client,
            server,
            to_server: Vec::new(),
            to_client: Vec::new(),
            now,
            end_hook: hook,
        };
        let (mut client_ready, mut server_ready) = (false, false);
        for _ in 0..8 {
            pair.exchange();
            while let Some(ev) = pair.client(|c| c.poll_event()) {
                client_ready |= ev == Event::Ready;
            }
            while let Some(ev) = pair.server(|s| s.poll_event()) {
                server_ready |= ev == Event::Ready;
            }
            if client_ready && server_ready {
                return pair;
            }
        }
        panic!(
            "handshake did not complete: client ready {client_ready}, server ready {server_ready}"
        );
    }

    /// Runs `f` on the client connection.
    pub fn client<R>(&mut self, f: impl FnOnce(&mut Connection) -> R) -> R {
        (self.end_hook)(End::Client);
        let r = f(&mut self.client);
        (self.end_hook)(End::Host);
        r
    }

    /// Runs `f` on the server connection.
    pub fn server<R>(&mut self, f: impl FnOnce(&mut Connection) -> R) -> R {
        (self.end_hook)(End::Server);
        let r = f(&mut self.server);
        (self.end_hook)(End::Host);
        r
    }

    /// Advances the clock by [`TICK`], runs due timers, then moves the
    /// client's queued output into the server; returns the bytes moved.
    pub fn client_to_server(&mut self) -> usize {
        self.now = self.now + TICK;
        let now = self.now;
        (self.end_hook)(End::Client);
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        (self.end_hook)(End::Server);
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        (self.end_hook)(End::Client);
        let n = self.client.poll_transmit(now, &mut self.to_server);
        (self.end_hook)(End::Server);
        if n > 0 {
            self.server.handle_input(now, &self.to_server);
        }
        (self.end_hook)(End::Host);
        self.to_server.clear();
        n
    }

    /// Moves the server's queued output into the client; returns the bytes moved.
    pub fn server_to_client(&mut self) -> usize {
        let now = self.now;
        (self.end_hook)(End::Server);
        let n = self.server.poll_transmit(now, &mut self.to_client);
        (self.end_hook)(End::Client);
        if n > 0 {
            self.client.handle_input(now, &self.to_client);
        }
        (self.end_hook)(End::Host);
        self.to_client.clear();
        n
    }

    /// One round trip's worth of transport: client to server, then back.
    /// Returns the bytes moved in both directions.
    pub fn exchange(&mut self) -> usize {
        self.client_to_server() + self.server_to_client()
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }
}
