//! The relay processes: starting and stopping them, and reading their CPU
//! time and resident memory from /proc (each figure covers a process and
//! all its descendants, e.g. socat's per-connection forks).

use std::collections::BTreeMap;
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

/// (pid, ppid) of every process.
fn process_table() -> Vec<(u32, u32)> {
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
        // The command name may hold spaces: fields start after the last ')';
        // the first is field 3 (state), the second field 4 (ppid).
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
        else {
            continue;
        };
        out.push((pid, ppid));
    }
    out
}

/// `roots` and all their descendants, from a snapshot of the process table.
fn tree_members(table: &[(u32, u32)], roots: &[u32]) -> Vec<u32> {
    let mut members: Vec<u32> = roots.to_vec();
    let mut grew = true;
    while grew {
        grew = false;
        for &(pid, ppid) in table {
            if members.contains(&ppid) && !members.contains(&pid) {
                members.push(pid);
                grew = true;
            }
        }
    }
    members
}

/// CPU time each live task (thread) of a process tree had used when read,
/// in nanoseconds, by task id: from `/proc/<pid>/task/<tid>/schedstat`,
/// which counts nanoseconds where `/proc/<pid>/stat` counts 10 ms ticks
/// (a 0.15 s window of two agents is ~30 ticks, too coarse per round).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskCpu(pub BTreeMap<u32, u64>);

impl TaskCpu {
    /// CPU time used since `earlier`, in seconds: each task's growth, a task
    /// that started since counted whole. A task that ended since is not
    /// counted (its share inside the window is lost; the bench's relays
    /// keep their tasks for a flow's life, so this is at most a teardown).
    pub fn since(&self, earlier: &TaskCpu) -> f64 {
        let ns: u64 = self
            .0
            .iter()
            .map(|(tid, &now)| now.saturating_sub(earlier.0.get(tid).copied().unwrap_or(0)))
            .sum();
        ns as f64 / 1e9
    }
}

/// The CPU time of every live task of `roots` and their descendants; None
/// when no task's schedstat could be read (a kernel without schedstats).
pub fn tree_cpu(roots: &[u32]) -> Option<TaskCpu> {
    let mut tasks = BTreeMap::new();
    for pid in tree_members(&process_table(), roots) {
        let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for entry in dir.flatten() {
            let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let ns = fs::read_to_string(entry.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(ns) = ns {
                tasks.insert(tid, ns);
            }
        }
    }
    (!tasks.is_empty()).then_some(TaskCpu(tasks))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_since_counts_growth_and_new_tasks_and_drops_ended_ones() {
        let earlier = TaskCpu([(1, 1_000_000_000), (2, 500_000_000), (3, 7)].into());
        // Task 1 grew 0.25 s, task 2 not at all, task 3 ended, task 4 started and used 0.5 s.
        let later = TaskCpu([(1, 1_250_000_000), (2, 500_000_000), (4, 500_000_000)].into());
        assert_eq!(later.since(&earlier), 0.75);
        // A counter that went backwards (a reused task id) is no negative time.
        let reused = TaskCpu([(1, 10)].into());
        assert_eq!(reused.since(&earlier), 0.0);
    }

    #[test]
    fn this_process_tree_has_cpu_time_that_only_grows() {
        let me = std::process::id();
        let before = tree_cpu(&[me]).expect("schedstat is readable on Linux");
        // Burn a little CPU so there is growth to see.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = tree_cpu(&[me]).expect("schedstat is readable on Linux");
        assert!(after.since(&before) > 0.0);
        assert!(!before.0.is_empty() && after.0.contains_key(&me));
    }
}
