//! `scorerecon demo`: the README's main job. One sparse-view CT case and one undersampled MRI
//! case on real scans fetched by `scripts/setup.sh`, each with its classical baselines, on the
//! CPU in a few minutes; writes every output and an index page, and prints where they are.
//!
//! Until trained priors ship in `models/`, the demo uses the training-free nearest-neighbour
//! prior over slices of the same scan that are kept well away from the reconstructed slice
//! (held-out slab with a gap), written into the output folder so the reference set is on record.

use crate::io::{self, atomic, Format, ReadOptions, WriteOptions};
use crate::job::{JobSpec, Task};
use crate::report::svg::escape;
use crate::report::JobReport;
use crate::volume::{Modality, Volume};
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
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long)]
    pub quiet: bool,
}

/// The demo's data, relative to the repository (fetched by scripts/setup.sh).
const HEAD_CT: &str = "data/cache/cranium/head_ct.nii.gz";
const MNI_T1: &str =
    "data/cache/nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz";

/// Held-out slices and the slices kept as the prior's reference set (a gap of >= 8 slices).
struct Split {
    test: usize,
    reference: Vec<usize>,
}

fn split(nz: usize, test: usize, gap: usize) -> Split {
    let reference = (0..nz)
        .filter(|&k| (k as i64 - test as i64).unsigned_abs() as usize > gap)
        .collect();
    Split { test, reference }
}

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

/// Write the reference slices as one NIfTI volume in `dir` (the prior's folder).
fn write_reference_set(vol: &Volume, ks: &[usize], modality: Modality, dir: &Path) -> Result<()> {
    let mut refs = vol.select_slices(ks);
    refs.modality = modality;
    std::fs::create_dir_all(dir)?;
    io::write_volume_with(
        &refs,
        &dir.join("reference_slices.nii.gz"),
        &WriteOptions {
            format: Some(Format::Nifti),
            force: true,
            series_description: Some(format!(
                "reference set: slices {}..{} without the held-out slab",
                ks[0],
                ks[ks.len() - 1]
            )),
            ..Default::default()
        },
    )
}

pub fn run(args: DemoArgs) -> Result<()> {
    let head = locate(HEAD_CT)?;
    let mni = locate(MNI_T1)?;
    atomic::check_overwrite(&args.out, args.force)?;
    let mut reports: Vec<(String, String, JobReport)> = Vec::new();
    atomic::write_dir(&args.out, args.force, |dir| {
        // Sparse-view CT: head CT slice 52 (ventricles), 23 of 180 views.
        let ct = io::read_volume(&head, &ReadOptions::default())?;
        let s = split(ct.nz(), 52, 10);
        write_reference_set(&ct, &s.reference, Modality::Ct, &dir.join("reference_ct"))?;
        let mut spec = JobSpec::for_task(Task::Ct);
        spec.input = head.clone();
        spec.slices = vec![s.test];
        spec.views = vec![23];
        spec.model = format!("empirical:{}", dir.join("reference_ct").display());
        spec.steps = args.steps;
        spec.device = args.device.clone();
        spec.quiet = args.quiet;
        spec.tv_weight = Some(DEMO_RELATIVE_TV);
        let r =
            crate::pipeline::run_to_dir(&spec, &dir.join("ct"), true).context("demo, CT case")?;
        crate::pipeline::print_summary(&r, &args.out.join("ct"));
        reports.push((
            "ct".into(),
            "Sparse-view CT, 23 of 180 views, head CT".into(),
            r,
        ));

        // Undersampled MRI: MNI152 T1 axial slice 100, 4x equispaced with 8% centre.
        let mr = io::read_volume(&mni, &ReadOptions::default())?;
        let s = split(mr.nz(), 100, 10);
        // Brain slices only (the template's top and bottom are empty), minus the held-out slab.
        let reference: Vec<usize> = s
            .reference
            .into_iter()
            .filter(|&k| (30..170).contains(&k))
            .collect();
        write_reference_set(&mr, &reference, Modality::Mr, &dir.join("reference_mri"))?;
        let mut spec = JobSpec::for_task(Task::Mri);
        spec.input = mni.clone();
        spec.slices = vec![s.test];
        spec.acceleration = vec![4.0];
        spec.model = format!("empirical:{}", dir.join("reference_mri").display());
        spec.steps = args.steps;
        spec.device = args.device.clone();
        spec.quiet = args.quiet;
        spec.tv_weight = Some(DEMO_RELATIVE_TV);
        let r =
            crate::pipeline::run_to_dir(&spec, &dir.join("mri"), true).context("demo, MRI case")?;
        crate::pipeline::print_summary(&r, &args.out.join("mri"));
        reports.push(("mri".into(), "Undersampled MRI, 4x, MNI152 T1".into(), r));

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

/// Relative TV weight (of `||A||^2 * data range`) for the demo's baselines, so the demo does not
/// spend minutes tuning; `scorerecon ct/mri` without `tv_weight` tunes it on a validation slice.
const DEMO_RELATIVE_TV: f64 = 1e-2;

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
    h.push_str("</ul><p>The prior is the training-free exact empirical score over slices of the same scan kept at least 10 slices away from the reconstructed one (folders reference_ct/ and reference_mri/). This prior mixes its reference images (it memorises them), so on \
these cases the score-based result does not beat TV; a trained prior (scorerecon train, docs/training.md) is what \
the method needs, and the demo will switch to shipped trained priors once they are evaluated.</p></body></html>");
    h
}
