//! Claim files: which process is running which job of a batch whose output folder several
//! processes share (Slurm array tasks on a shared file system, or two runs started by mistake).
//!
//! A claim is `OUT/<job>.claim`, a small JSON record (host, pid, Slurm job, start time). It is
//! written whole to a temporary file and published with `link(2)`, which fails when the name
//! exists: the atomic create-if-absent that also holds on NFS. The holder refreshes its mtime
//! every [`heartbeat`] while the job runs and removes it when the job has ended.
//!
//! A claim left by a process that died (kill -9, a node crash, a cancelled or preempted Slurm
//! task) is *stale* and is taken over: when it names this host and a process that no longer runs
//! (pid and start time), when it names this Slurm job at an earlier restart (a requeued task
//! runs again under the same job id), or when its heartbeat is older than the stale limit (a
//! claim from another host, whose processes we cannot see).
//!
//! Claims only keep two processes from doing the same work; they are not what keeps outputs
//! whole. A job's folder is renamed into place only where none exists (`io::atomic::write_dir`),
//! so even a job run twice (a claim taken over from a process that was merely slow) ends with
//! one complete folder, the first one finished.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How long a claim from another host may go without a heartbeat before it is taken over. Long
/// against NFS attribute caching (seconds) and clock skew between nodes; short against a job.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(300);

/// The heartbeat interval for a stale limit: ten beats fit in it, so a few missed ones (a busy
/// file server) do not make a live claim look stale.
pub fn heartbeat(stale_after: Duration) -> Duration {
    stale_after / 10
}

/// Who holds (or held) a claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claimant {
    pub host: String,
    pub pid: u32,
    /// The process's start time (clock ticks after boot, /proc/PID/stat field 22): a pid the
    /// kernel reused for another process does not pass for the claimant.
    pub pid_start: Option<u64>,
    /// `SLURM_JOB_ID` (an array task's own id) and, for an array task, `ARRAYJOB_TASK`.
    pub slurm_job: Option<String>,
    pub slurm_array_task: Option<String>,
    /// `SLURM_RESTART_COUNT`: how many times Slurm requeued this job (0 the first time).
    pub slurm_restart: u32,
    /// When the claim was made, seconds since the Unix epoch.
    pub started: u64,
    /// Unique per claim: tells a claim we published from one that replaced it.
    pub token: String,
}

impl Claimant {
    /// This process, from the kernel and the Slurm environment.
    pub fn current() -> Claimant {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let pid = std::process::id();
        Claimant {
            host: hostname(),
            pid,
            pid_start: process_start(pid),
            slurm_job: env("SLURM_JOB_ID"),
            slurm_array_task: env("SLURM_ARRAY_JOB_ID")
                .zip(env("SLURM_ARRAY_TASK_ID"))
                .map(|(j, t)| format!("{j}_{t}")),
            slurm_restart: env("SLURM_RESTART_COUNT")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            started: unix_now(),
            token: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// `host pid 123, Slurm job 45 (array task 44_1), since 2026-12-01 14:00:00 UTC`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} pid {}", self.host, self.pid);
        if let Some(j) = &self.slurm_job {
            s.push_str(&format!(", Slurm job {j}"));
            if let Some(t) = &self.slurm_array_task {
                s.push_str(&format!(" (array task {t})"));
            }
            if self.slurm_restart > 0 {
                s.push_str(&format!(" restart {}", self.slurm_restart));
            }
        }
        s.push_str(&format!(", since {}", format_time(self.started)));
        s
    }
}

/// A claim as found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    /// None when the file is not a claim record we can read (written by hand, truncated by a
    /// full disk): then only its age counts.
    pub claimant: Option<Claimant>,
    pub modified: SystemTime,
    bytes: Vec<u8>,
}

/// The claim file of job `name` in the batch folder `out`.
pub fn path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.claim"))
}

/// Read a claim file; None when there is none.
pub fn read(path: &Path) -> Result<Option<Found>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    let modified = match std::fs::metadata(path) {
        Ok(m) => m.modified().unwrap_or_else(|_| SystemTime::now()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    Ok(Some(Found {
        claimant: serde_json::from_slice(&bytes).ok(),
        modified,
        bytes,
    }))
}

/// Why `found` no longer holds, as seen by `me`; None while it may still be running.
pub fn stale_reason(
    found: &Found,
    me: &Claimant,
    now: SystemTime,
    stale_after: Duration,
) -> Option<String> {
    let age = now.duration_since(found.modified).unwrap_or_default();
    let Some(c) = &found.claimant else {
        return (age > stale_after)
            .then(|| format!("an unreadable claim, untouched for {} s", age.as_secs()));
    };
    if c.token == me.token {
        return None;
    }
    if c.slurm_job.is_some() && c.slurm_job == me.slurm_job && c.slurm_restart < me.slurm_restart {
        return Some(format!(
            "Slurm requeued job {} (restart {} -> {})",
            me.slurm_job.as_deref().unwrap_or(""),
            c.slurm_restart,
            me.slurm_restart
        ));
    }
    if c.host == me.host {
        // Only on a system with /proc can we look at another process; elsewhere the heartbeat
        // decides, as for another host.
        if process_start(me.pid).is_some() {
            let alive = match (process_start(c.pid), c.pid_start) {
                (Some(now_start), Some(then)) => now_start == then,
                (Some(_), None) => true,
                (None, _) => false,
            };
            return (!alive).then(|| format!("process {} on {} has ended", c.pid, c.host));
        }
    }
    (age > stale_after).then(|| {
        format!(
            "no heartbeat from {} pid {} for {} s",
            c.host,
            c.pid,
            age.as_secs()
        )
    })
}

/// The outcome of [`acquire`].
pub enum Acquired {
    /// This process holds the claim until the guard is dropped; `recovered` says whose stale
    /// claim it replaced, and why it was stale.
    Held {
        guard: ClaimGuard,
        recovered: Option<String>,
    },
    /// Another live process holds it.
    Busy(Found),
}

/// Claim job `name` in `out` for `me`, taking over a stale claim.
pub fn acquire(out: &Path, name: &str, me: &Claimant, stale_after: Duration) -> Result<Acquired> {
    let path = path(out, name);
    let record = serde_json::to_vec_pretty(me)?;
    let mut recovered = None;
    let lock = out.join(format!("{name}.claim.takeover"));
    // Each round publishes our claim, finds a live one, or removes a stale one; a round is lost
    // only to another process doing the same at that moment.
    for _ in 0..400 {
        if publish(&path, &record)? {
            return Ok(Acquired::Held {
                guard: ClaimGuard::start(path, me.token.clone(), heartbeat(stale_after)),
                recovered,
            });
        }
        let Some(found) = read(&path)? else {
            continue;
        };
        let Some(reason) = stale_reason(&found, me, SystemTime::now(), stale_after) else {
            return Ok(Acquired::Busy(found));
        };
        // Only the holder of the takeover lock removes a stale claim, and only after checking,
        // under the lock, that the claim is still the one judged stale: a fresh claim published
        // meanwhile by whoever took over first is never removed.
        if !publish(&lock, &record)? {
            if let Ok(Some(l)) = read(&lock) {
                // Held for milliseconds; one this old belongs to a process that died holding it.
                let age = SystemTime::now()
                    .duration_since(l.modified)
                    .unwrap_or_default();
                if age > TAKEOVER_LOCK_STALE {
                    let _ = std::fs::remove_file(&lock);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let still = std::fs::read(&path).ok();
        if still.as_deref() == Some(&found.bytes[..]) {
            std::fs::remove_file(&path)
                .with_context(|| format!("{}: cannot remove a stale claim", path.display()))?;
            let who = found
                .claimant
                .as_ref()
                .map(|c| c.describe())
                .unwrap_or_else(|| "unknown".into());
            recovered = Some(format!("{who}: {reason}"));
        }
        let _ = std::fs::remove_file(&lock);
    }
    bail!(
        "{}: could not claim the job (other processes kept claiming and releasing it): run the batch again",
        path.display()
    )
}

/// A takeover lock older than this was left by a process that died holding it.
const TAKEOVER_LOCK_STALE: Duration = Duration::from_secs(60);

/// Publish `record` at `path` unless a claim is there: true when ours is.
fn publish(path: &Path, record: &[u8]) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".scorerecon-")
        .suffix(".claim")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a claim file", dir.display()))?;
    std::fs::write(tmp.path(), record)
        .with_context(|| format!("{}: cannot write a claim file", dir.display()))?;
    match std::fs::hard_link(tmp.path(), path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links (some FUSE and SMB mounts): O_EXCL creation is
        // atomic too, only a reader may then see the claim before its record (a claim it cannot
        // read, judged by its age).
        Err(e) if e.kind() == ErrorKind::Unsupported || e.kind() == ErrorKind::PermissionDenied => {
            match std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(record)
                        .with_context(|| format!("{}: cannot write the claim", path.display()))?;
                    Ok(true)
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                Err(e) => {
                    Err(e).with_context(|| format!("{}: cannot create the claim", path.display()))
                }
            }
        }
        Err(e) => Err(e).with_context(|| format!("{}: cannot create the claim", path.display())),
    }
}

/// A held claim: a heartbeat thread keeps it fresh; dropping the guard stops it and removes the
/// claim if it is still ours.
pub struct ClaimGuard {
    path: PathBuf,
    token: String,
    stop: Option<mpsc::Sender<()>>,
    beat: Option<JoinHandle<()>>,
}

impl ClaimGuard {
    fn start(path: PathBuf, token: String, every: Duration) -> ClaimGuard {
        let (stop, stopped) = mpsc::channel::<()>();
        let p = path.clone();
        let beat = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                if let Ok(f) = std::fs::File::options().write(true).open(&p) {
                    let _ = f.set_modified(SystemTime::now());
                }
            }
        });
        ClaimGuard {
            path,
            token,
            stop: Some(stop),
            beat: Some(beat),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(b) = self.beat.take() {
            let _ = b.join();
        }
        // A claim taken over while we ran (we looked dead to someone) is theirs now: leave it.
        if let Ok(Some(f)) = read(&self.path) {
            if f.claimant.map(|c| c.token == self.token).unwrap_or(false) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-12-01 14:00:00 UTC`.
pub fn format_time(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A process's start time from /proc/PID/stat (field 22, after the parenthesised command name,
/// which may itself hold spaces); None when it does not run or there is no /proc.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Claimant {
        Claimant::current()
    }

    fn write_claim(out: &Path, name: &str, c: &Claimant) {
        std::fs::write(path(out, name), serde_json::to_vec(c).unwrap()).unwrap();
    }

    fn age(out: &Path, name: &str, secs: u64) {
        let f = std::fs::File::options()
            .write(true)
            .open(path(out, name))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    fn held(a: Acquired) -> (ClaimGuard, Option<String>) {
        match a {
            Acquired::Held { guard, recovered } => (guard, recovered),
            Acquired::Busy(f) => panic!("busy: {:?}", f.claimant),
        }
    }

    /// A process that has ended, with its real pid and start time as it ran.
    fn ended_process() -> Claimant {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = process_start(pid);
        child.wait().unwrap();
        Claimant {
            pid,
            pid_start: start,
            token: "crashed".into(),
            ..me()
        }
    }

    #[test]
    fn a_claim_is_exclusive_and_released() {
        let d = tempfile::tempdir().unwrap();
        let (guard, recovered) = held(acquire(d.path(), "a", &me(), DEFAULT_STALE_AFTER).unwrap());
        assert!(recovered.is_none());
        assert!(guard.path().exists());
        // A second claimant in this very process (another token) finds it busy.
        match acquire(d.path(), "a", &me(), DEFAULT_STALE_AFTER).unwrap() {
            Acquired::Busy(f) => assert_eq!(f.claimant.unwrap().pid, std::process::id()),
            Acquired::Held { .. } => panic!("claimed twice"),
        }
        drop(guard);
        assert!(!path(d.path(), "a").exists());
        let _ = held(acquire(d.path(), "a", &me(), DEFAULT_STALE_AFTER).unwrap());
    }

    #[test]
    fn a_crashed_claimant_on_this_host_is_recovered_at_once() {
        let d = tempfile::tempdir().unwrap();
        let dead = ended_process();
        write_claim(d.path(), "a", &dead);
        let (_g, recovered) = held(acquire(d.path(), "a", &me(), DEFAULT_STALE_AFTER).unwrap());
        let why = recovered.expect("the stale claim was replaced");
        assert!(why.contains(&format!("process {} on", dead.pid)), "{why}");
        let now: Claimant =
            serde_json::from_slice(&std::fs::read(path(d.path(), "a")).unwrap()).unwrap();
        assert_eq!(now.pid, std::process::id());
        // Nothing of the old claim is left beside it.
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.claim"]);
    }

    #[test]
    fn a_reused_pid_does_not_pass_for_the_claimant() {
        // Our own pid, but recorded with another start time: the process that claimed has ended
        // and the kernel gave its pid to us.
        let d = tempfile::tempdir().unwrap();
        let mut old = me();
        old.pid_start = old.pid_start.map(|s| s + 1);
        old.token = "old".into();
        write_claim(d.path(), "a", &old);
        let (_g, recovered) = held(acquire(d.path(), "a", &me(), DEFAULT_STALE_AFTER).unwrap());
        assert!(recovered.is_some());
    }

    #[test]
    fn another_hosts_claim_is_kept_while_its_heartbeat_is_fresh() {
        let d = tempfile::tempdir().unwrap();
        let other = Claimant {
            host: "node-elsewhere".into(),
            token: "other".into(),
            ..me()
        };
        write_claim(d.path(), "a", &other);
        age(d.path(), "a", 30);
        let limit = Duration::from_secs(60);
        assert!(matches!(
            acquire(d.path(), "a", &me(), limit).unwrap(),
            Acquired::Busy(_)
        ));
        age(d.path(), "a", 61);
        let (_g, recovered) = held(acquire(d.path(), "a", &me(), limit).unwrap());
        assert!(recovered
            .unwrap()
            .contains("no heartbeat from node-elsewhere"));
    }

    #[test]
    fn a_requeued_slurm_task_takes_over_its_earlier_run() {
        let d = tempfile::tempdir().unwrap();
        let before = Claimant {
            host: "node-7".into(),
            slurm_job: Some("41".into()),
            slurm_restart: 0,
            token: "before".into(),
            ..me()
        };
        write_claim(d.path(), "a", &before);
        let now = Claimant {
            slurm_job: Some("41".into()),
            slurm_restart: 1,
            ..me()
        };
        let (_g, recovered) = held(acquire(d.path(), "a", &now, DEFAULT_STALE_AFTER).unwrap());
        assert!(recovered.unwrap().contains("requeued"));
        // Another job's fresh claim on another host is not this task's to take.
        let e = tempfile::tempdir().unwrap();
        write_claim(
            e.path(),
            "a",
            &Claimant {
                slurm_job: Some("40".into()),
                ..before
            },
        );
        assert!(matches!(
            acquire(e.path(), "a", &now, DEFAULT_STALE_AFTER).unwrap(),
            Acquired::Busy(_)
        ));
    }

    #[test]
    fn the_heartbeat_keeps_a_claim_fresh_and_release_keeps_a_claim_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let limit = Duration::from_millis(500);
        let (guard, _) = held(acquire(d.path(), "a", &me(), limit).unwrap());
        age(d.path(), "a", 3600);
        std::thread::sleep(Duration::from_millis(200));
        let f = read(&path(d.path(), "a")).unwrap().unwrap();
        assert!(
            SystemTime::now().duration_since(f.modified).unwrap() < Duration::from_secs(5),
            "no heartbeat"
        );
        // Someone judged us dead and took over: our release must not remove their claim.
        let theirs = Claimant {
            token: "theirs".into(),
            ..me()
        };
        write_claim(d.path(), "a", &theirs);
        drop(guard);
        let f = read(&path(d.path(), "a")).unwrap().unwrap();
        assert_eq!(f.claimant.unwrap().token, "theirs");
    }

    #[test]
    fn racing_claimants_of_one_stale_claim_end_with_one_holder() {
        // Eight threads, each its own claimant, all find the same crashed claim at once.
        for round in 0..20 {
            let d = tempfile::tempdir().unwrap();
            write_claim(d.path(), "a", &ended_process());
            let barrier = std::sync::Barrier::new(8);
            let holders = std::sync::Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        let mine = me();
                        barrier.wait();
                        if let Acquired::Held { guard, .. } =
                            acquire(d.path(), "a", &mine, DEFAULT_STALE_AFTER).unwrap()
                        {
                            holders.lock().unwrap().push((mine.token, guard));
                        }
                    });
                }
            });
            let holders = holders.into_inner().unwrap();
            assert_eq!(holders.len(), 1, "round {round}: {} holders", holders.len());
            let on_disk = read(&path(d.path(), "a"))
                .unwrap()
                .unwrap()
                .claimant
                .unwrap();
            assert_eq!(on_disk.token, holders[0].0);
        }
    }
}
