use crate::batch::{load_manifest, run_batch};
use crate::job::JobSpec;
use anyhow::{bail, Result};
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
    let outcome = run_batch(&manifest, &out, args.quiet, |job, dir| {
        let mut spec = JobSpec::from_yaml(None, &job.spec, &job.name)?;
        spec.quiet = spec.quiet || args.quiet;
        // The manifest entry's own keys (defaults included, a named config's not) are what the
        // user stated about this input.
        crate::pipeline::check_flags(&spec, &crate::pipeline::GivenFlags::of(&spec, &job.spec))?;
        crate::pipeline::run_job(&spec, dir)
    })?;
    println!(
        "batch {}: {} finished, {} already done, {} failed; summary: {}",
        args.manifest.display(),
        outcome.finished.len(),
        outcome.skipped.len(),
        outcome.failed.len(),
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
