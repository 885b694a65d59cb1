//! `scorerecon batch MANIFEST.yaml`: many jobs, each written atomically into `OUT/<job name>/`.
//!
//! Guarantees (docs/user-guide.md, "batch"):
//! - a job's folder appears only when the job finished (staged under a temporary name, renamed into
//!   place), so `kill -9` at any moment loses nothing already finished and leaves no half-written job;
//! - a rerun skips jobs whose folder exists and redoes the rest;
//! - a failing job is recorded (`OUT/<name>.error.txt` and the summary) and the batch goes on;
//! - `OUT/summary.csv` and `OUT/summary.html` give mean +- std per method over finished jobs;
//! - several processes may share `OUT` (`--shard I/N`, Slurm array tasks: `shard`, `slurm`): each
//!   job is claimed before it runs (`claim`), a claim of a process that died is taken over, and a
//!   job folder never replaces another, so a job run twice by mistake still ends whole, once.
//!
//! Manifest:
//! ```yaml
//! out: results/mar          # optional; --out overrides it
//! defaults: {task: mar, model: "knn:refs/", steps: 60}
//! jobs:
//!   - {name: head01, input: scans/head01.nii.gz}
//!   - {input: scans/head02/}  # name defaults to the input's file stem
//! ```
//! Relative paths (`input`, `config`, and `model` unless it is a shipped name) are taken relative
//! to the manifest's folder.

pub mod claim;
pub mod shard;
pub mod slurm;
pub mod status;

use crate::io::atomic;
use crate::report::{html, JobReport};
use anyhow::{bail, Context, Result};
use claim::Claimant;
use serde_yaml_ng::{Mapping, Value};
pub use shard::Shard;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A job as read from the manifest: its name and its settings (defaults merged in).
#[derive(Debug, Clone)]
pub struct BatchJob {
    pub name: String,
    pub spec: Mapping,
}

#[derive(Debug)]
pub struct Manifest {
    pub out: Option<PathBuf>,
    pub jobs: Vec<BatchJob>,
}

const PATH_KEYS: [&str; 3] = ["input", "config", "model"];

/// Read and check a manifest: every job has an input, names are unique and safe as folder names.
pub fn load_manifest(path: &Path) -> Result<Manifest> {
    let top = crate::io::yaml::read_mapping(path, "manifest")?;
    for k in top.keys() {
        let k = k.as_str().unwrap_or("");
        if !["out", "defaults", "jobs"].contains(&k) {
            bail!(
                "{}: unknown key `{k}` (expected out, defaults, jobs)",
                path.display()
            );
        }
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let defaults = match top.get("defaults") {
        None => Mapping::new(),
        Some(Value::Mapping(m)) => m.clone(),
        Some(_) => bail!("{}: `defaults` must be a mapping", path.display()),
    };
    let Some(Value::Sequence(items)) = top.get("jobs") else {
        bail!("{}: `jobs` must be a list of jobs", path.display())
    };
    if items.is_empty() {
        bail!("{}: `jobs` is empty", path.display());
    }
    let mut names = BTreeSet::new();
    let mut jobs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Mapping(m) = item else {
            bail!("{}: job {} is not a mapping", path.display(), i + 1)
        };
        let mut spec = defaults.clone();
        for (k, v) in m {
            spec.insert(k.clone(), v.clone());
        }
        for key in PATH_KEYS {
            if let Some(Value::String(s)) = spec.get(key).cloned() {
                spec.insert(key.into(), Value::String(resolve(&base, key, &s)));
            }
        }
        let Some(Value::String(input)) = spec.get("input").cloned() else {
            bail!("{}: job {} has no `input`", path.display(), i + 1)
        };
        let name = match spec.remove("name") {
            Some(Value::String(n)) => n,
            Some(_) => bail!("{}: job {}: `name` must be a string", path.display(), i + 1),
            None => stem(&input),
        };
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            bail!(
                "{}: job {}: name `{name}` cannot be used as a folder name",
                path.display(),
                i + 1
            );
        }
        if !names.insert(name.clone()) {
            bail!(
                "{}: two jobs are named `{name}`; give them distinct `name:` values",
                path.display()
            );
        }
        jobs.push(BatchJob { name, spec });
    }
    let out = match top.get("out") {
        Some(Value::String(s)) => Some(PathBuf::from(resolve(&base, "out", s))),
        _ => None,
    };
    Ok(Manifest { out, jobs })
}

fn resolve(base: &Path, key: &str, s: &str) -> String {
    if key == "model" {
        // `knn:FOLDER` / `empirical:FOLDER` carry a path; a bare shipped name (no slash, no
        // extension) does not.
        for prefix in ["knn:", "empirical:"] {
            if let Some(folder) = s.strip_prefix(prefix) {
                return format!("{prefix}{}", resolve(base, "input", folder));
            }
        }
        if !s.contains('/') && !s.contains('.') {
            return s.to_string();
        }
    }
    let p = Path::new(s);
    if p.is_absolute() {
        s.to_string()
    } else {
        base.join(p).to_string_lossy().into_owned()
    }
}

fn stem(input: &str) -> String {
    let name = Path::new(input.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.trim_end_matches(".gz")
        .trim_end_matches(".nii")
        .trim_end_matches(".dcm")
        .to_string()
}

/// How one process runs its part of a batch.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The jobs this process runs (all of them by default).
    pub shard: Shard,
    /// No progress and no per-job lines.
    pub quiet: bool,
    /// When another host's claim without a heartbeat counts as abandoned (`claim`).
    pub stale_after: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            shard: Shard::ALL,
            quiet: false,
            stale_after: claim::DEFAULT_STALE_AFTER,
        }
    }
}

/// What happened to each of this shard's jobs, in manifest order.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub finished: Vec<String>,
    /// Done before (by an earlier run, or by another process meanwhile).
    pub skipped: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// Held by another live process: (job, who).
    pub busy: Vec<(String, String)>,
}

/// Run this shard's unfinished jobs through `run` (which writes the job's outputs into the
/// folder it is given and returns the report), then write the summary. Each job is claimed
/// first (`claim`), so processes sharing `out` never run one job at the same time; a claim left
/// by a process that died is taken over, with whatever it left half-staged.
pub fn run_batch<F>(
    manifest: &Manifest,
    out: &Path,
    options: &RunOptions,
    run: F,
) -> Result<BatchOutcome>
where
    F: Fn(&BatchJob, &Path) -> Result<JobReport>,
{
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the batch folder", out.display()))?;
    remove_old_temporary_files(out);
    let mine: Vec<usize> = options.shard.jobs(manifest.jobs.len()).collect();
    let bar = crate::progress::bar(mine.len() as u64, "jobs", options.quiet);
    let me = Claimant::current();
    let mut outcome = BatchOutcome::default();
    if options.shard != Shard::ALL {
        bar.println(format!(
            "shard {}: {} of {} jobs, as {}",
            options.shard,
            mine.len(),
            manifest.jobs.len(),
            me.describe()
        ));
    }
    for &k in &mine {
        let job = &manifest.jobs[k];
        let dir = out.join(&job.name);
        bar.set_message(job.name.clone());
        let done = || dir.join("metrics.json").exists();
        if done() {
            bar.println(format!("job {}: already done", job.name));
            outcome.skipped.push(job.name.clone());
            bar.inc(1);
            continue;
        }
        let guard = match claim::acquire(out, &job.name, &me, options.stale_after)? {
            claim::Acquired::Busy(found) => {
                let who = found
                    .claimant
                    .map(|c| c.describe())
                    .unwrap_or_else(|| "an unreadable claim".into());
                bar.println(format!("job {}: claimed by {who}; left to it", job.name));
                outcome.busy.push((job.name.clone(), who));
                bar.inc(1);
                continue;
            }
            claim::Acquired::Held { guard, recovered } => {
                if let Some(r) = recovered {
                    bar.println(format!(
                        "job {}: took over the stale claim of {r}",
                        job.name
                    ));
                }
                guard
            }
        };
        // Finished by the process whose claim we waited out or took over.
        if done() {
            bar.println(format!("job {}: already done", job.name));
            outcome.skipped.push(job.name.clone());
            bar.inc(1);
            continue;
        }
        // Ours now: what a killed run of this job staged can go.
        for left in atomic::leftover_staging(&dir) {
            let _ = std::fs::remove_dir_all(left);
        }
        bar.println(format!("job {}: started", job.name));
        let t0 = std::time::Instant::now();
        let result = job_input(job)
            .map_or(Ok(()), |input| atomic::check_not_input(&dir, &[input]))
            .and_then(|()| atomic::write_dir(&dir, false, |staging| run(job, staging).map(|_| ())));
        let err_file = out.join(format!("{}.error.txt", job.name));
        match result {
            Ok(()) => {
                let _ = std::fs::remove_file(&err_file);
                bar.println(format!(
                    "job {}: done in {:.1} s",
                    job.name,
                    t0.elapsed().as_secs_f64()
                ));
                outcome.finished.push(job.name.clone());
            }
            // Another process finished it first (its claim was taken over from it while it
            // still ran): its folder stands, ours was discarded.
            Err(_) if done() => {
                bar.println(format!(
                    "job {}: finished meanwhile by another process; this run's copy discarded",
                    job.name
                ));
                outcome.skipped.push(job.name.clone());
            }
            Err(e) => {
                let msg = format!("{e:#}");
                bar.println(format!("job {} failed: {msg}", job.name));
                let _ = atomic::write_file(&err_file, true, |t| {
                    Ok(std::fs::write(t, format!("{msg}\n"))?)
                });
                outcome.failed.push((job.name.clone(), msg));
            }
        }
        drop(guard);
        bar.inc(1);
        write_summary(manifest, out)?;
    }
    bar.finish_and_clear();
    write_summary(manifest, out)?;
    Ok(outcome)
}

/// Temporary files (`io::atomic::write_file`'s, a claim being published) of a process killed
/// while writing them: written in moments, so one an hour old is nobody's. Staging folders of
/// jobs are removed per job, by the claim's holder.
fn remove_old_temporary_files(out: &Path) {
    let Ok(rd) = std::fs::read_dir(out) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for e in rd.flatten() {
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old && e.file_name().to_string_lossy().starts_with(".scorerecon-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A job's input path, which its output folder may not hold.
fn job_input(job: &BatchJob) -> Option<&Path> {
    job.spec
        .get("input")
        .and_then(|v| v.as_str())
        .map(Path::new)
}

/// What a summary row holds for a job a killed batch never reached (not a failure).
pub const NOT_RUN: &str = "not run yet";

/// `summary.csv` (one row per job and method) and `summary.html` (mean +- std per method).
pub fn write_summary(manifest: &Manifest, out: &Path) -> Result<()> {
    let mut rows: Vec<(String, std::result::Result<JobReport, String>)> = Vec::new();
    for job in &manifest.jobs {
        let m = out.join(&job.name).join("metrics.json");
        let e = out.join(format!("{}.error.txt", job.name));
        if let Ok(text) = std::fs::read_to_string(&m) {
            match serde_json::from_str::<JobReport>(&text) {
                Ok(r) => rows.push((job.name.clone(), Ok(r))),
                Err(err) => rows.push((
                    job.name.clone(),
                    Err(format!("{}: unreadable metrics.json: {err}", m.display())),
                )),
            }
        } else if let Ok(text) = std::fs::read_to_string(&e) {
            rows.push((job.name.clone(), Err(text.trim().to_string())));
        } else {
            rows.push((job.name.clone(), Err(NOT_RUN.into())));
        }
    }
    // One width for every row: a failed job's message is the last column, empty for done ones.
    let mut csv = String::from("job,status,method,psnr,ssim,nrmse,residual,seconds,message\n");
    let f = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for (name, r) in &rows {
        match r {
            Ok(r) => {
                for (m, v) in &r.methods {
                    csv.push_str(&format!(
                        "{name},done,{m},{},{},{},{},{},\n",
                        f(v.psnr),
                        f(v.ssim),
                        f(v.nrmse),
                        f(v.residual),
                        v.seconds
                    ));
                }
            }
            Err(e) if e == NOT_RUN => csv.push_str(&format!("{name},not run,,,,,,,\n")),
            Err(e) => csv.push_str(&format!(
                "{name},failed,,,,,,,\"{}\"\n",
                e.replace('"', "'").replace('\n', " ")
            )),
        }
    }
    atomic::write_file(&out.join("summary.csv"), true, |t| {
        Ok(std::fs::write(t, &csv)?)
    })?;
    let page = html::render_summary("scorerecon batch summary", out, &rows);
    atomic::write_file(&out.join("summary.html"), true, |t| {
        Ok(std::fs::write(t, &page)?)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::MethodMetrics;

    fn manifest(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("m.yaml");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn defaults_merge_and_paths_resolve_against_the_manifest() {
        let d = tempfile::tempdir().unwrap();
        let m = load_manifest(&manifest(d.path(), "defaults: {task: mar, model: 'knn:refs'}\njobs:\n  - {input: a/scan1.nii.gz}\n  - {name: two, input: /abs/b.dcm, task: ct}\n")).unwrap();
        assert_eq!(m.jobs[0].name, "scan1");
        assert_eq!(m.jobs[0].spec["task"].as_str(), Some("mar"));
        assert_eq!(
            m.jobs[0].spec["input"].as_str().unwrap(),
            d.path().join("a/scan1.nii.gz").to_str().unwrap()
        );
        assert_eq!(
            m.jobs[0].spec["model"].as_str().unwrap(),
            format!("knn:{}", d.path().join("refs").display())
        );
        assert_eq!(m.jobs[1].spec["task"].as_str(), Some("ct"));
        assert_eq!(m.jobs[1].spec["input"].as_str(), Some("/abs/b.dcm"));
    }

    #[test]
    fn bad_manifests_are_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(load_manifest(&manifest(d.path(), "jobs: []\n")).is_err());
        assert!(load_manifest(&manifest(d.path(), "jobs:\n  - {task: ct}\n")).is_err());
        assert!(load_manifest(&manifest(
            d.path(),
            "jobs:\n  - {input: a.nii}\n  - {input: b/a.nii}\n"
        ))
        .is_err());
        assert!(load_manifest(&manifest(d.path(), "jbos:\n  - {input: a.nii}\n")).is_err());
    }

    #[test]
    fn rerun_skips_finished_and_retries_failed() {
        let d = tempfile::tempdir().unwrap();
        let m = load_manifest(&manifest(
            d.path(),
            "jobs:\n  - {input: ok.nii}\n  - {input: bad.nii}\n",
        ))
        .unwrap();
        let out = d.path().join("out");
        let calls = std::cell::RefCell::new(Vec::new());
        let run = |job: &BatchJob, dir: &Path| -> Result<JobReport> {
            calls.borrow_mut().push(job.name.clone());
            std::fs::write(dir.join("x.txt"), "partial")?;
            if job.name == "bad" {
                bail!("bad.nii: broken");
            }
            let mut r = JobReport::new("t", "ct", "ok", serde_json::json!({}));
            r.methods.insert(
                "fbp".into(),
                MethodMetrics {
                    psnr: Some(20.0),
                    ssim: Some(0.5),
                    seconds: 1.0,
                    ..Default::default()
                },
            );
            std::fs::write(dir.join("metrics.json"), r.to_json())?;
            Ok(r)
        };
        let quiet = RunOptions {
            quiet: true,
            ..Default::default()
        };
        let o = run_batch(&m, &out, &quiet, run).unwrap();
        assert_eq!(o.finished, vec!["ok"]);
        assert_eq!(o.failed.len(), 1);
        assert!(!out.join("bad").exists(), "a failed job leaves no folder");
        assert!(out.join("bad.error.txt").exists());
        let o2 = run_batch(&m, &out, &quiet, run).unwrap();
        assert_eq!(o2.skipped, vec!["ok"]);
        assert_eq!(*calls.borrow(), vec!["ok", "bad", "bad"]);
        let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        assert!(csv.contains("ok,done,fbp,20,0.5"));
        assert!(csv.contains("bad,failed"));
        assert_csv_rectangular(&csv);
    }

    /// Every row has the header's fields (a quoted message counts as one field).
    fn assert_csv_rectangular(csv: &str) {
        let fields = |line: &str| {
            let mut n = 1;
            let mut quoted = false;
            for c in line.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => n += 1,
                    _ => {}
                }
            }
            n
        };
        let mut lines = csv.lines();
        let width = fields(lines.next().unwrap());
        for l in lines {
            assert_eq!(fields(l), width, "{l}\n{csv}");
        }
    }

    #[test]
    fn jobs_a_killed_batch_never_reached_are_not_failures() {
        let d = tempfile::tempdir().unwrap();
        let m = load_manifest(&manifest(
            d.path(),
            "defaults: {task: ct}\njobs:\n  - {name: a, input: a.nii.gz}\n  - {name: b, input: b.nii.gz}\n",
        ))
        .unwrap();
        let out = d.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("a.error.txt"), "a.nii.gz: broken, \"really\"\n").unwrap();
        write_summary(&m, &out).unwrap();
        let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        assert!(csv.contains("a,failed,"), "{csv}");
        assert!(csv.contains("b,not run,"), "{csv}");
        assert!(!csv.contains("b,failed"), "{csv}");
        assert_csv_rectangular(&csv);
        let html = std::fs::read_to_string(out.join("summary.html")).unwrap();
        assert!(html.contains("not run yet") && !html.contains("failed: not run yet"));
    }

    #[test]
    fn a_job_output_may_not_hold_its_input() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        std::fs::create_dir_all(out.join("scan")).unwrap();
        let input = out.join("scan/in.nii.gz");
        std::fs::write(&input, b"scan").unwrap();
        let m = load_manifest(&manifest(
            d.path(),
            &format!(
                "defaults: {{task: ct}}\njobs:\n  - {{name: scan, input: {}}}\n",
                input.display()
            ),
        ))
        .unwrap();
        let o = run_batch(&m, &out, &quiet(Shard::ALL), |_, _| bail!("must not run")).unwrap();
        assert_eq!(o.failed.len(), 1);
        assert!(o.failed[0].1.contains("holds the input"), "{:?}", o.failed);
        assert_eq!(std::fs::read(&input).unwrap(), b"scan");
    }

    /// A job that writes a report after `ms` milliseconds.
    fn slow_job(job: &BatchJob, dir: &Path, ms: u64) -> Result<JobReport> {
        std::fs::write(dir.join("partial.txt"), &job.name)?;
        std::thread::sleep(Duration::from_millis(ms));
        let r = JobReport::new("t", "ct", &job.name, serde_json::json!({}));
        std::fs::write(dir.join("metrics.json"), r.to_json())?;
        Ok(r)
    }

    fn quiet(shard: Shard) -> RunOptions {
        RunOptions {
            shard,
            quiet: true,
            ..Default::default()
        }
    }

    #[test]
    fn shards_share_a_folder_and_run_every_job_once() {
        let d = tempfile::tempdir().unwrap();
        let body: String = (0..7)
            .map(|k| format!("  - {{input: s{k}.nii}}\n"))
            .collect();
        let m = load_manifest(&manifest(d.path(), &format!("jobs:\n{body}"))).unwrap();
        let out = d.path().join("out");
        let calls = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for i in 0..3 {
                let (m, out, calls) = (&m, &out, &calls);
                s.spawn(move || {
                    run_batch(m, out, &quiet(Shard::new(i, 3).unwrap()), |job, dir| {
                        calls.lock().unwrap().push((i, job.name.clone()));
                        slow_job(job, dir, 20)
                    })
                    .unwrap()
                });
            }
        });
        let mut calls = calls.into_inner().unwrap();
        calls.sort_by(|a, b| a.1.cmp(&b.1));
        let expected: Vec<(usize, String)> = (0..7).map(|k| (k % 3, format!("s{k}"))).collect();
        assert_eq!(calls, expected);
        for k in 0..7 {
            assert!(out.join(format!("s{k}/metrics.json")).exists());
            assert!(
                !out.join(format!("s{k}.claim")).exists(),
                "claim left behind"
            );
        }
    }

    #[test]
    fn two_runs_given_the_same_jobs_share_them_without_corrupting_any() {
        // Two whole-manifest runs at once on one folder (a batch started twice by mistake):
        // each job runs once, in one of them, and every folder is whole.
        let d = tempfile::tempdir().unwrap();
        let body: String = (0..6)
            .map(|k| format!("  - {{input: s{k}.nii}}\n"))
            .collect();
        let m = load_manifest(&manifest(d.path(), &format!("jobs:\n{body}"))).unwrap();
        let out = d.path().join("out");
        let calls = std::sync::Mutex::new(Vec::new());
        let outcomes: Vec<BatchOutcome> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (m, out, calls) = (&m, &out, &calls);
                    s.spawn(move || {
                        run_batch(m, out, &quiet(Shard::ALL), |job, dir| {
                            calls.lock().unwrap().push(job.name.clone());
                            slow_job(job, dir, 50)
                        })
                        .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut calls = calls.into_inner().unwrap();
        calls.sort();
        assert_eq!(calls, (0..6).map(|k| format!("s{k}")).collect::<Vec<_>>());
        let finished: usize = outcomes.iter().map(|o| o.finished.len()).sum();
        assert_eq!(finished, 6);
        assert!(outcomes.iter().all(|o| o.failed.is_empty()));
        for k in 0..6 {
            let dir = out.join(format!("s{k}"));
            assert_eq!(
                std::fs::read_to_string(dir.join("partial.txt")).unwrap(),
                format!("s{k}")
            );
            assert!(dir.join("metrics.json").exists());
        }
    }

    #[test]
    fn a_crashed_runs_claim_and_staging_are_recovered() {
        let d = tempfile::tempdir().unwrap();
        let m = load_manifest(&manifest(
            d.path(),
            "jobs:\n  - {input: a.nii}\n  - {input: b.nii}\n",
        ))
        .unwrap();
        let out = d.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        // What `kill -9` during job a leaves: its claim (a process that has ended) and the
        // half-written staging folder.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let mut dead = Claimant::current();
        dead.pid_start = claim::process_start(pid);
        child.wait().unwrap();
        dead.pid = pid;
        dead.token = "crashed".into();
        std::fs::write(claim::path(&out, "a"), serde_json::to_vec(&dead).unwrap()).unwrap();
        let staging = out.join(".scorerecon-a.Ab3dE6");
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("score.nii.gz"), b"half").unwrap();
        // A live claim on b (this process, another claimant) is left alone.
        let live = Claimant::current();
        std::fs::write(claim::path(&out, "b"), serde_json::to_vec(&live).unwrap()).unwrap();
        let o = run_batch(&m, &out, &quiet(Shard::ALL), |job, dir| {
            slow_job(job, dir, 1)
        })
        .unwrap();
        assert_eq!(o.finished, vec!["a"]);
        assert_eq!(o.busy.len(), 1);
        assert_eq!(o.busy[0].0, "b");
        assert!(o.busy[0].1.contains(&format!("pid {}", std::process::id())));
        assert!(
            !staging.exists(),
            "the crashed run's staging folder is gone"
        );
        assert!(out.join("a/metrics.json").exists());
        assert!(!claim::path(&out, "a").exists());
        assert!(claim::path(&out, "b").exists());
        assert!(!out.join("b").exists());
    }

    #[test]
    fn a_job_finished_meanwhile_elsewhere_keeps_the_first_folder() {
        // Another process (one whose claim was taken over while it still ran) puts the job's
        // folder in place while this run samples: this run's copy is discarded, theirs stands.
        let d = tempfile::tempdir().unwrap();
        let m = load_manifest(&manifest(d.path(), "jobs:\n  - {input: a.nii}\n")).unwrap();
        let out = d.path().join("out");
        let o = run_batch(&m, &out, &quiet(Shard::ALL), |job, dir| {
            let theirs = dir.parent().unwrap().join(&job.name);
            std::fs::create_dir(&theirs)?;
            std::fs::write(theirs.join("metrics.json"), "theirs")?;
            slow_job(job, dir, 1)
        })
        .unwrap();
        assert_eq!(o.skipped, vec!["a"], "{o:?}");
        assert!(o.finished.is_empty() && o.failed.is_empty(), "{o:?}");
        assert_eq!(
            std::fs::read_to_string(out.join("a/metrics.json")).unwrap(),
            "theirs"
        );
        assert!(!out.join("a/partial.txt").exists());
        assert!(!out.join("a.error.txt").exists());
        assert!(atomic::leftover_staging(&out.join("a")).is_empty());
    }
}
