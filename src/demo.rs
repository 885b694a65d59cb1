//! The README's main job (`scorerecon demo`). One sparse-view CT case and one undersampled MRI
//! case on real scans fetched by `scripts/setup.sh`, each with its classical baselines, on the
//! CPU in a few minutes; writes every output and an index page, and prints where they are.
//!
//! The priors are the tasks' defaults, `models/ct_body_128` and `models/mri_head_128`, trained
//! across subjects; each case is a scan of a person the prior never trained on (its validation
//! subject, held out whole: pyradiomics' lung2 chest CT slice 30 and brain2 T1 head slice 13;
//! model cards). `--fit resample` puts each scan on its prior's grid (RAS+ order, 2.5 / 2 mm).

use crate::io::atomic;
use crate::job::{Fit, JobSpec, Task};
use crate::report::JobReport;
use crate::sampler::SamplerKind;
use crate::tensor::DeviceChoice;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The demo's data, relative to the repository (fetched by scripts/setup.sh).
const CHEST_CT: &str = "data/cache/pyradiomics/pyradiomics-3.0.1/data/lung2_image.nrrd";
const HEAD_T1: &str = "data/cache/pyradiomics/pyradiomics-3.0.1/data/brain2_image.nrrd";

fn locate(rel: &str) -> Result<PathBuf> {
    let candidates = [
        PathBuf::from(rel),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel),
    ];
    for c in &candidates {
        if c.exists() {
            return Ok(c.clone());
        }
    }
    bail!("{rel}: the demo data is missing; run `bash scripts/setup.sh` (`make demo` does) to fetch it")
}

/// The held-out slice each case reconstructs with its task's default prior (models/*.md name the
/// slabs held out from their training).
const CT_SLICE: usize = 30;
const MRI_SLICE: usize = 13;

/// What the demo is told.
pub struct DemoOptions {
    pub out: PathBuf,
    pub force: bool,
    /// Noise levels of the CT case (the ODE needs at least 200).
    pub steps: usize,
    /// Noise levels of the MRI case (DDS).
    pub mri_steps: usize,
    pub device: DeviceChoice,
    pub quiet: bool,
}

/// Run both cases into `args.out` (whole or not at all) and write its index page.
pub fn run(args: &DemoOptions) -> Result<()> {
    let chest = locate(CHEST_CT)?;
    let t1 = locate(HEAD_T1)?;
    atomic::check_overwrite(&args.out, args.force)?;
    let mut reports: Vec<(String, String, JobReport)> = Vec::new();
    atomic::write_dir(&args.out, args.force, |dir| {
        // Sparse-view CT: a chest CT (pyradiomics lung2, held out whole from ct_body_128) slice 30,
        // 23 of 180 views; undersampled MRI: a T1
        // head with skull (pyradiomics brain2, held out whole from mri_head_128) slice 13, 4x
        // equispaced with an 8% centre (the tasks' defaults, their default priors and baselines).
        // Each with its task's CPU preset sampler (docs/sampling.md, "Quality against NFE: the
        // default priors on held-out subjects"): the probability-flow ODE for CT, DDS for MRI
        // (where the ODE collapses; "Warm start and fresh noise").
        let cases = [
            (
                Task::Ct,
                SamplerKind::Ode,
                args.steps,
                &chest,
                CT_SLICE,
                format!("Sparse-view CT, 23 of 180 views, chest CT (lung2, a patient no prior saw) slice {CT_SLICE}"),
            ),
            (
                Task::Mri,
                SamplerKind::Dds,
                args.mri_steps,
                &t1,
                MRI_SLICE,
                format!("Undersampled MRI, 4x, T1 head (brain2, a subject no prior saw) slice {MRI_SLICE}"),
            ),
        ];
        for (task, sampler, steps, input, slice, title) in cases {
            let spec = JobSpec {
                input: input.clone(),
                slices: vec![slice],
                fit: Fit::Resample,
                sampler,
                steps,
                device: args.device,
                quiet: args.quiet,
                ..JobSpec::for_task(task)
            };
            let name = task.name();
            let r = crate::pipeline::run_to_dir(&spec, &dir.join(name), true)
                .with_context(|| format!("demo, {name} case"))?;
            crate::pipeline::print_summary(&r, &args.out.join(name));
            reports.push((name.to_string(), title, r));
        }

        std::fs::write(
            dir.join("index.html"),
            crate::report::html::render_demo_index(dir, &reports),
        )?;
        Ok(())
    })?;
    println!(
        "demo: outputs in {}; open {}",
        args.out.display(),
        args.out.join("index.html").display()
    );
    Ok(())
}
