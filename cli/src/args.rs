//! The command line: what each command takes and what its `--help` says.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::agent::log::LogFormat;
use crate::agent::Runtime;
use warren_proto::identity::{SpiffeId, TrustDomain};
use warren_proto::revocation::Serial;

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "warren",
    version,
    about = "warren: a zero-trust service mesh for TCP",
    long_about = "warren: a zero-trust service mesh for TCP.\n\n\
        Every byte between two machines travels in an HTTP/2 CONNECT stream inside \
        mutual TLS (HBONE, as Istio ztunnel speaks it on port 15008), and every \
        decision - who may talk to whom, on which port - is made from a verified \
        SPIFFE identity (spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/NAME) in an X.509 \
        certificate, never from an address.\n\n\
        Start with `warren ca init` to make a CA for your trust domain, then \
        `warren ca issue` or `warren ca ticket` for each agent, and check an agent's \
        configuration file with `warren config check`."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a small certificate authority for one trust domain.
    #[command(
        subcommand,
        long_about = "Run a small file-based certificate authority for one trust domain.\n\n\
            A CA directory holds ca.pem (the root certificate, which names its trust \
            domain as the URI SAN spiffe://TRUST-DOMAIN) and ca-key.pem (its ECDSA P-256 \
            key, readable by its owner only). Keep the directory offline if you can: \
            whoever holds ca-key.pem can mint any identity of the trust domain.\n\n\
            Workload certificates carry exactly one URI SAN, the SPIFFE id, and both TLS \
            key usages, so the same certificate serves as client and as server. Keys are \
            written to files with mode 0600 and never printed."
    )]
    Ca(CaCommand),
    /// Run a mesh agent from a configuration file.
    #[command(
        long_about = "Run a mesh agent from a configuration file (see `warren config check`).\n\n\
            Logs one access line per flow when it closes (direction, source and destination \
            identity, service, bytes each way, duration, reason) and one line per denial \
            with the rule's name, on stderr.\n\n\
            SIGHUP, or a change of the file, reloads policy, exports, services and \
            certificates without dropping allowed flows (a broken file is logged and the \
            running configuration kept; listeners stay as they are). SIGTERM or SIGINT \
            drains: the agent stops and waits up to 10 seconds for its flows.\n\n\
            Example: warren agent --config agent.toml --runtime tokio --log-format json"
    )]
    Agent(AgentArgs),
    /// Run a hub: agents with no open ports reach each other through it.
    #[command(
        long_about = "Run a hub from a configuration file: the agent file format plus a \
            [hub] table (which identities may announce which services). The hub listens \
            on hbone_listen (default 0.0.0.0:15009); agents with `hubs = [\"ip:port\"]` \
            and `hub_identities` dial it twice (forward and reverse), announce their \
            exports and reach every announced service through it, authorized by the \
            hub's [[authz.rule]]s and again by the serving agent.\n\n\
            Example: warren hub --config hub.toml"
    )]
    Hub(AgentArgs),
    /// Run two agents in one process with a demo CA: try the mesh with curl.
    #[command(
        long_about = "Run two agents on 127.0.0.1 in one process, with a CA and certificates \
            made in a temporary folder, and print the curl commands to try.\n\n\
            Agent A (spiffe://demo.warren/ns/web/sa/client) offers SOCKS5 on PORT_BASE+1, \
            HTTP CONNECT on PORT_BASE+2 and a tunnel to echo.demo:8080 on PORT_BASE+3. \
            Agent B (spiffe://demo.warren/ns/demo/sa/server, HBONE on PORT_BASE+5) exports \
            echo.demo:8080 (a small HTTP server answering with the method and path) and \
            secret.demo:8080, which rule only-ops-may-use-secret keeps for namespace ops: \
            A's requests to it are denied.\n\n\
            Runs until Ctrl-C, logging access lines and denials."
    )]
    Demo(DemoArgs),
    /// Show a running agent: identity, listeners, peers, flows, denials.
    #[command(
        long_about = "Show a running agent: its identity and certificate expiry, \
            listeners, mesh peers and pooled connections, live flows (by direction \
            and service, and the busiest), recent policy denials with their rules, \
            and hub connections.\n\n\
            Reads the agent's admin endpoint (/status); the same facts are there as \
            JSON for scripts.\n\n\
            Example: warren status --admin 127.0.0.1:15000"
    )]
    Status(StatusArgs),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the deterministic simulator: scenarios, seeds, invariants.
    #[command(
        subcommand,
        long_about = "Run the deterministic simulator: real warren nodes wired through a \
            model network in virtual time, with the workload and faults (partitions, \
            resets, crashes, pauses, clock skew, certificate expiry, policy changes, \
            garbage) of a scenario file, each random choice taken from the seed. Every run \
            checks the invariants (every byte of a successful flow arrived exactly once and \
            in order, no denied flow carried a byte, allowed flows work again after the \
            faults heal, nothing leaks, memory stays bounded) and prints a trace hash: the \
            same scenario and seed always give the same hash.\n\n\
            A failing seed is replayed with `replay --trace`, shrunk with `minimize`, and \
            committed under sim/regressions/. Scenarios live in sim/scenarios/."
    )]
    Sim(warren_sim::cli::SimCommand),
    /// Measure warren against direct TCP and the peers a user would pick instead.
    #[command(
        long_about = "Measure warren on 127.0.0.1 against direct TCP, a socat relay, an \
            stunnel mTLS pair and an nghttpx HTTP/2 CONNECT chain, all in one run: \
            throughput (1 and 8 flows), relay CPU per Gbit/s, flow setup (warm and cold), \
            serial flows/s, and relay memory per idle and busy flow at 1k and 10k flows.\n\n\
            Peers are started from PATH (apt-get install socat stunnel4 nghttp2-proxy \
            openssl); one that is not installed is reported as missing. Prints JSON lines, \
            then markdown tables with ratios to direct TCP and to each peer. Takes at most \
            3 minutes, or 30 seconds with --quick. Compare figures only within one run."
    )]
    Bench(BenchArgs),
}

/// `warren bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Shorter windows and 1k flows only: at most 30 seconds.
    #[arg(long)]
    pub quick: bool,
    /// Internal: run as one of the bench's warren agents
    /// (RUNTIME UNIX-TIME export TARGET | RUNTIME UNIX-TIME front HBONE [cold], each
    /// optionally followed by no-resumption).
    #[arg(long, hide = true, num_args = 4..=6, value_name = "ARG")]
    pub agent: Option<Vec<String>>,
}

/// `warren ca ...`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA: a new key and a self-signed root certificate.
    #[command(
        long_about = "Create a CA: a new ECDSA P-256 key and a self-signed root \
        certificate for the trust domain, written as DIR/ca.pem and DIR/ca-key.pem \
        (mode 0600).\n\n\
        The root may sign workload certificates only (path length 0). Existing files \
        are never overwritten unless --force is given.\n\n\
        Example: warren ca init --trust-domain example.org --out ./ca"
    )]
    Init(CaInit),
    /// Issue a workload certificate and key for one SPIFFE id.
    #[command(
        long_about = "Issue a workload certificate and a new key for one SPIFFE id, \
        signed by the CA in --ca, written as OUT/cert.pem, OUT/key.pem (mode 0600) and \
        a copy of the CA certificate, OUT/ca.pem: the three files an agent's \
        [identity] section names.\n\n\
        The id must be spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/NAME in the CA's trust \
        domain. The certificate gets a random serial number, is valid from five minutes \
        ago (for peers with slow clocks) for --days days, and is verified against the \
        CA before anything is written.\n\n\
        Example: warren ca issue --ca ./ca --id spiffe://example.org/ns/demo/sa/echo --out ./echo"
    )]
    Issue(CaIssue),
    /// Write a join ticket: one file with everything a new agent needs.
    #[command(
        long_about = "Write a join ticket: one TOML file (mode 0600) holding the CA \
        certificate, a freshly issued certificate and key for the agent's SPIFFE id, and \
        the addresses of the hubs the agent should dial, with the identities a hub must \
        prove (--hub-identity; by default spiffe://TRUST-DOMAIN/ns/mesh/sa/hub*, so issue \
        hub certificates as e.g. spiffe://example.org/ns/mesh/sa/hub1). The agent trusts \
        no other certificate as a hub: a hub can name the source of the flows it relays.\n\n\
        The ticket contains a private key: hand it over like a password, once, over a \
        channel you trust.\n\n\
        Example: warren ca ticket --ca ./ca --id spiffe://example.org/ns/edge/sa/laptop \
        --hub hub1.example.org:15008 --hub hub2.example.org:15008 --out laptop.ticket"
    )]
    Ticket(CaTicket),
    /// Revoke an identity or one certificate: add it to a revocation list file.
    #[command(
        long_about = "Add a SPIFFE id, or one certificate's serial number (as `warren ca issue` \
        printed it), to a revocation list file (created if missing). \
        Agents and hubs whose configuration names the file (`revocation = \"FILE\"`) \
        reload it when it changes or on SIGHUP, close every connection of a revoked \
        identity or certificate at once with a logged reason, and refuse new ones.\n\n\
        Example: warren ca revoke --list revoked.txt --id spiffe://example.org/ns/edge/sa/laptop \
        --reason \"stolen laptop\"\n\
        Example: warren ca revoke --list revoked.txt --serial 3f:9a:01 --reason \"key leaked\""
    )]
    Revoke(CaRevoke),
}

/// `warren ca revoke`.
#[derive(Debug, Args)]
pub struct CaRevoke {
    /// The revocation list file to update.
    #[arg(long, value_name = "FILE")]
    pub list: PathBuf,
    /// The SPIFFE id to revoke (every certificate of it).
    #[arg(long, value_name = "SPIFFE_ID", value_parser = parse_spiffe_id, required_unless_present = "serial", conflicts_with = "serial")]
    pub id: Option<SpiffeId>,
    /// The serial number of one certificate to revoke (hex, `:` allowed).
    #[arg(long, value_name = "HEX", value_parser = parse_serial)]
    pub serial: Option<Serial>,
    /// Why, recorded in the list and logged when a connection is closed.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,
}

/// `warren ca init`.
#[derive(Debug, Args)]
pub struct CaInit {
    /// The trust domain, e.g. example.org (lowercase letters, digits, . _ -).
    #[arg(long, value_name = "NAME", value_parser = parse_trust_domain)]
    pub trust_domain: TrustDomain,
    /// The directory to write ca.pem and ca-key.pem into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How many days the CA certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 3650)]
    pub days: u32,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// `warren ca issue`.
#[derive(Debug, Args)]
pub struct CaIssue {
    /// The CA directory made by `warren ca init`.
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The workload's SPIFFE id, spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/NAME.
    #[arg(long, value_name = "SPIFFE_ID", value_parser = parse_spiffe_id)]
    pub id: SpiffeId,
    /// The directory to write cert.pem, key.pem and ca.pem into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How many days the certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub days: u32,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// `warren ca ticket`.
#[derive(Debug, Args)]
pub struct CaTicket {
    /// The CA directory made by `warren ca init`.
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The agent's SPIFFE id, spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/NAME.
    #[arg(long, value_name = "SPIFFE_ID", value_parser = parse_spiffe_id)]
    pub id: SpiffeId,
    /// The ticket file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// A hub the agent dials, host:port; repeat for several hubs.
    #[arg(long = "hub", value_name = "ADDR")]
    pub hubs: Vec<String>,
    /// An identity pattern a hub's certificate must match; repeat for
    /// several. Default with --hub: spiffe://TRUST-DOMAIN/ns/mesh/sa/hub*.
    #[arg(long = "hub-identity", value_name = "PATTERN")]
    pub hub_identities: Vec<String>,
    /// How many days the agent's certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub days: u32,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `warren agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// A join ticket from `warren ca ticket` (mode 0600): the identity and
    /// hubs, instead of the file's [identity] table.
    #[arg(long, value_name = "FILE")]
    pub ticket: Option<PathBuf>,
    /// The async runtime that carries the node's sockets and timers.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    pub runtime: Runtime,
    /// How log lines on stderr are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `warren demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Add a hub: neither agent listens for HBONE, both dial the hub, and
    /// A reaches B's services through it.
    #[arg(long)]
    pub hub: bool,
    /// The async runtime that carries the nodes' sockets and timers.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    pub runtime: Runtime,
    /// How log lines on stderr are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The first of the ten ports the demo uses (PORT_BASE to PORT_BASE+9).
    #[arg(long, value_name = "N", default_value_t = crate::demo::DEFAULT_PORT_BASE)]
    pub port_base: u16,
}

/// `warren status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's admin address (its configuration's `admin`).
    #[arg(long, value_name = "ADDR", default_value_t = crate::config::DEFAULT_ADMIN)]
    pub admin: std::net::SocketAddr,
}

/// `warren config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse an agent configuration file and summarize it.
    #[command(
        long_about = "Parse an agent configuration file (TOML) and print what it \
        configures: listeners, exports, rules, front ends and services. Nothing is \
        started; with --identity the identity files are read and checked too (the \
        certificate names one SPIFFE id, the key is its key, the CA file holds roots).\n\n\
        Errors name the file, line and column and the key, and say what was expected. \
        cli/examples/agent.toml in the source tree documents every key."
    )]
    Check(ConfigCheck),
}

/// `warren config check`.
#[derive(Debug, Args)]
pub struct ConfigCheck {
    /// The agent configuration file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Also read the [identity] files and check that they form a mesh identity.
    #[arg(long)]
    pub identity: bool,
    /// The join ticket `warren agent --ticket` would be given.
    #[arg(long, value_name = "FILE")]
    pub ticket: Option<PathBuf>,
}

fn parse_trust_domain(s: &str) -> Result<TrustDomain, String> {
    TrustDomain::new(s).map_err(|e| e.to_string())
}

fn parse_spiffe_id(s: &str) -> Result<SpiffeId, String> {
    SpiffeId::parse(s).map_err(|e| e.to_string())
}

fn parse_serial(s: &str) -> Result<Serial, String> {
    Serial::parse_hex(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ids_and_trust_domains_are_checked_while_parsing() {
        let err = Cli::try_parse_from([
            "warren",
            "ca",
            "issue",
            "--ca",
            "x",
            "--id",
            "spiffe://example.org/ns/a",
            "--out",
            "y",
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("SPIFFE id path must be /ns/<namespace>/sa/<name>"),
            "{err}"
        );
        let err = Cli::try_parse_from([
            "warren",
            "ca",
            "init",
            "--trust-domain",
            "Ex.org",
            "--out",
            "x",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("trust domain must be"), "{err}");
        let ok = Cli::try_parse_from([
            "warren",
            "ca",
            "ticket",
            "--ca",
            "c",
            "--id",
            "spiffe://e.org/ns/a/sa/b",
            "--out",
            "t",
            "--hub",
            "h1:1",
            "--hub",
            "h2:2",
        ])
        .unwrap();
        let Command::Ca(CaCommand::Ticket(t)) = ok.command else {
            panic!("not a ticket command")
        };
        assert_eq!(t.hubs, ["h1:1", "h2:2"]);
        assert_eq!(t.days, 30);
    }

    #[test]
    fn revoke_takes_an_id_or_a_serial_but_not_both() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["warren", "ca", "revoke", "--list", "r.txt"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        let ok = parse(&["--serial", "00:3F:9a"]).unwrap();
        let Command::Ca(CaCommand::Revoke(r)) = ok.command else {
            panic!("not a revoke command")
        };
        assert_eq!(r.serial, Some(Serial::parse_hex("3f9a").unwrap()));
        assert_eq!(r.id, None);
        let both = ["--id", "spiffe://e.org/ns/a/sa/b", "--serial", "01"];
        assert!(parse(&both)
            .unwrap_err()
            .to_string()
            .contains("cannot be used with"));
        assert!(parse(&[]).unwrap_err().to_string().contains("--id"));
        let bad = parse(&["--serial", "0xff"]).unwrap_err().to_string();
        assert!(bad.contains("serial must be hex digits"), "{bad}");
    }
}
