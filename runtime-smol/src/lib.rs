//! # warren-smol
//!
//! Runs a warren mesh node ([`warren_proto::node::Node`]) on smol (async-io) with real
//! listeners, sockets and timers. The adapter holds no protocol logic: it
//! turns readiness into `Input`s and carries out `Output`s through
//! [`warren_proto::drive`].
//!
//! One task owns the node. Each socket and listener has a waker that only
//! marks its id in a ready queue ([`ready`]); the task drains the queue,
//! reads into one reused 64 KiB buffer and steps the node.

mod driver;
mod ready;
mod sockets;

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use warren_proto::node::{ListenerId, NodeConfig, NodeEvent};

pub use driver::run;

/// What the adapter tells its owner.
#[derive(Debug)]
pub enum Notice {
    /// A listener the node asked for is bound (port 0 resolved).
    Listening {
        /// The node's listener.
        listener: ListenerId,
        /// The bound address.
        addr: SocketAddr,
    },
    /// The node's first outputs are carried out: every listener of the
    /// initial configuration is bound.
    Started,
    /// Something the node reported: log it, count it.
    Event(NodeEvent),
}

/// A node running on its own thread with a smol's `block_on`.
#[derive(Debug)]
pub struct Handle {
    addrs: Vec<SocketAddr>,
    configs: smol::channel::Sender<NodeConfig>,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Starts a node on a new thread and returns once its listeners are bound.
/// `on_event` runs on the node's thread for every event.
pub fn spawn<E>(config: NodeConfig, mut on_event: E) -> io::Result<Handle>
where
    E: FnMut(NodeEvent) + Send + 'static,
{
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let (configs, configs_rx) = smol::channel::unbounded();
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let thread = std::thread::Builder::new()
        .name("warren-smol".into())
        .spawn(move || {
            // The receiver leaves after `Started`; later listeners (a new
            // config) have nobody to tell.
            let notify = move |notice| match notice {
                Notice::Listening { addr, .. } => drop(bound_tx.send(Some(addr))),
                Notice::Started => drop(bound_tx.send(None)),
                Notice::Event(e) => on_event(e),
            };
            let shutdown = async move {
                // A dropped handle stops the node too.
                let _ = stopped.recv().await;
            };
            smol::block_on(run(config, shutdown, configs_rx, notify))
        })?;
    let mut handle = Handle {
        addrs: Vec::new(),
        configs,
        stop: Some(stop),
        thread: Some(thread),
    };
    loop {
        match bound_rx.recv() {
            Ok(Some(addr)) => handle.addrs.push(addr),
            Ok(None) => break,
            // The thread ended before starting: return its error.
            Err(_) => {
                return handle
                    .shutdown()
                    .and(Err(io::ErrorKind::AddrNotAvailable.into()))
            }
        }
    }
    Ok(handle)
}

impl Handle {
    /// The bound listeners in the node's order: the HBONE listener (if
    /// configured), then each front end.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Replaces the node's configuration (policy, exports, directory,
    /// certificates; listeners stay as they are).
    pub fn reconfigure(&self, config: NodeConfig) -> io::Result<()> {
        self.configs
            .try_send(config)
            .map_err(|_| io::Error::other("the node has stopped"))
    }

    /// Stops the node and waits for its thread; returns how the run ended.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the node's thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
