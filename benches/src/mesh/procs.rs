//! The relay processes: starting and stopping them, and reading their CPU
//! time and resident memory from /proc (each figure covers a process and
//! all its descendants, e.g. socat's per-connection forks).

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

/// A relay process tree the bench started; killed (SIGTERM) and reaped on drop.
pub struct Daemon {
    pub(super) child: Child,
}

impl Daemon {
    /// Starts `cmd` with its output appended to `log`.
    pub fn start(cmd: &mut Command, log: &Path) -> io::Result<Daemon> {
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
pub fn have(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(bin).is_file()))
}

/// An unused loopback port (bound, then released for a child to take).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts on `port`.
pub fn wait_listen(port: u16) -> io::Result<()> {
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
pub fn clock_ticks() -> f64 {
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
pub fn tree_ticks(roots: &[u32]) -> u64 {
    let table = process_table();
    let members = tree_members(&table, roots);
    table
        .iter()
        .filter(|(pid, _, _)| members.contains(pid))
        .map(|(_, _, t)| t)
        .sum()
}

/// Resident memory (bytes) of `roots` and their descendants.
pub fn tree_rss(roots: &[u32]) -> u64 {
    tree_members(&process_table(), roots)
        .iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/statm")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum::<u64>()
        * 4096
}

/// Raises this process's open-file limit to its hard limit (children, the
/// relays included, inherit it) and returns that limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}
