//! The event loop: wait until a socket is ready or the node's next timer
//! is due, tell the node, let [`drive`] carry out what it asks, repeat.

use std::error::Error;
use std::time::Duration;

use polling::Events;
use warren_proto::drive;
use warren_proto::node::{Input, Node};
use warren_proto::time::Instant;

use crate::host::PollingHost;

/// The node's clock: nanoseconds since the loop's start, from the
/// monotonic system clock (the node never reads a clock itself).
#[derive(Clone, Copy, Debug)]
pub struct Clock(std::time::Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(std::time::Instant::now())
    }

    /// Now, as the node counts time.
    pub fn now(&self) -> Instant {
        let nanos = u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(nanos)
    }

    /// How long until `deadline` (zero if it passed).
    pub fn until(&self, deadline: Instant) -> Duration {
        deadline.saturating_duration_since(self.now())
    }
}

/// Runs `node` on `host` until the host's [`Stopper`](crate::Stopper) fires
/// or a listener cannot be bound.
pub fn run(node: &mut Node, host: &mut PollingHost, clock: Clock) -> Result<(), Box<dyn Error>> {
    let mut deadline = drive::drain(node, host, clock.now())?; // the node's listeners
    let mut events = Events::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut addrs = Vec::new();
    while !host.should_stop()? {
        // Sleep until a socket is ready or the node's next timer is due.
        events.clear();
        host.poller()
            .wait(&mut events, deadline.map(|d| clock.until(d)))?;
        for ev in events.iter() {
            let now = clock.now();
            if let Some(listener) = host.listener(ev.key) {
                // The node names the socket, we register it, then its outputs run.
                while let Some((stream, peer)) = host.accept(listener)? {
                    let mut adopted = Ok(());
                    let adopt = |h: &mut PollingHost, sock| adopted = h.adopt(sock, stream);
                    deadline = drive::accept(node, host, now, listener, peer, adopt)?.1;
                    adopted?;
                }
                continue;
            }
            // Level-triggered: one read per wake-up; more waiting wakes us again.
            if let Some(input) = host.on_writable(&ev) {
                deadline = drive::step(node, host, now, input)?;
            }
            if let Some(input) = host.on_readable(&ev, &mut buf) {
                deadline = drive::step(node, host, now, input)?;
            }
        }
        // Name lookups finished on their threads (they woke the poller).
        while let Some(input) = host.take_resolved(&mut addrs) {
            deadline = drive::step(node, host, clock.now(), input)?;
        }
        // The node's timers (handshakes, idle flows, HTTP/2 pings) are due.
        if deadline.is_some_and(|d| d <= clock.now()) {
            deadline = drive::step(node, host, clock.now(), Input::Timeout)?;
        }
    }
    Ok(())
}
