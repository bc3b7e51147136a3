//! `warren-bench`: the same as `warren bench` (see
//! [`warren_benches::mesh`]), without the rest of the `warren` command.
//!
//! Usage: `warren-bench [--quick]`. JSON lines on stdout, then markdown
//! tables; progress on stderr.

use warren_benches::mesh::{self, agents::SelfExec, Args};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| {
            let me = SelfExec {
                exe,
                prefix: Vec::new(),
            };
            mesh::main(Args::parse(&args)?, &me)
        });
    if let Err(e) = result {
        eprintln!("warren-bench: {e}");
        std::process::exit(1);
    }
}
