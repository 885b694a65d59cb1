//! `scorerecon batch MANIFEST --slurm`: the batch as a Slurm job array, one shard per task
//! (`--shard $SLURM_ARRAY_TASK_ID/N`), and a summary job that runs after the array however its
//! tasks ended (`--dependency=afterany`).
//!
//! The scripts are written to `OUT/slurm/` (array.sbatch, summary.sbatch; task logs beside them)
//! and submitted with `sbatch --parsable`. Tasks are `--requeue`able with logs opened in append
//! mode: a preempted or requeued task runs its shard again, skipping finished jobs and taking
//! over its own earlier claims (`claim`), so nothing finished is redone.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the array asks of Slurm; None leaves a setting to the cluster's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// GPUs per task; 0 asks for none (a CPU partition).
    pub gpus_per_task: u32,
    /// Array tasks; None: one per job.
    pub array_size: Option<usize>,
    /// Per-task time limit in a form sbatch takes (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
    /// `D-HH:MM:SS`).
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            gpus_per_task: 1,
            array_size: None,
            time: None,
            cpus_per_task: None,
        }
    }
}

/// The two scripts and where they go.
#[derive(Debug, Clone)]
pub struct Scripts {
    pub dir: PathBuf,
    pub array: String,
    pub summary: String,
    pub tasks: usize,
}

/// The ids sbatch gave the array and the summary job.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub array_job: String,
    pub summary_job: String,
    pub tasks: usize,
    pub dir: PathBuf,
}

/// Build the scripts for a batch of `jobs` jobs. `program` is the scorerecon binary the tasks
/// run; it, the manifest and `out` are made absolute, since tasks start in another folder on
/// another machine (which must see them at the same paths: a shared file system).
pub fn scripts(
    program: &Path,
    manifest: &Path,
    out: &Path,
    jobs: usize,
    options: &SlurmOptions,
) -> Result<Scripts> {
    if let Some(p) = &options.partition {
        if p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c))
        {
            bail!("--partition {p:?}: not a partition name (letters, digits, _ - . and commas for several): pass the name `sinfo` lists");
        }
    }
    if let Some(t) = &options.time {
        if !is_slurm_time(t) {
            bail!("--time {t}: not a Slurm time limit: use HH:MM:SS, MM, MM:SS or D-HH[:MM[:SS]], e.g. 02:00:00");
        }
    }
    let tasks = match options.array_size {
        Some(0) => bail!("--array-size 0: an array needs at least one task: pass 1 or more (default: one per job)"),
        Some(n) => n.min(jobs),
        None => jobs,
    };
    if options.cpus_per_task == Some(0) {
        bail!("--cpus-per-task 0: a task needs at least one CPU: pass 1 or more, or leave it out");
    }
    let abs = |p: &Path| -> Result<PathBuf> {
        std::path::absolute(p)
            .with_context(|| format!("{}: cannot make the path absolute", p.display()))
    };
    let (program, manifest, out) = (abs(program)?, abs(manifest)?, abs(out)?);
    let dir = out.join("slurm");
    let name = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    let mut common = String::new();
    if let Some(p) = &options.partition {
        common.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    let run = format!(
        "{} batch {} --out {}",
        quote(&program.to_string_lossy()),
        quote(&manifest.to_string_lossy()),
        quote(&out.to_string_lossy())
    );
    let mut array = format!(
        "#!/bin/bash\n\
         # scorerecon batch {manifest}: {jobs} jobs over {tasks} array tasks, task I running shard I/{tasks}.\n\
         # A requeued or preempted task runs its shard again: finished jobs are skipped, the\n\
         # interrupted one is redone. Status at any time: scorerecon batch {manifest} --out {out} --status\n\
         #SBATCH --job-name=scorerecon-{name}\n\
         #SBATCH --array=0-{last}\n\
         #SBATCH --ntasks=1\n\
         #SBATCH --requeue\n\
         #SBATCH --open-mode=append\n\
         #SBATCH --output={log}\n",
        manifest = manifest.display(),
        out = out.display(),
        last = tasks - 1,
        log = dir.join("%A_%a.out").display(),
    );
    array.push_str(&common);
    if options.gpus_per_task > 0 {
        array.push_str(&format!(
            "#SBATCH --gpus-per-task={}\n",
            options.gpus_per_task
        ));
    }
    if let Some(c) = options.cpus_per_task {
        array.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
    }
    if let Some(t) = &options.time {
        array.push_str(&format!("#SBATCH --time={t}\n"));
    }
    array.push_str(&format!(
        "set -eu\n\
         # libtorch's threads: as many as the task's CPUs (Slurm sets the variable with --cpus-per-task).\n\
         export OMP_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         exec {run} --shard \"$SLURM_ARRAY_TASK_ID/{tasks}\"\n"
    ));
    let mut summary = format!(
        "#!/bin/bash\n\
         # After every task of the array has ended (sbatch --dependency=afterany:ARRAY): summary.csv,\n\
         # summary.html and the status of every job; fails when a job failed or did not finish.\n\
         #SBATCH --job-name=scorerecon-{name}-summary\n\
         #SBATCH --ntasks=1\n\
         #SBATCH --output={log}\n",
        log = dir.join("%j-summary.out").display(),
    );
    summary.push_str(&common);
    summary.push_str(&format!("set -eu\nexec {run} --summary\n"));
    Ok(Scripts {
        dir,
        array,
        summary,
        tasks,
    })
}

/// What `--dry-run` prints: both scripts and the commands that would submit them.
pub fn dry_run(s: &Scripts) -> String {
    let a = s.dir.join("array.sbatch");
    let m = s.dir.join("summary.sbatch");
    format!(
        "# {a}\n{}\n# {m}\n{}\n# submitted as:\n#   sbatch --parsable {a}   -> ARRAY\n#   sbatch --parsable --dependency=afterany:ARRAY {m}\n",
        s.array,
        s.summary,
        a = a.display(),
        m = m.display()
    )
}

/// Write the scripts into their folder and submit them: the array, then the summary job after
/// it. `sbatch` is looked up on PATH before anything is written.
pub fn submit(s: &Scripts) -> Result<Submitted> {
    let sbatch = find_on_path("sbatch").ok_or_else(|| {
        anyhow::anyhow!(
            "--slurm: sbatch not found on PATH: run this on a machine of the Slurm cluster (a login node), or pass --dry-run to print the scripts"
        )
    })?;
    std::fs::create_dir_all(&s.dir).with_context(|| {
        format!(
            "{}: cannot create the folder for the Slurm scripts and logs",
            s.dir.display()
        )
    })?;
    let array = s.dir.join("array.sbatch");
    let summary = s.dir.join("summary.sbatch");
    for (path, text) in [(&array, &s.array), (&summary, &s.summary)] {
        crate::io::atomic::write_file(path, true, |t| Ok(std::fs::write(t, text)?))?;
    }
    let array_job = sbatch_run(&sbatch, &[], &array)?;
    let summary_job = sbatch_run(&sbatch, &[format!("--dependency=afterany:{array_job}")], &summary)
        .with_context(|| {
            format!(
                "array job {array_job} was submitted, the summary job was not: once the array has ended, run the script's command by hand (`--summary`)"
            )
        })?;
    Ok(Submitted {
        array_job,
        summary_job,
        tasks: s.tasks,
        dir: s.dir.clone(),
    })
}

/// `sbatch --parsable [args] script`: the job id (`--parsable` prints `ID` or `ID;CLUSTER`).
fn sbatch_run(sbatch: &Path, args: &[String], script: &Path) -> Result<String> {
    let out = Command::new(sbatch)
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .with_context(|| format!("{}: cannot run", sbatch.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "sbatch {}: {}: check the partition, time limit and GPU request against `sinfo`, or pass --dry-run to see the script",
            script.display(),
            stderr.trim().replace('\n', "; ")
        );
    }
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "sbatch {}: printed no job id ({:?}): check that it is Slurm's sbatch",
            script.display(),
            stdout.trim()
        );
    }
    Ok(id)
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// A word for bash, in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The time formats sbatch's `--time` takes.
fn is_slurm_time(t: &str) -> bool {
    let num = |s: &str| !s.is_empty() && s.len() <= 4 && s.chars().all(|c| c.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    if days.is_some_and(|d| !num(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.iter().all(|p| num(p)) && (1..=3).contains(&parts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(o: &SlurmOptions) -> Result<Scripts> {
        scripts(
            Path::new("/opt/bin/scorerecon"),
            Path::new("/lab/study's/m.yaml"),
            Path::new("/scratch/out"),
            7,
            o,
        )
    }

    #[test]
    fn the_array_runs_one_shard_per_task_and_the_summary_after_it() {
        let s = build(&SlurmOptions {
            partition: Some("gpu".into()),
            array_size: Some(3),
            time: Some("02:00:00".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.tasks, 3);
        for line in [
            "#SBATCH --array=0-2\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --gpus-per-task=1\n",
            "#SBATCH --time=02:00:00\n",
            "#SBATCH --requeue\n",
            "#SBATCH --open-mode=append\n",
            "#SBATCH --output=/scratch/out/slurm/%A_%a.out\n",
            "exec '/opt/bin/scorerecon' batch '/lab/study'\\''s/m.yaml' --out '/scratch/out' --shard \"$SLURM_ARRAY_TASK_ID/3\"\n",
        ] {
            assert!(s.array.contains(line), "{line}\n{}", s.array);
        }
        assert!(
            s.summary.ends_with("--out '/scratch/out' --summary\n"),
            "{}",
            s.summary
        );
        assert!(s.summary.contains("#SBATCH --partition=gpu\n"));
        assert!(!s.summary.contains("gpus"), "the summary needs no GPU");
        assert!(dry_run(&s).contains("--dependency=afterany:ARRAY"));
        // The scripts are bash: check them with bash itself.
        for text in [&s.array, &s.summary] {
            let st = Command::new("bash")
                .args(["-n", "-c", text])
                .status()
                .unwrap();
            assert!(st.success(), "{text}");
        }
    }

    #[test]
    fn defaults_one_task_per_job_and_no_more_tasks_than_jobs() {
        let s = build(&SlurmOptions::default()).unwrap();
        assert_eq!(s.tasks, 7);
        assert!(s.array.contains("--array=0-6\n") && s.array.contains("/7\""));
        let s = build(&SlurmOptions {
            array_size: Some(50),
            gpus_per_task: 0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.tasks, 7);
        assert!(!s.array.contains("gpus"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_fix() {
        let bad = [
            SlurmOptions {
                array_size: Some(0),
                ..Default::default()
            },
            SlurmOptions {
                time: Some("2h".into()),
                ..Default::default()
            },
            SlurmOptions {
                time: Some("1:2:3:4".into()),
                ..Default::default()
            },
            SlurmOptions {
                partition: Some("gpu\n#SBATCH --x".into()),
                ..Default::default()
            },
            SlurmOptions {
                cpus_per_task: Some(0),
                ..Default::default()
            },
        ];
        for o in bad {
            let e = build(&o).unwrap_err().to_string();
            assert!(e.starts_with("--") && e.contains(": "), "{e}");
        }
        for t in ["60", "30:00", "02:00:00", "1-12", "1-12:30", "1-12:30:00"] {
            assert!(is_slurm_time(t), "{t}");
        }
    }
}
