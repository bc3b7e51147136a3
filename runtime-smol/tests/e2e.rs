//! The shared end-to-end suite (written once, in warren-tokio's tests) on smol.

#[path = "../../runtime-tokio/tests/suite/mod.rs"]
mod suite;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;

use warren_proto::node::{NodeConfig, NodeEvent};

struct Smol;

impl suite::Runtime for Smol {
    type Running = warren_smol::Handle;

    fn start(
        config: NodeConfig,
        events: Sender<NodeEvent>,
    ) -> io::Result<(Vec<SocketAddr>, Self::Running)> {
        let handle = warren_smol::spawn(config, move |e| {
            let _ = events.send(e);
        })?;
        Ok((handle.local_addrs().to_vec(), handle))
    }

    fn reconfigure(running: &Self::Running, config: NodeConfig) {
        running.reconfigure(config).unwrap();
    }
}

suite::suite_tests!(Smol);
