//! `h2c-server`: warren's HTTP/2 engine serving cleartext HTTP/2 with prior
//! knowledge (no TLS, no HTTP/1.1 upgrade), for conformance suites and
//! other implementations' clients.
//!
//! It answers GET/HEAD with a short body, echoes request bodies and
//! CONNECT tunnels (see `warren_interop::echo`). One thread per connection;
//! one stderr line per connection that ends in an error.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;

use clap::Parser;
use warren_interop::drive::drive_blocking;
use warren_interop::echo::EchoServer;
use warren_proto::h2::{Config, Role};

/// Serve h2c (HTTP/2 over cleartext TCP, prior knowledge) with warren's
/// HTTP/2 engine: GET/HEAD answer 200 with a short body, other methods echo
/// the request body, CONNECT to any authority echoes the tunnel's bytes.
#[derive(Debug, Parser)]
#[command(name = "h2c-server")]
struct Args {
    /// Address and port to listen on, e.g. 127.0.0.1:8080 (port 0 picks a
    /// free one; the bound address is printed on stdout).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,

    /// SETTINGS_MAX_FRAME_SIZE to announce. The default is RFC 9113's
    /// initial value rather than warren's 1 MiB: conformance suites build
    /// their oversized frames from that assumption.
    #[arg(long, value_name = "BYTES", default_value_t = 16_384)]
    max_frame_size: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match TcpListener::bind(args.listen) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("h2c-server: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("h2c-server listening on {addr}"),
        Err(err) => eprintln!("h2c-server: listening, address unknown: {err}"),
    }
    let config = Config {
        max_frame_size: args.max_frame_size,
        ..Config::default()
    };
    for incoming in listener.incoming() {
        match incoming {
            Ok(stream) => {
                let config = config.clone();
                let spawned = std::thread::Builder::new()
                    .name("h2c-connection".into())
                    .spawn(move || serve(stream, config));
                if let Err(err) = spawned {
                    eprintln!("h2c-server: cannot start a connection thread: {err}");
                }
            }
            Err(err) => eprintln!("h2c-server: accept failed: {err}"),
        }
    }
    ExitCode::SUCCESS
}

/// Runs one connection to its end and logs how it failed, if it did.
fn serve(stream: TcpStream, config: Config) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "unknown peer".to_string(), |addr| addr.to_string());
    let mut app = EchoServer::new();
    let result = drive_blocking(Role::Server, config, stream, &mut app);
    match (app.failure(), result) {
        (Some(failure), _) => eprintln!("h2c-server: {peer}: {failure}"),
        (None, Err(err)) => eprintln!("h2c-server: {peer}: {err}"),
        (None, Ok(())) => {}
    }
}
