use crate::batch::slurm::{self, SlurmOptions};
use crate::batch::status::{self, JobState};
use crate::batch::{claim, load_manifest, run_batch, write_summary, RunOptions, Shard};
use crate::job::JobSpec;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BatchArgs {
    /// The manifest (YAML): `defaults:` merged into every entry of `jobs:`, optional `out:`.
    pub manifest: PathBuf,
    /// Output folder (overrides the manifest's `out:`); one subfolder per job.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress (bars on a terminal, timestamped lines otherwise).
    #[arg(long)]
    pub quiet: bool,
    /// Run only shard I of N (from 0): job k of the manifest when k mod N = I. N processes on N
    /// machines sharing OUT run every job once. Default in a Slurm array task: its
    /// SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "I/N", conflicts_with_all = ["status", "summary", "slurm"])]
    pub shard: Option<Shard>,
    /// Print where every job stands (done, failed and why, running and on which host / pid /
    /// Slurm job, interrupted, pending) and exit.
    #[arg(long, conflicts_with_all = ["summary", "slurm"])]
    pub status: bool,
    /// Write summary.csv / summary.html from what is in OUT and print the status; exit non-zero
    /// unless every job is done (the Slurm summary job runs this).
    #[arg(long, conflicts_with = "slurm")]
    pub summary: bool,
    /// Submit the batch as a Slurm job array (one shard per task) and a summary job after it.
    #[arg(long)]
    pub slurm: bool,
    /// --slurm: the partition (default: the cluster's).
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// --slurm: GPUs per array task (0 for a CPU partition).
    #[arg(long, requires = "slurm", default_value_t = 1)]
    pub gpus_per_task: u32,
    /// --slurm: CPUs per array task (also libtorch's thread count; default: the cluster's).
    #[arg(long, requires = "slurm")]
    pub cpus_per_task: Option<u32>,
    /// --slurm: number of array tasks (default: one per job).
    #[arg(long, requires = "slurm")]
    pub array_size: Option<usize>,
    /// --slurm: time limit per task, as sbatch takes it (HH:MM:SS, D-HH:MM:SS, minutes).
    #[arg(long, requires = "slurm", value_name = "HH:MM:SS")]
    pub time: Option<String>,
    /// --slurm: print the sbatch scripts instead of submitting them.
    #[arg(long, requires = "slurm")]
    pub dry_run: bool,
}

pub fn run(args: BatchArgs) -> Result<()> {
    let manifest = load_manifest(&args.manifest)?;
    // Check every job's settings before running any, so a typo fails the batch at once.
    for job in &manifest.jobs {
        JobSpec::from_yaml(
            None,
            &job.spec,
            &format!("{}: job {}", args.manifest.display(), job.name),
        )?;
    }
    let Some(out) = args.out.clone().or_else(|| manifest.out.clone()) else {
        bail!(
            "{}: no output folder: pass --out DIR or set `out:` in the manifest",
            args.manifest.display()
        );
    };
    let stale_after = claim::DEFAULT_STALE_AFTER;
    if args.status || args.summary {
        if args.summary {
            write_summary(&manifest, &out)?;
        }
        let jobs = status::status(&manifest, &out, stale_after);
        print!("{}", status::render(&jobs, false));
        if args.summary {
            println!("summary: {}", out.join("summary.html").display());
            let unfinished = jobs.iter().filter(|j| j.state != JobState::Done).count();
            if unfinished > 0 {
                bail!(
                    "{} of {} jobs are not done: rerun the batch (finished jobs are skipped)",
                    unfinished,
                    jobs.len()
                );
            }
        }
        return Ok(());
    }
    if args.slurm {
        let options = SlurmOptions {
            partition: args.partition.clone(),
            gpus_per_task: args.gpus_per_task,
            array_size: args.array_size,
            time: args.time.clone(),
            cpus_per_task: args.cpus_per_task,
        };
        let program = std::env::current_exe()
            .context("--slurm: cannot tell where the scorerecon binary is, for the tasks to run")?;
        let scripts = slurm::scripts(
            &program,
            &args.manifest,
            &out,
            manifest.jobs.len(),
            &options,
        )?;
        if args.dry_run {
            print!("{}", slurm::dry_run(&scripts));
            return Ok(());
        }
        let s = slurm::submit(&scripts)?;
        println!(
            "submitted array job {} ({} tasks) and summary job {} (after the array); logs: {}",
            s.array_job,
            s.tasks,
            s.summary_job,
            s.dir.display()
        );
        println!(
            "status: {} batch {} --out {} --status",
            program.display(),
            args.manifest.display(),
            out.display()
        );
        return Ok(());
    }
    let shard = match args.shard {
        Some(s) => s,
        None => Shard::from_slurm_env(|k| std::env::var(k).ok())?.unwrap_or(Shard::ALL),
    };
    let options = RunOptions {
        shard,
        quiet: args.quiet,
        stale_after,
    };
    let outcome = run_batch(&manifest, &out, &options, |job, dir| {
        let mut spec = JobSpec::from_yaml(None, &job.spec, &job.name)?;
        spec.quiet = spec.quiet || args.quiet;
        // The manifest entry's own keys (defaults included, a named config's not) are what the
        // user stated about this input.
        crate::pipeline::check_flags(&spec, &crate::pipeline::GivenFlags::of(&spec, &job.spec))?;
        crate::pipeline::run_job(&spec, dir)
    })?;
    let of = if shard == Shard::ALL {
        String::new()
    } else {
        format!(" shard {shard}")
    };
    println!(
        "batch {}{of}: {} finished, {} already done, {} failed, {} running elsewhere; summary: {}",
        args.manifest.display(),
        outcome.finished.len(),
        outcome.skipped.len(),
        outcome.failed.len(),
        outcome.busy.len(),
        out.join("summary.html").display()
    );
    for (name, e) in &outcome.failed {
        eprintln!("failed: {name}: {e}");
    }
    if !outcome.failed.is_empty() {
        bail!(
            "{} of {} jobs failed (see {})",
            outcome.failed.len(),
            manifest.jobs.len(),
            out.join("summary.csv").display()
        );
    }
    Ok(())
}
