//! `scorerecon batch MANIFEST --status`: where every job of a batch stands, read from the output
//! folder alone (job folders, `.error.txt` files, claims), so it works from any machine that
//! sees the shared folder while the batch runs.

use super::claim::{self, Claimant};
use super::Manifest;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Where one job stands.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Its folder is in place.
    Done,
    /// Its last run failed: the reason (`<name>.error.txt`, first line).
    Failed(String),
    /// A live process holds its claim: who, and seconds since its last heartbeat.
    Running { by: String, heartbeat_s: u64 },
    /// Its claim belongs to a process that is gone (killed, cancelled, preempted): who and why
    /// that is known; the next run of its shard redoes it.
    Interrupted { by: String, why: String },
    /// Not started.
    Pending,
}

#[derive(Debug, Clone)]
pub struct JobStatus {
    pub name: String,
    pub state: JobState,
}

/// Every job of `manifest` in `out`, in manifest order. A claim is judged as the batch itself
/// would judge it from this process (`claim::stale_reason`).
pub fn status(manifest: &Manifest, out: &Path, stale_after: Duration) -> Vec<JobStatus> {
    let me = Claimant::current();
    let now = SystemTime::now();
    manifest
        .jobs
        .iter()
        .map(|job| {
            let state = if out.join(&job.name).join("metrics.json").exists() {
                JobState::Done
            } else if let Ok(Some(found)) = claim::read(&claim::path(out, &job.name)) {
                let by = found
                    .claimant
                    .as_ref()
                    .map(|c| c.describe())
                    .unwrap_or_else(|| "an unreadable claim".into());
                match claim::stale_reason(&found, &me, now, stale_after) {
                    Some(why) => JobState::Interrupted { by, why },
                    None => JobState::Running {
                        by,
                        heartbeat_s: now
                            .duration_since(found.modified)
                            .unwrap_or_default()
                            .as_secs(),
                    },
                }
            } else if let Ok(text) =
                std::fs::read_to_string(out.join(format!("{}.error.txt", job.name)))
            {
                JobState::Failed(text.lines().next().unwrap_or("").trim().to_string())
            } else {
                JobState::Pending
            };
            JobStatus {
                name: job.name.clone(),
                state,
            }
        })
        .collect()
}

/// Counts in the order the report lists them: done, failed, running, interrupted, pending.
pub fn counts(jobs: &[JobStatus]) -> [usize; 5] {
    let mut c = [0; 5];
    for j in jobs {
        c[match j.state {
            JobState::Done => 0,
            JobState::Failed(_) => 1,
            JobState::Running { .. } => 2,
            JobState::Interrupted { .. } => 3,
            JobState::Pending => 4,
        }] += 1;
    }
    c
}

/// The report: a line of counts, then one line per job that is not done (and, with `all`,
/// per done job too).
pub fn render(jobs: &[JobStatus], all: bool) -> String {
    let [done, failed, running, interrupted, pending] = counts(jobs);
    let mut s = format!(
        "{} jobs: {done} done, {failed} failed, {running} running, {interrupted} interrupted, {pending} pending\n",
        jobs.len()
    );
    for j in jobs {
        let _ = match &j.state {
            JobState::Done if all => writeln!(s, "done         {}", j.name),
            JobState::Done => Ok(()),
            JobState::Failed(why) => writeln!(s, "failed       {}: {why}", j.name),
            JobState::Running { by, heartbeat_s } => writeln!(
                s,
                "running      {}: claimed by {by}; last heartbeat {heartbeat_s} s ago",
                j.name
            ),
            JobState::Interrupted { by, why } => writeln!(
                s,
                "interrupted  {}: claimed by {by}; {why}; its shard's next run redoes it",
                j.name
            ),
            JobState::Pending => writeln!(s, "pending      {}", j.name),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::load_manifest;

    #[test]
    fn each_state_is_read_from_the_folder() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m.yaml");
        std::fs::write(
            &m,
            "jobs:\n  - {input: done.nii}\n  - {input: bad.nii}\n  - {input: run.nii}\n  - {input: dead.nii}\n  - {input: todo.nii}\n",
        )
        .unwrap();
        let m = load_manifest(&m).unwrap();
        let out = d.path().join("out");
        std::fs::create_dir_all(out.join("done")).unwrap();
        std::fs::write(out.join("done/metrics.json"), "{}").unwrap();
        std::fs::write(out.join("bad.error.txt"), "bad.nii: no such file\nmore\n").unwrap();
        let live = Claimant {
            slurm_job: Some("17".into()),
            slurm_array_task: Some("15_2".into()),
            ..Claimant::current()
        };
        std::fs::write(claim::path(&out, "run"), serde_json::to_vec(&live).unwrap()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = Claimant {
            pid: child.id(),
            pid_start: claim::process_start(child.id()),
            ..Claimant::current()
        };
        child.wait().unwrap();
        std::fs::write(
            claim::path(&out, "dead"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let st = status(&m, &out, claim::DEFAULT_STALE_AFTER);
        assert_eq!(st[0].state, JobState::Done);
        assert_eq!(
            st[1].state,
            JobState::Failed("bad.nii: no such file".into())
        );
        match &st[2].state {
            JobState::Running { by, .. } => {
                assert!(by.contains(&format!("pid {}", std::process::id())), "{by}");
                assert!(by.contains("Slurm job 17 (array task 15_2)"), "{by}");
            }
            other => panic!("{other:?}"),
        }
        match &st[3].state {
            JobState::Interrupted { why, .. } => assert!(why.contains("has ended"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(st[4].state, JobState::Pending);
        let text = render(&st, false);
        assert!(
            text.starts_with("5 jobs: 1 done, 1 failed, 1 running, 1 interrupted, 1 pending\n"),
            "{text}"
        );
        assert!(
            text.contains("failed       bad: bad.nii: no such file"),
            "{text}"
        );
        assert!(!text.contains("done         done"));
        assert!(render(&st, true).contains("done         done"));
    }
}
