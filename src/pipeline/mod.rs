//! One job from input to outputs: **read -> measure -> reconstruct -> assess -> write**, one
//! module per stage. The `ct`, `mri`, `mar`, `batch` and `demo` commands all come through
//! [`run_to_dir`] / [`run_job`], for image inputs (the measurement is simulated and the image is
//! the reference) and measurement files (no reference) alike.

pub mod assess;
pub mod input;
pub mod measure;
pub mod reconstruct;
pub mod write;

pub use input::{check_flags, is_measurement, GivenFlags};

use crate::io::atomic;
use crate::job::{JobSpec, Task};
use crate::report::JobReport;
use anyhow::Result;
use assess::Assessed;
use input::Input;
use measure::{Case, Setting};
use reconstruct::{reconstruct_case, TvChoice};
use std::path::Path;

/// Run `spec` and write everything into `out` (atomically: the folder appears only when the job
/// finished; an existing folder is replaced only with `force`).
pub fn run_to_dir(spec: &JobSpec, out: &Path, force: bool) -> Result<JobReport> {
    spec.validate()?;
    let inputs = input::files_read(spec);
    atomic::check_not_input(out, &inputs.iter().map(|p| p.as_path()).collect::<Vec<_>>())?;
    atomic::check_overwrite(out, force)?;
    // Cheap checks of the input before the model loads (seconds): a damaged header fails now.
    crate::io::check_input(&spec.input)?;
    let mut report = None;
    atomic::write_dir(out, force, |dir| {
        report = Some(run_job(spec, dir)?);
        Ok(())
    })
    .map_err(|e| naming(&spec.input, e))?;
    Ok(report.expect("write_dir ran the job"))
}

/// Where the results are, and the headline numbers, for the terminal.
pub fn print_summary(report: &JobReport, out: &Path) {
    println!("{} ({}): {}", report.title, report.task, out.display());
    if let Some(prior) = report.settings.get("model").and_then(|m| m.as_str()) {
        println!("  prior: {prior}");
    }
    for (name, m) in &report.methods {
        let f = |v: Option<f64>, d: usize| {
            v.map(|x| format!("{x:.d$}"))
                .unwrap_or_else(|| "n/a".into())
        };
        println!(
            "  {name:<12} PSNR {:>7} dB  SSIM {:>6}  residual {:>9}  {:>7.1} s",
            f(m.psnr, 2),
            f(m.ssim, 4),
            m.residual
                .map(|r| format!("{r:.2e}"))
                .unwrap_or_else(|| "n/a".into()),
            m.seconds
        );
    }
    println!("  report: {}", out.join("report.html").display());
}

/// The coil maps of every case (one slice each), `[B, C, H, W]`; None for single-coil cases.
fn coil_maps_of(cases: &[Case]) -> Option<tch::Tensor> {
    let maps: Vec<tch::Tensor> = cases
        .iter()
        .filter_map(|c| c.coil_maps.as_ref().map(|m| m.shallow_clone()))
        .collect();
    (!maps.is_empty() && maps.len() == cases.len()).then(|| tch::Tensor::cat(&maps, 0))
}

const MAPS_NOTE: &str = "coil_maps.nii.gz and coil_maps_phase.nii.gz hold the coil maps the \
    operator estimated (magnitude and phase; x, y, slice, coil) for inspection.";

/// Read, measure, reconstruct, assess and write one job into `dir` (a staging folder).
pub fn run_job(spec: &JobSpec, dir: &Path) -> Result<JobReport> {
    spec.validate()?;
    let device = spec.device.resolve()?;
    let model = input::load_model(spec, device)?;
    let input = input::read(spec, model.as_ref())?;
    let mut settings = spec.settings_json();
    if spec.anonymise {
        settings["input"] = ANONYMISED.into();
    }
    let mut report = JobReport::new(
        &format!("scorerecon {}", spec.task.name()),
        spec.task.name(),
        &if spec.anonymise {
            ANONYMISED.to_string()
        } else {
            spec.input.display().to_string()
        },
        settings,
    );
    let model = model.as_ref();
    match &input {
        Input::Image(image) => {
            report.has_reference = true;
            report.notes.push(format!("Prior: {}.", model.describe()));
            if spec.model.as_ref().is_some_and(|m| m.is_nearest()) {
                report.notes.push("The nearest-neighbour prior can memorise its reference images; nearest_reference_distance in metrics.json gives each method's relative L2 distance to the nearest reference image (near 0: a reference was returned).".into());
            }
            let p = &image.padding;
            if let Some(note) = &image.resampled {
                report.notes.push(note.clone());
            }
            if !p.is_identity() {
                report.notes.push(format!(
                    "Slices ({}x{}) were zero-padded to the prior's {}x{} and cropped back.",
                    p.w, p.h, p.mw, p.mh
                ));
            }
            let settings = measure::settings_of(spec);
            if settings.len() > 1 {
                report.sweep_parameter = Some(match spec.task {
                    Task::Mri => "acceleration".into(),
                    _ => "views".into(),
                });
            }
            let hu = image.slices(&image.ks)?;
            let mut first: Option<(Setting, Assessed)> = None;
            let mut maps: Option<tch::Tensor> = None;
            for setting in settings.iter().copied() {
                let cases = measure::simulate_cases(spec, setting, &hu, image, device)?;
                if maps.is_none() {
                    maps = coil_maps_of(&cases).map(|m| image.padding.crop(&m));
                }
                if spec.rebin && first.is_none() {
                    if let Some(case) = cases.first() {
                        report.notes.push(measure::rebin_note(case));
                    }
                }
                // The TV weight is tuned on a slice that is not reconstructed (docs/baselines.md).
                let validation = match image.validation_slice {
                    Some(k)
                        if spec.tv_weight.is_none() && spec.baselines.iter().any(|b| b.is_tv()) =>
                    {
                        measure::simulate_cases(spec, setting, &image.slices(&[k])?, image, device)?
                            .into_iter()
                            .next()
                    }
                    _ => None,
                };
                let assessed = reconstruct_and_assess(
                    spec,
                    model,
                    &cases,
                    validation.as_ref(),
                    &image.padding,
                    &mut report.notes,
                )?;
                report.sweep.extend(assessed.sweep_points(setting.x()));
                if first.is_none() {
                    first = Some((setting, assessed));
                }
            }
            if settings.len() < 2 {
                report.sweep.clear();
            }
            let (setting, assessed) = first.expect("at least one setting");
            report.notes.insert(
                0,
                format!(
                    "Measurement: {} ({} slice(s): {:?}).",
                    setting.label(),
                    image.ks.len(),
                    image.ks
                ),
            );
            report.methods = assessed.metrics(model.fit_range());
            report.slices = image.ks.clone();
            report.data_range_per_slice = assessed.data_ranges.clone();
            report.flag_prior_mismatch();
            let grid = write::OutputGrid {
                vol: &image.vol,
                ks: &image.ks,
                scaling: &image.scaling,
            };
            if let Some(m) = &maps {
                write::coil_maps(m, &image.vol, dir)?;
                report.notes.push(MAPS_NOTE.into());
            }
            write::outputs(spec, &grid, &assessed, dir, &mut report)?;
        }
        Input::Kspace(k) => {
            let mut notes = Vec::new();
            let scaling = measure::kspace_scaling(k, model, &mut notes)?;
            let vol = measure::kspace_volume(spec, k, &mut notes);
            let &[slices, coils, rows, cols] = k.raw.kspace.shape() else {
                unreachable!("RawKspace holds [slices, coils, rows, cols]")
            };
            let settings = measure::kspace_settings(spec, k);
            let carried = k
                .raw
                .reference
                .as_ref()
                .is_some_and(|(_, r)| r.dim() == (slices, rows, cols));
            report.has_reference = k.raw.mask.is_none() || carried;
            notes.insert(
                0,
                format!(
                    "Raw k-space ({}): {slices} slice(s), {coils} coil(s), {cols}x{rows}; slice(s) {:?} \
                     reconstructed. {}",
                    k.raw.format,
                    k.ks,
                    match &k.raw.mask {
                        Some(m) => format!(
                            "Undersampled: the file's own mask ({} of {} samples); {}",
                            m.iter().filter(|&&v| v > 0.5).count(),
                            m.len(),
                            if carried {
                                "the file's own reference image (its fully sampled RSS) is the \
                                 reference."
                            } else {
                                "no reference image, so PSNR, SSIM and NRMSE are not available; \
                                 the data-consistency residual is."
                            }
                        ),
                        None => format!(
                            "Fully sampled: retrospective {} mask(s) at acceleration(s) {:?}, the \
                             fully sampled RSS is the reference.",
                            spec.mask.name(),
                            spec.acceleration
                        ),
                    }
                ),
            );
            notes.push("Coil maps by ESPIRiT from each slice's calibration region; the image phase of its low-resolution image is folded into the maps, so the magnitude prior and every baseline reconstruct a real image (docs/operators-mri.md).".into());
            notes.push(format!("Prior: {}.", model.describe()));
            report.notes = notes;
            if settings.len() > 1 {
                report.sweep_parameter = Some("acceleration".into());
            }
            let padding = input::Padding::none(rows, cols);
            let mut first: Option<Assessed> = None;
            let mut maps: Option<tch::Tensor> = None;
            for setting in settings.iter().copied() {
                let cases = measure::kspace_cases(spec, setting, k, &scaling, device)?;
                if maps.is_none() {
                    maps = coil_maps_of(&cases);
                }
                let assessed =
                    reconstruct_and_assess(spec, model, &cases, None, &padding, &mut report.notes)?;
                report.sweep.extend(assessed.sweep_points(setting.x()));
                first.get_or_insert(assessed);
            }
            if settings.len() < 2 {
                report.sweep.clear();
            }
            let assessed = first.expect("at least one setting");
            report.methods = assessed.metrics(model.fit_range());
            report.slices = k.ks.clone();
            report.data_range_per_slice = assessed.data_ranges.clone();
            report.flag_prior_mismatch();
            let ks: Vec<usize> = (0..vol.nz()).collect();
            let grid = write::OutputGrid {
                vol: &vol,
                ks: &ks,
                scaling: &scaling,
            };
            if let Some(m) = &maps {
                write::coil_maps(m, &vol, dir)?;
                report.notes.push(MAPS_NOTE.into());
            }
            write::outputs(spec, &grid, &assessed, dir, &mut report)?;
        }
        Input::Measurement(m) => {
            report.has_reference = false;
            let mut notes = Vec::new();
            let (cases, scaling, vol) = measure::file_cases(spec, m, model, device, &mut notes)?;
            let [s, a, d] = m.meta.shape;
            notes.push(format!(
                "Measurement file: {s} slice(s) of {a}x{d}, {} of {} samples measured; no reference \
                 image, so PSNR, SSIM and NRMSE are not available; the data-consistency residual is.",
                m.mask.iter().filter(|&&v| v > 0.5).count(),
                m.mask.len()
            ));
            if spec.rebin {
                if let Some(case) = cases.first() {
                    notes.push(measure::rebin_note(case));
                }
            }
            notes.push(format!("Prior: {}.", model.describe()));
            report.notes = notes;
            let padding = measure::file_padding(&cases);
            let assessed =
                reconstruct_and_assess(spec, model, &cases, None, &padding, &mut report.notes)?;
            report.methods = assessed.metrics(model.fit_range());
            report.flag_prior_mismatch();
            let ks: Vec<usize> = (0..vol.nz()).collect();
            report.slices = ks.clone();
            let grid = write::OutputGrid {
                vol: &vol,
                ks: &ks,
                scaling: &scaling,
            };
            write::outputs(spec, &grid, &assessed, dir, &mut report)?;
        }
    }
    if spec.anonymise {
        scrub_paths(spec, &input, dir)?;
    }
    Ok(report)
}

/// An error that does not name the job's input yet ("sampling diverged", a non-finite slice)
/// gets it in front: every message a user sees says which file it is about.
pub fn naming(input: &Path, e: anyhow::Error) -> anyhow::Error {
    let name = input.display().to_string();
    if format!("{e:#}").contains(&name) {
        e
    } else {
        e.context(name)
    }
}

/// What `--anonymise` writes where an input path would be.
pub const ANONYMISED: &str = "(anonymised)";

/// `--anonymise`, the last pass: no text output (metrics.json, reports) may still name the input
/// or a file it came from (notes and warnings quote paths), whichever stage wrote it.
fn scrub_paths(spec: &JobSpec, input: &Input, dir: &Path) -> Result<()> {
    let mut paths = vec![spec.input.display().to_string()];
    if let Ok(c) = spec.input.canonicalize() {
        paths.push(c.display().to_string());
    }
    if let Input::Measurement(m) = input {
        paths.push(m.meta.source.clone());
    }
    // Longest first, so a path is replaced whole rather than its prefix.
    paths.retain(|p| p.len() > 1);
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        let text_file = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["json", "html", "md", "txt", "csv", "svg"].contains(&e));
        if !text_file || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let clean = paths
            .iter()
            .fold(text.clone(), |t, p| t.replace(p.as_str(), ANONYMISED));
        if clean != text {
            std::fs::write(&path, clean)?;
        }
    }
    Ok(())
}

/// The job loop of one measurement setting: reconstruct every case with every method, and assess.
fn reconstruct_and_assess(
    spec: &JobSpec,
    model: &dyn crate::prior::ScoreModel,
    cases: &[Case],
    validation: Option<&Case>,
    padding: &input::Padding,
    notes: &mut Vec<String>,
) -> Result<Assessed> {
    let mut tv = TvChoice::new(validation);
    let mut assessed = Assessed::default();
    for case in cases {
        let recons = reconstruct_case(spec, model, case, &mut tv, notes)?;
        assessed.add(case, padding, model, recons)?;
    }
    Ok(assessed)
}
