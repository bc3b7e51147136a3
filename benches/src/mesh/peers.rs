//! The peers a user would pick instead of warren, each started by the
//! bench on 127.0.0.1 in front of the target server, set up as in
//! `shared/bench/baseline.sh`: a socat relay, an stunnel TLS 1.3 mTLS pair
//! and the nghttpx HTTP/2 CONNECT chain; and direct TCP, the ceiling.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::procs::{free_port, have, wait_listen, Daemon};

/// One path from the client to the target server, with the processes that relay it.
pub struct Relay {
    /// Where clients connect.
    pub entry: SocketAddr,
    /// The relay processes (none for direct TCP).
    pub daemons: Vec<Daemon>,
}

impl Relay {
    /// Pids of the relay's root processes.
    pub fn roots(&self) -> Vec<u32> {
        self.daemons.iter().map(|d| d.child.id()).collect()
    }
}

/// Why a peer could not be started.
pub type Missing = String;

/// Direct TCP: the client talks to the target server itself.
pub fn path_direct(target: SocketAddr) -> Relay {
    Relay {
        entry: target,
        daemons: Vec::new(),
    }
}

/// A socat relay with its default 8 KiB buffer, forking per connection.
pub fn path_socat(target: SocketAddr, dir: &Path) -> Result<Relay, Missing> {
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

/// Two socat relays in a row, each with 256 KiB buffers, forking per
/// connection: the same three TCP hops and two user-space relays as a TLS
/// pair or a warren agent pair, without crypto or framing. No tunnel with
/// two relays can move one flow faster than this on the same box, so it
/// tells what a throughput target asks of the machine.
pub fn path_plain_pair(target: SocketAddr, dir: &Path) -> Result<Relay, Missing> {
    if !have("socat") {
        return Err("socat not installed".into());
    }
    let (exit, entry) = (
        free_port().map_err(|e| e.to_string())?,
        free_port().map_err(|e| e.to_string())?,
    );
    let mut daemons = Vec::new();
    for (listen, next) in [(exit, target), (entry, ([127, 0, 0, 1], exit).into())] {
        daemons.push(
            Daemon::start(
                Command::new("socat").args([
                    "-b".to_string(),
                    "262144".to_string(),
                    format!("TCP-LISTEN:{listen},fork,reuseaddr,bind=127.0.0.1"),
                    format!("TCP:{next}"),
                ]),
                &dir.join("socat-pair.log"),
            )
            .map_err(|e| e.to_string())?,
        );
        wait_listen(listen).map_err(|e| e.to_string())?;
    }
    Ok(Relay {
        entry: ([127, 0, 0, 1], entry).into(),
        daemons,
    })
}

/// ECDSA P-256 CA and server/client certificates, made with the openssl CLI.
pub fn make_certs(dir: &Path) -> Result<PathBuf, Missing> {
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

/// stunnel client → stunnel server, TLS 1.3, client certificate required.
pub fn path_stunnel(target: SocketAddr, dir: &Path, certs: &Path) -> Result<Relay, Missing> {
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

/// socat (HTTP/1.1 CONNECT) → nghttpx → h2 over TLS 1.3 with a client
/// certificate → nghttpx → the CONNECT exit hop; default windows.
pub fn path_nghttpx(target: SocketAddr, dir: &Path, certs: &Path) -> Result<Relay, Missing> {
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
