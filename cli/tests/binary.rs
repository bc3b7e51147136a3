//! The `warren` binary as a user runs it: exit codes, what it prints, and
//! that it never prints a key.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

fn warren(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .output()
        .expect("run warren")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("warren-binary-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn version_and_help() {
    let out = warren(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("warren {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = warren(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["zero-trust", "ca ", "config ", "--version"] {
        assert!(help.contains(word), "{help}");
    }
    let out = warren(&["ca", "ticket", "--help"]);
    assert!(text(&out.stdout).contains("--hub <ADDR>"));
    // No command: usage on stderr, failure.
    let out = warren(&[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Usage: warren <COMMAND>"));
}

#[test]
fn ca_init_issue_and_ticket_from_the_command_line() {
    let dir = TempDir::new("ca");
    let ca = dir.join("ca");
    let out = warren(&["ca", "init", "--trust-domain", "example.org", "--out", &ca]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("created CA for trust domain example.org"),
        "{stdout}"
    );
    assert!(stdout.contains(" UTC to "), "{stdout}");

    let again = warren(&["ca", "init", "--trust-domain", "example.org", "--out", &ca]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("refusing to overwrite"));

    let echo = dir.join("echo");
    let id = "spiffe://example.org/ns/demo/sa/echo";
    let out = warren(&[
        "ca", "issue", "--ca", &ca, "--id", id, "--out", &echo, "--days", "7",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("subject:   {id}")), "{stdout}");
    assert!(!stdout.contains("PRIVATE"));

    let out = warren(&[
        "ca",
        "issue",
        "--ca",
        &ca,
        "--id",
        "spiffe://other.org/ns/a/sa/b",
        "--out",
        &dir.join("x"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not in the CA's trust domain example.org"));

    // The issued files check out as an agent's identity.
    let config = dir.join("agent.toml");
    fs::write(
        &config,
        "[identity]\ncert = \"echo/cert.pem\"\nkey = \"echo/key.pem\"\nca = \"echo/ca.pem\"\n",
    )
    .unwrap();
    let out = warren(&["config", "check", "--identity", &config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("identity ok: {id} (trust domain example.org)")),
        "{}",
        text(&out.stdout)
    );

    let ticket = dir.join("t.toml");
    let out = warren(&[
        "ca",
        "ticket",
        "--ca",
        &ca,
        "--id",
        id,
        "--out",
        &ticket,
        "--hub",
        "hub.example.org:15008",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("PRIVATE"));
    assert!(fs::read_to_string(&ticket)
        .unwrap()
        .contains("hub.example.org:15008"));
}

#[test]
fn config_check_accepts_the_example_and_points_at_errors() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/agent.toml");
    let out = warren(&["config", "check", example]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tunnel:       127.0.0.1:18080 -> echo.demo:8080"));

    let dir = TempDir::new("config");
    let file = dir.join("bad.toml");
    fs::write(
        &file,
        "identity = { cert = \"c\", key = \"k\", ca = \"a\" }\n[socks5]\nlisten = \"127.0.0.1:99999\"\n",
    )
    .unwrap();
    let out = warren(&["config", "check", &file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "warren: {file}:3:10: `socks5.listen`: \"127.0.0.1:99999\""
        )),
        "{stderr}"
    );
}

#[test]
fn sim_runs_a_scenario_and_says_how_fast() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sim/scenarios/two-node-echo.toml"
    );
    let out = warren(&["sim", "run", scenario, "--seed", "4"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("trace-hash: "), "{stdout}");
    assert!(stdout.contains("x real time"), "{stdout}");
    // The same seed, the same hash.
    let again = warren(&["sim", "run", scenario, "--seed", "4"]);
    assert_eq!(stdout.lines().next(), text(&again.stdout).lines().next());
    // A file that cannot be read: exit code 2, not a violation's 1.
    let out = warren(&["sim", "run", "/nonexistent/scenario.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/scenario.toml"));
}
