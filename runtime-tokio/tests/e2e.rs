//! The shared end-to-end suite on tokio.

mod suite;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;

use warren_proto::node::{NodeConfig, NodeEvent};

struct Tokio;

impl suite::Runtime for Tokio {
    type Running = warren_tokio::Handle;

    fn start(
        config: NodeConfig,
        events: Sender<NodeEvent>,
    ) -> io::Result<(Vec<SocketAddr>, Self::Running)> {
        let handle = warren_tokio::spawn(config, move |e| {
            let _ = events.send(e);
        })?;
        Ok((handle.local_addrs().to_vec(), handle))
    }

    fn reconfigure(running: &Self::Running, config: NodeConfig) {
        running.reconfigure(config).unwrap();
    }
}

suite::suite_tests!(Tokio);
