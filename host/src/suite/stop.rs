//! Stopping a node while other threads inspect it: every `inspect`
//! returns (an answer or an error), none waits forever.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::{client_config, Pki, HANG};
use crate::Reactor;

/// Threads inspecting the node at once, each in a tight loop.
const INSPECTORS: usize = 4;
/// Start/stop rounds: each gives the stop another chance to land between
/// an inspect's check and its answer.
const ROUNDS: usize = 25;

/// Each round starts a node, lets [`INSPECTORS`] threads call `inspect`
/// in a loop, and stops the node from the test thread meanwhile. Every
/// thread must see an error (the node is gone) and return; a thread still
/// blocked after [`HANG`] is the race this guards against.
pub fn inspect_while_stopping<R: Reactor>() {
    let pki = Pki::new();
    for round in 0..ROUNDS {
        let config = client_config(&pki, "127.0.0.1:1".parse().unwrap());
        let node = Arc::new(crate::spawn::<R, _>(config, |_| {}).unwrap());
        let (done_tx, done) = mpsc::channel();
        for _ in 0..INSPECTORS {
            let node = Arc::clone(&node);
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                let mut answered = 0u64;
                // Ends at the first error: the node has stopped.
                while node.inspect(|n| n.flows().count()).is_ok() {
                    answered += 1;
                }
                // Let go of the handle before saying so: the test thread
                // takes it back once every inspector is done.
                drop(node);
                let _ = done_tx.send(answered);
            });
        }
        // Some inspections land before the stop, the rest race it.
        std::thread::sleep(Duration::from_millis(round as u64 % 5));
        node.stop();
        for i in 0..INSPECTORS {
            if done.recv_timeout(HANG).is_err() {
                panic!("round {round}: inspector {i} never returned after the stop");
            }
        }
        // Every inspector has let go of the handle; the stop is complete.
        let node = Arc::try_unwrap(node).expect("inspectors hold no handle");
        node.shutdown().unwrap();
    }
}
