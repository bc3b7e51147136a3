//! Running the real `warren` binary: children killed on drop, output read
//! on threads, every wait bounded.

#![allow(dead_code)] // each test file uses its own part

pub mod hub_mesh;
pub mod netns;
pub mod prometheus;
pub mod two_agents;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any one wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn warren() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warren"))
}

/// A running `warren`: stdout lines arrive on a channel, stderr collects in
/// a buffer; killed when dropped.
pub struct Running {
    child: Child,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Starts `cmd` with piped output.
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start warren");
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push_str(&text);
            }
        });
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a stdout line containing `needle`; panics with the
    /// output so far when it does not come in time.
    pub fn wait_stdout(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!(
                    "no {needle:?} on stdout; stdout {seen:?}, stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `needle` appeared at least `n` times on stderr.
    pub fn wait_stderr_count(&self, needle: &str, n: usize) {
        self.wait_until(|err| err.matches(needle).count() >= n);
    }

    /// Waits until `done` holds for everything written to stderr so far;
    /// panics with the output when it does not in time.
    pub fn wait_until(&self, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.stderr()) {
            assert!(
                Instant::now() < deadline,
                "condition not met; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the child to exit on its own.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for warren") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "warren did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl with a time limit.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl (apt-get install curl)")
}

/// A folder under the system's temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty folder named after `name` and this process.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("warren-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An echo server on a std thread: every connection gets its bytes back;
/// returns its port.
pub fn echo_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut copy = stream.try_clone().unwrap();
                let _ = std::io::copy(&mut stream, &mut copy);
                let _ = copy.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// Writes `text` to `path` (a configuration file, a revocation list).
pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Starts `warren` with `args` and waits for its ready line.
pub fn start_ready(args: &[&str]) -> Running {
    let mut cmd = warren();
    cmd.args(args);
    let process = Running::start(cmd);
    // " ready ": "Address already in use" contains "ready".
    process.wait_stderr(" ready ");
    process
}

/// Starts `warren hub` with `dir/hub.toml`, then `warren agent` with
/// `dir/b.toml` and `dir/a.toml`, all on `runtime`, each once ready.
pub fn start_hub_b_a(dir: &Path, runtime: &str) -> (Running, Running, Running) {
    let start = |command: &str, file: &str| {
        let config = dir.join(file);
        start_ready(&[
            command,
            "--config",
            config.to_str().unwrap(),
            "--runtime",
            runtime,
        ])
    };
    let hub = start("hub", "hub.toml");
    let b = start("agent", "b.toml");
    let a = start("agent", "a.toml");
    (hub, b, a)
}

/// The `[identity]` table of a configuration whose certificate, key and
/// CA `warren ca issue` wrote to `folder` (relative to the file).
pub fn identity_toml(folder: &str) -> String {
    format!("[identity]\ncert = \"{folder}/cert.pem\"\nkey = \"{folder}/key.pem\"\nca = \"{folder}/ca.pem\"\n")
}

/// An agent's hub settings: dial the hub at `127.0.0.1:hub_port`, which
/// must prove `hub_id`.
pub fn hub_links_toml(hub_port: u16, hub_id: &str) -> String {
    format!("hubs = [\"127.0.0.1:{hub_port}\"]\nhub_identities = [\"{hub_id}\"]\n")
}

/// Runs `warren` to completion and checks it succeeded.
pub fn ok(args: &[&str]) {
    let out = warren().args(args).output().unwrap();
    assert!(out.status.success(), "warren {args:?}: {out:?}");
}

/// A test CA for trust domain `test.warren` made by `warren ca init` in
/// `dir/ca`, and a certificate from it for each `(id, folder)` made by
/// `warren ca issue` in `dir/folder`.
pub fn issue_pki(dir: &Path, ca: &str, issued: &[(&str, &str)]) {
    let d = |p: &str| dir.join(p).to_str().unwrap().to_owned();
    ok(&[
        "ca",
        "init",
        "--trust-domain",
        "test.warren",
        "--out",
        &d(ca),
    ]);
    for (id, out) in issued {
        ok(&["ca", "issue", "--ca", &d(ca), "--id", id, "--out", &d(out)]);
    }
}

/// A free loopback port for a configuration file, below Linux's ephemeral
/// range (32768 and up): a port the kernel hands out could be taken by any
/// outgoing connection between this check and the agent's bind. Each test
/// process starts at its own offset and never returns a port twice, so
/// concurrent tests rarely meet.
pub fn free_port() -> u16 {
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 15_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % COUNT;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (FIRST + (start + n) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
