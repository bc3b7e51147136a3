//! `warren-bench`: how close warren comes to the wire, measured against the
//! peers a user would pick instead, all in one run on 127.0.0.1.
//!
//! Every path carries the same load from the same client to the same target
//! server (both in this process, on std threads): direct TCP (the ceiling),
//! a `socat` relay, an `stunnel` mTLS pair, the nghttpx HTTP/2 CONNECT chain
//! of `../shared/bench/baseline.sh`, and a two-agent warren mesh (agent A →
//! mTLS HBONE → agent B) on tokio and on smol.
//!
//! Each relay runs as child processes of the bench, warren included (this
//! binary re-executed as `warren-bench agent <runtime> <target>`), so the
//! relay CPU of every path is read the same way: utime+stime of the relay's
//! process tree from /proc, and none of the load generator's CPU is counted.
//!
//! Usage: `warren-bench [--quick]`. JSON lines on stdout, then a markdown
//! table; progress on stderr.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use warren_proto::front::Target as FrontTarget;
use warren_proto::identity::{MeshTlsParams, MeshTrust, SpiffeId, TrustDomain};
use warren_proto::node::{Endpoint, FrontConfig, FrontKind, MeshIdentity, NodeConfig};
use warren_proto::policy::{AuthzPolicy, Export, Exports, ServiceName, Target};
use warren_sim::certs::{SimCa, Validity};

/// First byte a client sends: the target server discards the rest.
const MODE_SINK: u8 = b'S';
/// First byte a client sends: the target server echoes the rest.
const MODE_ECHO: u8 = b'E';
/// Size of each client write and server read.
const CHUNK: usize = 256 * 1024;
/// Rows that measure only flow setup, each flow on a new mTLS connection.
const COLD_TOKIO: &str = "warren tokio, cold (new mTLS per flow)";
/// See [`COLD_TOKIO`].
const COLD_SMOL: &str = "warren smol, cold (new mTLS per flow)";
/// Trust domain of the bench mesh.
const TD: &str = "bench.test";

/// How long each part of the run lasts.
struct Plan {
    warmup: Duration,
    window: Duration,
    setups: usize,
    /// Upper bound on one path's setup-latency phase (a slow peer gets fewer samples).
    setup_budget: Duration,
    /// Idle flows held open for the memory figure.
    idle_flows: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::from_millis(300),
                window: Duration::from_millis(600),
                setups: 200,
                setup_budget: Duration::from_millis(500),
                // 1000 stunnel handshakes or socat forks alone take ~5 s on a loaded box.
                idle_flows: 300,
            }
        } else {
            Plan {
                warmup: Duration::from_secs(1),
                window: Duration::from_secs(5),
                setups: 2000,
                setup_budget: Duration::from_secs(5),
                idle_flows: 1000,
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("agent") {
        if let Err(e) = run_agents(&args[2..]) {
            eprintln!("warren-bench agent: {e}");
            std::process::exit(1);
        }
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    if let Err(e) = run_bench(quick) {
        eprintln!("warren-bench: {e}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------ the target server

/// Counts bytes the sink side received, for the throughput window.
struct TargetServer {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
}

/// Serves each connection on its own thread: the first byte picks sink or echo.
fn target_server() -> io::Result<TargetServer> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&received);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let count = Arc::clone(&count);
            thread::spawn(move || serve(conn, &count));
        }
    });
    Ok(TargetServer { addr, received })
}

fn serve(mut conn: TcpStream, received: &AtomicU64) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0; CHUNK];
    let mut mode = None;
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        let data = match mode {
            Some(_) => data,
            None => {
                mode = Some(data[0]);
                &data[1..]
            }
        };
        if mode == Some(MODE_ECHO) {
            if conn
                .write_all(if data.is_empty() { b"!" } else { data })
                .is_err()
            {
                break;
            }
        } else {
            received.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
}

// ------------------------------------------------------------ child processes

/// A relay process tree the bench started; killed (SIGTERM) and reaped on drop.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(cmd: &mut Command, log: &Path) -> io::Result<Daemon> {
        let log = fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Daemon { child })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: nghttpx's master then stops its worker too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Whether `bin` is on PATH.
fn have(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(bin).is_file()))
}

/// An unused loopback port (bound, then released for a child to take).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts on `port`.
fn wait_listen(port: u16) -> io::Result<()> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..100 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(io::Error::other(format!("nothing listening on :{port}")))
}

/// Clock ticks per second for /proc/*/stat.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (pid, ppid, utime+stime ticks) of every process.
fn process_table() -> Vec<(u32, u32, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may hold spaces: fields start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): ppid = 4, utime = 14, stime = 15.
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.push((pid, num(1) as u32, num(11) + num(12)));
    }
    out
}

/// `roots` and all their descendants, from a snapshot of the process table.
fn tree_members(table: &[(u32, u32, u64)], roots: &[u32]) -> Vec<u32> {
    let mut members: Vec<u32> = roots.to_vec();
    let mut grew = true;
    while grew {
        grew = false;
        for &(pid, ppid, _) in table {
            if members.contains(&ppid) && !members.contains(&pid) {
                members.push(pid);
                grew = true;
            }
        }
    }
    members
}

/// CPU ticks used so far by `roots` and all their descendants.
fn tree_ticks(roots: &[u32]) -> u64 {
    let table = process_table();
    let members = tree_members(&table, roots);
    table
        .iter()
        .filter(|(pid, _, _)| members.contains(pid))
        .map(|(_, _, t)| t)
        .sum()
}

// ------------------------------------------------------------ the paths under test

/// One path from the client to the target server, with the processes that relay it.
struct Relay {
    entry: SocketAddr,
    daemons: Vec<Daemon>,
}

/// Why a peer could not be started.
type Missing = String;

fn path_direct(target: SocketAddr) -> Relay {
    Relay {
        entry: target,
        daemons: Vec::new(),
    }
}

fn path_socat(target: SocketAddr, dir: &Path) -> Result<Relay, Missing> {
    if !have("socat") {
        return Err("socat not installed".into());
    }
    let port = free_port().map_err(|e| e.to_string())?;
    let d = Daemon::start(
        Command::new("socat").args([
            format!("TCP-LISTEN:{port},fork,reuseaddr,bind=127.0.0.1"),
            format!("TCP:{target}"),
        ]),
        &dir.join("socat.log"),
    )
    .map_err(|e| e.to_string())?;
    wait_listen(port).map_err(|e| e.to_string())?;
    Ok(Relay {
        entry: ([127, 0, 0, 1], port).into(),
        daemons: vec![d],
    })
}

/// ECDSA P-256 CA and server/client certificates, made with the openssl CLI.
fn make_certs(dir: &Path) -> Result<PathBuf, Missing> {
    if !have("openssl") {
        return Err("openssl not installed (needed for peer certificates)".into());
    }
    let c = dir.join("certs");
    fs::create_dir_all(&c).map_err(|e| e.to_string())?;
    let script = r#"set -e
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days 7 -subj /CN=bench-ca -out ca.crt
for n in server client; do
  openssl ecparam -name prime256v1 -genkey -noout -out $n.key
  openssl req -new -key $n.key -subj /CN=$n -out $n.csr
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > $n.ext
  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -sha256 -extfile $n.ext -out $n.crt
done"#;
    let ok = Command::new("sh")
        .args(["-c", script])
        .current_dir(&c)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if ok {
        Ok(c)
    } else {
        Err("openssl certificate generation failed".into())
    }
}

fn path_stunnel(target: SocketAddr, dir: &Path, certs: &Path) -> Result<Relay, Missing> {
    if !have("stunnel") {
        return Err("stunnel not installed".into());
    }
    let (srv, cli) = (
        free_port().map_err(|e| e.to_string())?,
        free_port().map_err(|e| e.to_string())?,
    );
    let c = certs.display();
    let common =
        "foreground = yes\npid =\ndebug = 3\nsslVersionMin = TLSv1.3\nsslVersionMax = TLSv1.3\n";
    let srv_conf = format!(
        "{common}[srv]\naccept = 127.0.0.1:{srv}\nconnect = {target}\ncert = {c}/server.crt\nkey = {c}/server.key\nCAfile = {c}/ca.crt\nverifyChain = yes\nrequireCert = yes\n"
    );
    let cli_conf = format!(
        "{common}[cli]\nclient = yes\naccept = 127.0.0.1:{cli}\nconnect = 127.0.0.1:{srv}\ncert = {c}/client.crt\nkey = {c}/client.key\nCAfile = {c}/ca.crt\nverifyChain = yes\ncheckHost = localhost\n"
    );
    let mut daemons = Vec::new();
    for (name, conf) in [("st-srv.conf", srv_conf), ("st-cli.conf", cli_conf)] {
        let p = dir.join(name);
        fs::write(&p, conf).map_err(|e| e.to_string())?;
        daemons.push(
            Daemon::start(Command::new("stunnel").arg(&p), &dir.join("stunnel.log"))
                .map_err(|e| e.to_string())?,
        );
    }
    wait_listen(srv).map_err(|e| e.to_string())?;
    wait_listen(cli).map_err(|e| e.to_string())?;
    Ok(Relay {
        entry: ([127, 0, 0, 1], cli).into(),
        daemons,
    })
}

/// The exit hop of the nghttpx chain: answers an HTTP/1.1 CONNECT with 200
/// and splices the socket to the target (nghttpx -s never dials the target).
const CONNECT_EXIT: &str = r#"#!/bin/bash
IFS= read -r line || exit 1
set -- ${line%$'\r'}
[ "${1:-}" = CONNECT ] || { printf 'HTTP/1.1 405 Method Not Allowed\r\n\r\n'; exit 1; }
host=${2%:*}; port=${2##*:}
while IFS= read -r h; do [ -z "${h%$'\r'}" ] && break; done
case "$host" in 127.0.0.1|localhost) ;; *) printf 'HTTP/1.1 403 Forbidden\r\n\r\n'; exit 1;; esac
printf 'HTTP/1.1 200 Connection established\r\n\r\n'
exec socat FD:0 "TCP:127.0.0.1:$port"
"#;

fn path_nghttpx(target: SocketAddr, dir: &Path, certs: &Path) -> Result<Relay, Missing> {
    for bin in ["nghttpx", "socat", "bash"] {
        if !have(bin) {
            return Err(format!("{bin} not installed (nghttpx chain needs it)"));
        }
    }
    let port = || free_port().map_err(|e| e.to_string());
    let (exit, srv, cli, entry) = (port()?, port()?, port()?, port()?);
    let script = dir.join("connect-exit.sh");
    fs::write(&script, CONNECT_EXIT).map_err(|e| e.to_string())?;
    let _ = Command::new("chmod").arg("+x").arg(&script).status();
    let c = certs.display();
    let log = dir.join("nghttpx.log");
    let s = |e: io::Error| e.to_string();
    let mut daemons = vec![Daemon::start(
        Command::new("socat").args([
            format!("TCP-LISTEN:{exit},fork,reuseaddr,bind=127.0.0.1"),
            format!("EXEC:{},nofork", script.display()),
        ]),
        &log,
    )
    .map_err(s)?];
    daemons.push(
        Daemon::start(
            Command::new("nghttpx").args([
                "--conf=/dev/null".into(),
                "-s".into(),
                "-n".into(),
                "1".into(),
                "--no-ocsp".into(),
                format!("--frontend=127.0.0.1,{srv}"),
                format!("--backend=127.0.0.1,{exit}"),
                "--verify-client".into(),
                format!("--verify-client-cacert={c}/ca.crt"),
                "--tls-min-proto-version=TLSv1.3".into(),
                format!("{c}/server.key"),
                format!("{c}/server.crt"),
            ]),
            &log,
        )
        .map_err(s)?,
    );
    daemons.push(
        Daemon::start(
            Command::new("nghttpx").args([
                "--conf=/dev/null".into(),
                "-s".into(),
                "-n".into(),
                "1".into(),
                "--no-ocsp".into(),
                format!("--frontend=127.0.0.1,{cli};no-tls"),
                format!("--backend=127.0.0.1,{srv};;proto=h2;tls;sni=localhost"),
                format!("--cacert={c}/ca.crt"),
                format!("--client-private-key-file={c}/client.key"),
                format!("--client-cert-file={c}/client.crt"),
                "--tls-min-proto-version=TLSv1.3".into(),
            ]),
            &log,
        )
        .map_err(s)?,
    );
    daemons.push(
        Daemon::start(
            Command::new("socat").args([
                format!("TCP-LISTEN:{entry},reuseaddr,fork,bind=127.0.0.1"),
                format!(
                    "PROXY:127.0.0.1:127.0.0.1:{},proxyport={cli}",
                    target.port()
                ),
            ]),
            &log,
        )
        .map_err(s)?,
    );
    for p in [exit, srv, cli, entry] {
        wait_listen(p).map_err(s)?;
    }
    Ok(Relay {
        entry: ([127, 0, 0, 1], entry).into(),
        daemons,
    })
}

fn path_warren(
    runtime: &str,
    cold: bool,
    target: SocketAddr,
    dir: &Path,
) -> Result<Relay, Missing> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let log =
        fs::File::create(dir.join(format!("warren-{runtime}.log"))).map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["agent", runtime, &target.to_string()])
        .args(cold.then_some("cold"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let entry: SocketAddr = line
        .trim()
        .parse()
        .map_err(|_| format!("agent {runtime} did not start: {line:?}"))?;
    Ok(Relay {
        entry,
        daemons: vec![Daemon { child }],
    })
}

// ------------------------------------------------------------ the agents (child mode)

fn spiffe(sa: &str) -> Result<SpiffeId, String> {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/bench/sa/{sa}")).map_err(|e| format!("{e:?}"))
}

fn identity(ca: &SimCa, validity: Validity, sa: &str, serial: u64) -> Result<MeshIdentity, String> {
    let leaf = ca
        .issue(&spiffe(sa)?, serial, validity)
        .map_err(|e| format!("{e:?}"))?;
    let td = TrustDomain::new(TD).map_err(|e| format!("{e:?}"))?;
    let trust = MeshTrust::new(td, &[ca.cert().clone()]).map_err(|e| format!("{e:?}"))?;
    let params = MeshTlsParams::new(
        Arc::new(rustls::crypto::ring::default_provider()),
        Arc::new(rustls::time_provider::DefaultTimeProvider),
        Arc::new(trust),
        leaf.chain.clone(),
        leaf.key(),
    )
    .map_err(|e| format!("{e:?}"))?;
    MeshIdentity::new(params).map_err(|e| format!("{e:?}"))
}

/// Agent B exports `sink.bench:80` → `target`; agent A fronts it on a tunnel
/// port, printed on stdout. Both run until stdin closes.
fn run_agents(args: &[String]) -> Result<(), String> {
    let (runtime, target, cold) = match args {
        [runtime, target] => (runtime, target, false),
        [runtime, target, c] if c == "cold" => (runtime, target, true),
        _ => return Err("usage: warren-bench agent <tokio|smol> <target addr> [cold]".into()),
    };
    let target: SocketAddr = target.parse().map_err(|_| "bad target address")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let validity = Validity {
        not_before: now - 3600,
        not_after: now + 86_400,
    };
    let ca = SimCa::new([9; 32], "bench CA", 1, validity).map_err(|e| format!("{e:?}"))?;
    let service = ServiceName::parse("sink.bench").map_err(|e| format!("{e:?}"))?;

    let mut b = NodeConfig::new(identity(&ca, validity, "sink", 3)?);
    b.hbone_listen = Some(([127, 0, 0, 1], 0).into());
    b.exports = Exports::new(vec![Export {
        service: service.clone(),
        port: 80,
        target: Target::Addr(target),
    }])
    .map_err(|e| format!("{e:?}"))?;
    b.authz = AuthzPolicy::default();
    let node_b = spawn(runtime, b)?;
    let hbone = *node_b.first().ok_or("agent B bound nothing")?;

    let mut a = NodeConfig::new(identity(&ca, validity, "client", 2)?);
    if cold {
        // A pool that drops a connection 1 ms after its last stream: with the
        // bench's pause between flows, every flow pays a new mTLS handshake.
        a.pool.idle_timeout = Duration::from_millis(1);
    }
    a.fronts.push(FrontConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        kind: FrontKind::Tunnel {
            to: FrontTarget::parse("sink.bench:80").map_err(|e| format!("{e:?}"))?,
        },
    });
    a.directory.insert(
        service,
        vec![Endpoint {
            hbone,
            identity: spiffe("sink")?,
        }],
    );
    let node_a = spawn(runtime, a)?;
    let front = *node_a.first().ok_or("agent A bound nothing")?;
    println!("{front}");
    io::stdout().flush().map_err(|e| e.to_string())?;
    // Runs until the bench closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
    Ok(())
}

/// Starts a node on `runtime`; returns its bound addresses (HBONE or front first).
/// The handle is leaked on purpose: the node lives as long as this process.
fn spawn(runtime: &str, config: NodeConfig) -> Result<Vec<SocketAddr>, String> {
    let handle = match runtime {
        "tokio" => warren_tokio::spawn(config, |_| {}),
        "smol" => warren_smol::spawn(config, |_| {}),
        other => return Err(format!("unknown runtime {other}")),
    }
    .map_err(|e| e.to_string())?;
    let addrs = handle.local_addrs().to_vec();
    std::mem::forget(handle);
    Ok(addrs)
}

// ------------------------------------------------------------ measurements

/// Throughput of `flows` parallel bulk flows through `path`, and the relay's CPU.
struct Throughput {
    gbps: f64,
    /// Relay CPU (100 = one core) per Gbit/s; None for direct TCP.
    core_per_gbps: Option<f64>,
}

fn throughput(
    path: &Relay,
    flows: usize,
    target: &TargetServer,
    plan: &Plan,
    hz: f64,
) -> io::Result<Throughput> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..flows {
        let mut conn = TcpStream::connect(path.entry)?;
        conn.set_nodelay(true)?;
        conn.set_write_timeout(Some(Duration::from_secs(10)))?;
        let stop = Arc::clone(&stop);
        clients.push(thread::spawn(move || {
            let mut buf = vec![0x5a; CHUNK];
            buf[0] = MODE_SINK;
            if conn.write_all(&buf).is_err() {
                return;
            }
            buf[0] = 0x5a;
            while !stop.load(Ordering::Relaxed) {
                if conn.write_all(&buf).is_err() {
                    return;
                }
            }
            let _ = conn.shutdown(Shutdown::Both);
        }));
    }
    let roots: Vec<u32> = path.daemons.iter().map(|d| d.child.id()).collect();
    thread::sleep(plan.warmup);
    let (b0, c0, t0) = (
        target.received.load(Ordering::Relaxed),
        tree_ticks(&roots),
        Instant::now(),
    );
    thread::sleep(plan.window);
    let (b1, c1, secs) = (
        target.received.load(Ordering::Relaxed),
        tree_ticks(&roots),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let gbps = (b1 - b0) as f64 * 8.0 / secs / 1e9;
    let core = 100.0 * (c1 - c0) as f64 / hz / secs;
    Ok(Throughput {
        gbps,
        core_per_gbps: (!roots.is_empty() && gbps > 0.0).then(|| core / gbps),
    })
}

/// p50 and p99 (µs) of connect → first echoed byte, after one warm-up flow.
/// With `pause`, waits that long between flows (not timed), so a pool can drop its connection.
fn setup_latency(
    path: &Relay,
    n: usize,
    budget: Duration,
    pause: Option<Duration>,
) -> io::Result<(f64, f64)> {
    let one = || -> io::Result<Duration> {
        let t = Instant::now();
        let mut conn = TcpStream::connect(path.entry)?;
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        conn.write_all(&[MODE_ECHO])?;
        let mut b = [0u8; 1];
        conn.read_exact(&mut b)?;
        let d = t.elapsed();
        drop(conn);
        Ok(d)
    };
    one()?;
    let mut v: Vec<f64> = Vec::with_capacity(n);
    let t0 = Instant::now();
    while v.len() < n && t0.elapsed() < budget {
        if let Some(p) = pause {
            thread::sleep(p);
        }
        v.push(one()?.as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok((pick(0.5), pick(0.99)))
}

/// Resident memory (bytes) of `roots` and their descendants.
fn tree_rss(roots: &[u32]) -> u64 {
    tree_members(&process_table(), roots)
        .iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/statm")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum::<u64>()
        * 4096
}

/// RSS growth of the relay per idle flow: `n` flows each echo one byte, then sit.
fn idle_memory(path: &Relay, name: &str, n: usize) -> Result<f64, String> {
    let roots: Vec<u32> = path.daemons.iter().map(|d| d.child.id()).collect();
    if roots.is_empty() {
        return Err("no relay".into());
    }
    if name.starts_with("nghttpx") {
        // Its exit hop forks bash + socat per flow: 1k flows = 2k processes on a shared box.
        return Err("not measured (exit hop forks per flow)".into());
    }
    // One flow first, so warren's pooled HBONE connection is not counted per flow.
    let mut warm = TcpStream::connect(path.entry).map_err(|e| e.to_string())?;
    warm.write_all(&[MODE_ECHO]).map_err(|e| e.to_string())?;
    warm.read_exact(&mut [0u8; 1]).map_err(|e| e.to_string())?;
    let before = tree_rss(&roots);
    let mut flows = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = TcpStream::connect(path.entry).map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        conn.write_all(&[MODE_ECHO]).map_err(|e| e.to_string())?;
        let mut b = [0u8; 1];
        conn.read_exact(&mut b).map_err(|e| e.to_string())?;
        flows.push(conn);
    }
    thread::sleep(Duration::from_millis(200));
    let after = tree_rss(&roots);
    drop(flows);
    Ok((after.saturating_sub(before)) as f64 / n as f64 / 1024.0)
}

// ------------------------------------------------------------ the run

/// Every figure of one path; None where it could not be measured.
struct Row {
    missing: Option<String>,
    one: Option<f64>,
    eight: Option<f64>,
    cpu: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    /// RSS growth per idle flow (KiB) of the whole relay, or why not measured.
    idle_kib: Result<f64, String>,
}

impl Default for Row {
    fn default() -> Row {
        Row {
            missing: None,
            one: None,
            eight: None,
            cpu: None,
            p50: None,
            p99: None,
            idle_kib: Err("not measured".into()),
        }
    }
}

fn machine_info() -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "nproc",
        thread::available_parallelism().map_or("?".into(), |n| n.to_string()),
    );
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    m.insert("cpu_model", cpu);
    m.insert(
        "glibc_tunables",
        std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| "unset".into()),
    );
    m
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn run_bench(quick: bool) -> io::Result<()> {
    let started = Instant::now();
    let plan = Plan::new(quick);
    let hz = clock_ticks();
    let info = machine_info();
    let load_start = loadavg();
    let dir = std::env::temp_dir().join(format!("warren-bench.{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let target = target_server()?;
    let certs = make_certs(&dir);

    type Start<'a> = Box<dyn Fn() -> Result<Relay, Missing> + 'a>;
    let t = target.addr;
    let d = dir.as_path();
    let with_certs = |f: fn(SocketAddr, &Path, &Path) -> Result<Relay, Missing>| -> Start<'_> {
        let certs = certs.clone();
        Box::new(move || f(t, d, certs.as_ref().map_err(Clone::clone)?))
    };
    let starts: Vec<(&str, Start<'_>)> = vec![
        ("direct TCP", Box::new(move || Ok(path_direct(t)))),
        (
            "socat relay (8 KiB default)",
            Box::new(move || path_socat(t, d)),
        ),
        ("stunnel mTLS pair", with_certs(path_stunnel)),
        (
            "nghttpx h2 CONNECT chain (defaults)",
            with_certs(path_nghttpx),
        ),
        (
            "warren tokio",
            Box::new(move || path_warren("tokio", false, t, d)),
        ),
        (
            "warren smol",
            Box::new(move || path_warren("smol", false, t, d)),
        ),
        (
            COLD_TOKIO,
            Box::new(move || path_warren("tokio", true, t, d)),
        ),
        (COLD_SMOL, Box::new(move || path_warren("smol", true, t, d))),
    ];

    let mut rows: Vec<(String, Row)> = Vec::new();
    for (name, start) in starts {
        eprintln!("# {name} ...");
        let mut row = Row::default();
        match start() {
            Err(why) => row.missing = Some(why),
            Ok(path) if name == COLD_TOKIO || name == COLD_SMOL => {
                match setup_latency(
                    &path,
                    plan.setups / 4,
                    plan.setup_budget,
                    Some(Duration::from_millis(20)),
                ) {
                    Ok((p50, p99)) => {
                        row.p50 = Some(p50);
                        row.p99 = Some(p99);
                        row.idle_kib = Err("see warm row".into());
                    }
                    Err(e) => row.missing = Some(format!("failed: {e}")),
                }
                drop(path);
            }
            Ok(path) => {
                // First, on a fresh relay: after the bulk runs its allocator would
                // hand idle flows memory freed by them, and the growth would read ~0.
                row.idle_kib = idle_memory(&path, name, plan.idle_flows);
                let one = throughput(&path, 1, &target, &plan, hz);
                let eight = throughput(&path, 8, &target, &plan, hz);
                let lat = setup_latency(&path, plan.setups, plan.setup_budget, None);
                match (one, eight, lat) {
                    (Ok(one), Ok(eight), Ok((p50, p99))) => {
                        row.one = Some(one.gbps);
                        row.eight = Some(eight.gbps);
                        row.cpu = one.core_per_gbps;
                        row.p50 = Some(p50);
                        row.p99 = Some(p99);
                    }
                    (a, b, c) => {
                        let err = [a.err(), b.err(), c.err()]
                            .into_iter()
                            .flatten()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ");
                        row.missing = Some(format!("failed: {err}"));
                    }
                }
                drop(path);
            }
        }
        rows.push((name.to_string(), row));
    }
    let load_end = loadavg();
    let _ = fs::remove_dir_all(&dir);

    // JSON lines.
    let mut meta: Vec<String> = info
        .iter()
        .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
        .collect();
    meta.push(format!("\"loadavg_start\":{}", json_str(&load_start)));
    meta.push(format!("\"loadavg_end\":{}", json_str(&load_end)));
    meta.push(format!("\"quick\":{quick}"));
    meta.push(format!(
        "\"elapsed_s\":{:.1}",
        started.elapsed().as_secs_f64()
    ));
    println!("{{\"machine\":{{{}}}}}", meta.join(","));
    let num = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:.4}"));
    for (name, r) in &rows {
        match &r.missing {
            Some(why) => println!("{{\"path\":{},\"missing\":{}}}", json_str(name), json_str(why)),
            None => println!(
                "{{\"path\":{},\"gbps_1flow\":{},\"gbps_8flows\":{},\"relay_core_pct_per_gbps\":{},\"setup_p50_us\":{},\"setup_p99_us\":{},\"idle_flows\":{},\"rss_kib_per_idle_flow\":{}}}",
                json_str(name),
                num(r.one),
                num(r.eight),
                num(r.cpu),
                num(r.p50),
                num(r.p99),
                plan.idle_flows,
                r.idle_kib
                    .as_ref()
                    .map_or_else(|why| json_str(why), |k| format!("{k:.3}"))
            ),
        }
    }

    let not_done = "\"missing\":\"not implemented in this cut\"";
    println!("{{\"figure\":\"rss_per_idle_flow_10k\",{not_done}}}");
    println!("{{\"figure\":\"rss_per_busy_flow\",{not_done}}}");

    // Markdown.
    println!();
    println!(
        "Machine: {} × {}; load average {} at start, {} at end; GLIBC_TUNABLES {}; {} mode, {:.0} s.",
        info["nproc"],
        info["cpu_model"],
        load_start,
        load_end,
        info["glibc_tunables"],
        if quick { "--quick" } else { "default" },
        started.elapsed().as_secs_f64()
    );
    let busy = |l: &str| {
        let first: f64 = l
            .split(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let cores: f64 = info["nproc"].parse().unwrap_or(1.0);
        first > cores
    };
    if busy(&load_start) || busy(&load_end) {
        println!();
        println!("WARNING: load average above nproc: other work shared the cores; absolute figures and p99s are unreliable, compare ratios only.");
    }
    println!();
    println!("| path | 1 flow Gbit/s | ×direct | 8 flows Gbit/s | ×direct | relay %core per Gbit/s | setup p50 µs | p99 µs | p50 ×direct | RSS KiB per idle flow ({} flows) |", plan.idle_flows);
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let direct = &rows[0].1;
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    };
    let cell = |v: Option<f64>, prec: usize| v.map_or("–".into(), |x| format!("{x:.prec$}"));
    for (name, r) in &rows {
        if let Some(why) = &r.missing {
            println!("| {name} | missing: {why} | | | | | | | | |");
            continue;
        }
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(r.one, 2),
            ratio(r.one, direct.one),
            cell(r.eight, 2),
            ratio(r.eight, direct.eight),
            cell(r.cpu, 1),
            cell(r.p50, 0),
            cell(r.p99, 0),
            ratio(r.p50, direct.p50),
            r.idle_kib
                .as_ref()
                .map_or_else(|w| w.clone(), |k| format!("{k:.2}")),
        );
    }
    println!();
    println!("Missing: RSS at 10k flows and per busy flow (not implemented in this cut). warren's RSS figure is both agents together (one process).");
    println!();
    println!("warren against each peer, same run (throughput: warren/peer, higher is better; CPU and setup: warren/peer, lower is better):");
    println!();
    println!("| warren | vs peer | 1 flow | 8 flows | %core/Gbit/s | setup p50 |");
    println!("|---|---|---|---|---|---|");
    for (wname, w) in rows.iter().filter(|(n, _)| n.starts_with("warren")) {
        if w.missing.is_some() {
            continue;
        }
        for (pname, p) in rows.iter().filter(|(n, _)| !n.starts_with("warren")) {
            if p.missing.is_some() {
                println!("| {wname} | {pname} | missing | | | |");
                continue;
            }
            println!(
                "| {wname} | {pname} | {} | {} | {} | {} |",
                ratio(w.one, p.one),
                ratio(w.eight, p.eight),
                ratio(w.cpu, p.cpu),
                ratio(w.p50, p.p50),
            );
        }
    }
    Ok(())
}
