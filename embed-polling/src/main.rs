//! `warren-embed-polling --id NS/SA [--hbone ADDR] [--export ...] [--tunnel ...]`:
//! one mesh node on the hand-written loop. Prints `listening ADDR` on stdout
//! for every listener (so port 0 is usable); events go to stderr.

use warren_embed_polling::{demo_config, run, Clock, PollingHost};
use warren_proto::node::Node;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = demo_config::from_args(std::env::args().skip(1))?;
    let mut host = PollingHost::new(|event| eprintln!("{event}"))?;
    host.on_listen(|addr| println!("listening {addr}"));
    let clock = Clock::start();
    let mut node = Node::new(config, clock.now());
    run(&mut node, &mut host, clock)
}
