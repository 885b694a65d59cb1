//! `scorerecon demo`: the README's main job. One sparse-view CT case and one undersampled MRI
//! case on real scans fetched by `scripts/setup.sh`, each with its classical baselines, on the
//! CPU in a few minutes; writes every output and an index page, and prints where they are.
//!
//! The priors are the shipped `models/ct_head_128` and `models/mri_brain_128`; the slices
//! reconstructed (head CT 52, MNI152 95) lie in the slabs held out from their training (model
//! cards). The scans are averaged down 2x to the priors' 128x128 grid (`--fit resample`).

use crate::classic::BaselineKind;
use crate::io::atomic;
use crate::job::{Fit, JobSpec, Task};
use crate::prior::PriorRef;
use crate::report::svg::escape;
use crate::report::JobReport;
use crate::tensor::DeviceChoice;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
    /// Sampling steps (noise levels) for both cases.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Where the tensors live.
    #[arg(long, default_value = "cpu", value_parser = crate::cli::named::<DeviceChoice>())]
    pub device: DeviceChoice,
    #[arg(long)]
    pub quiet: bool,
}

/// The demo's data, relative to the repository (fetched by scripts/setup.sh).
const HEAD_CT: &str = "data/cache/cranium/head_ct.nii.gz";
const MNI_T1: &str =
    "data/cache/nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz";

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

/// The shipped priors and the held-out slice each reconstructs (models/*.md name the slabs).
const CT_PRIOR: &str = "ct_head_128";
const CT_SLICE: usize = 52;
const MRI_PRIOR: &str = "mri_brain_128";
const MRI_SLICE: usize = 95;

pub fn run(args: DemoArgs) -> Result<()> {
    let head = locate(HEAD_CT)?;
    let mni = locate(MNI_T1)?;
    atomic::check_overwrite(&args.out, args.force)?;
    let mut reports: Vec<(String, String, JobReport)> = Vec::new();
    atomic::write_dir(&args.out, args.force, |dir| {
        // Sparse-view CT: head CT slice 52 (ventricles), 23 of 180 views.
        let mut spec = JobSpec::for_task(Task::Ct);
        spec.input = head.clone();
        spec.slices = vec![CT_SLICE];
        spec.views = vec![23];
        spec.baselines = vec![BaselineKind::Fbp, BaselineKind::FistaTv];
        spec.model = Some(PriorRef::Shipped(CT_PRIOR.into()));
        spec.fit = Fit::Resample;
        spec.steps = args.steps;
        spec.device = args.device;
        spec.quiet = args.quiet;
        let r =
            crate::pipeline::run_to_dir(&spec, &dir.join("ct"), true).context("demo, CT case")?;
        crate::pipeline::print_summary(&r, &args.out.join("ct"));
        reports.push((
            "ct".into(),
            format!("Sparse-view CT, 23 of 180 views, head CT slice {CT_SLICE}"),
            r,
        ));

        // Undersampled MRI: MNI152 T1 axial slice 95, 4x equispaced with an 8% centre.
        let mut spec = JobSpec::for_task(Task::Mri);
        spec.input = mni.clone();
        spec.slices = vec![MRI_SLICE];
        spec.acceleration = vec![4.0];
        spec.baselines = vec![BaselineKind::ZeroFilled, BaselineKind::Tv];
        spec.model = Some(PriorRef::Shipped(MRI_PRIOR.into()));
        spec.fit = Fit::Resample;
        spec.steps = args.steps;
        spec.device = args.device;
        spec.quiet = args.quiet;
        let r =
            crate::pipeline::run_to_dir(&spec, &dir.join("mri"), true).context("demo, MRI case")?;
        crate::pipeline::print_summary(&r, &args.out.join("mri"));
        reports.push((
            "mri".into(),
            format!("Undersampled MRI, 4x, MNI152 T1 slice {MRI_SLICE}"),
            r,
        ));

        std::fs::write(dir.join("index.html"), index_page(&reports))?;
        Ok(())
    })?;
    println!(
        "demo: outputs in {}; open {}",
        args.out.display(),
        args.out.join("index.html").display()
    );
    Ok(())
}

fn index_page(reports: &[(String, String, JobReport)]) -> String {
    let mut h = String::from("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>scorerecon demo</title></head><body style=\"font-family:sans-serif;max-width:900px;margin:24px auto\"><h1>scorerecon demo</h1><ul>");
    for (dir, title, r) in reports {
        let best: Vec<String> = r
            .methods
            .iter()
            .map(|(k, m)| {
                format!(
                    "{k}: {} dB",
                    m.psnr
                        .map(|p| format!("{p:.2}"))
                        .unwrap_or_else(|| "n/a".into())
                )
            })
            .collect();
        h.push_str(&format!(
            "<li><a href=\"{dir}/report.html\">{}</a> &mdash; {}</li>",
            escape(title),
            escape(&best.join(", "))
        ));
    }
    h.push_str("</ul><p>Priors: the shipped NCSN++ models ct_head_128 and mri_brain_128 (model cards in models/), \
trained on other slices of the same scans; the reconstructed slices lie in the slabs held out from training. The scans \
are averaged down 2x to the priors' 128x128 grid. TV weights of the baselines are tuned on a validation slice \
(maximum SSIM). Mean and spread over many held-out slices: docs/results.md.</p></body></html>");
    h
}
