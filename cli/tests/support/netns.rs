//! Network namespaces for one test, made with `ip netns` and removed when
//! dropped, even when the test panics.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

/// Namespaces this test made; each is deleted on drop (which also removes
/// the veth pairs inside).
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Makes a namespace per name, with loopback up. `Err` says why not
    /// (not root, no `ip`, a kernel without namespaces).
    pub fn create(names: &[String]) -> Result<Namespaces, String> {
        let mut made = Namespaces { names: Vec::new() };
        for name in names {
            let out = Command::new("ip")
                .args(["netns", "add", name])
                .output()
                .map_err(|e| format!("cannot run `ip` ({e}); install iproute2"))?;
            if !out.status.success() {
                return Err(format!(
                    "`ip netns add {name}` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            made.names.push(name.clone());
            made.ip(name, &["link", "set", "lo", "up"]);
        }
        Ok(made)
    }

    /// Runs `ip -n NS ARGS`; panics with its error when it fails.
    pub fn ip(&self, ns: &str, args: &[&str]) {
        let out = Command::new("ip")
            .args(["-n", ns])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ip -n {ns} {args:?}: {out:?}");
    }

    /// Runs `ARGS` inside `ns`.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap()
    }

    /// A veth pair between `a` (as `a_dev` with `a_addr`, CIDR) and `b`.
    pub fn link(
        &self,
        (a, a_dev, a_addr): (&str, &str, &str),
        (b, b_dev, b_addr): (&str, &str, &str),
    ) {
        self.ip(
            a,
            &[
                "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b,
            ],
        );
        self.ip(a, &["addr", "add", a_addr, "dev", a_dev]);
        self.ip(b, &["addr", "add", b_addr, "dev", b_dev]);
        self.ip(a, &["link", "set", a_dev, "up"]);
        self.ip(b, &["link", "set", b_dev, "up"]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs `f` on a thread that entered network namespace `ns` (sockets it
/// makes belong to `ns`, and threads it starts begin there).
pub fn inside<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(format!("/run/netns/{ns}")).unwrap();
                // SAFETY: setns only changes this thread's network
                // namespace; the descriptor is open for the call.
                let done = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(done, 0, "setns {ns}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
    })
}
