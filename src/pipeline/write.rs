//! **Write**: every method's volume (NIfTI + derived DICOM series, std maps with several samples),
//! the reference and MAR's metal mask, a PNG panel per slice, `metrics.json` and `report.html`,
//! into the job's staging folder (which `io::atomic::write_dir` moves into place whole).

use super::assess::Assessed;
use crate::io::{self, Format, WindowPreset, WriteOptions};
use crate::job::{JobSpec, Task};
use crate::prior::Scaling;
use crate::report::panels::{slice_panel, SliceViews};
use crate::report::{html, JobReport, Panel};
use crate::tensor::tensor_to_vec;
use crate::volume::{Modality, Volume};
use anyhow::Result;
use std::path::Path;
use tch::Tensor;

/// Where the outputs sit: the volume whose slices `ks` were reconstructed, and the scaling from
/// model space back to its units.
pub struct OutputGrid<'a> {
    pub vol: &'a Volume,
    pub ks: &'a [usize],
    pub scaling: &'a Scaling,
}

/// Write the job's outputs (the methods of `results`, its references and metal masks when it
/// has them) into `dir`, then `metrics.json` and `report.html`.
pub fn outputs(
    spec: &JobSpec,
    grid: &OutputGrid,
    results: &Assessed,
    dir: &Path,
    report: &mut JobReport,
) -> Result<()> {
    volumes(spec, grid, results, dir)?;
    panels(spec, grid, results, dir, report)?;
    std::fs::write(dir.join("metrics.json"), report.to_json())?;
    std::fs::write(dir.join("report.html"), html::render_job(report, dir))?;
    Ok(())
}

/// Model-space tensors of the selected slices as a volume in output units (`physical`: values,
/// else a spread such as a std map, which only scales).
fn to_volume(grid: &OutputGrid, parts: &[Tensor], physical: bool) -> Volume {
    let x = Tensor::cat(parts, 0);
    let x = if physical {
        grid.scaling.from_model_tensor(&x)
    } else {
        x * grid.scaling.scale
    };
    grid.vol.select_slices(grid.ks).with_data(tensor_to_vec(&x))
}

fn volumes(spec: &JobSpec, grid: &OutputGrid, results: &Assessed, dir: &Path) -> Result<()> {
    let (methods, refs, metal) = (&results.methods, results.references(), &results.metal);
    let model = spec
        .model
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let describe = |name: &str| format!("scorerecon {} {} ({})", spec.task.name(), name, model);
    for (name, m) in methods {
        let v = to_volume(grid, &m.x, true);
        let opts = WriteOptions {
            force: true,
            series_description: Some(describe(name)),
            derivation_description: Some(format!(
                "scorerecon {} reconstruction, method {name}; settings in metrics.json",
                crate::version()
            )),
            ..Default::default()
        };
        let as_format = |format| WriteOptions {
            format: Some(format),
            ..opts.clone()
        };
        io::write_volume_with(
            &v,
            &dir.join(format!("{name}.nii.gz")),
            &as_format(Format::Nifti),
        )?;
        io::write_volume_with(
            &v,
            &dir.join(format!("{name}_dicom")),
            &as_format(Format::Dicom),
        )?;
        if !m.std.is_empty() {
            let s = to_volume(grid, &m.std, false);
            io::write_volume_with(
                &s,
                &dir.join(format!("{name}_std.nii.gz")),
                &WriteOptions {
                    format: Some(Format::Nifti),
                    series_description: Some(format!("{} posterior std", describe(name))),
                    ..opts
                },
            )?;
        }
    }
    if let Some(refs) = refs {
        write_nifti(
            &to_volume(grid, refs, true),
            &dir.join("reference.nii.gz"),
            "scorerecon reference",
        )?;
    }
    // MAR: the metal left out of the metrics (and of their data range), for the record.
    let masks: Vec<Tensor> = metal.iter().flatten().map(|m| m.shallow_clone()).collect();
    if !masks.is_empty() && masks.len() == metal.len() {
        let m = grid
            .vol
            .select_slices(grid.ks)
            .with_data(tensor_to_vec(&Tensor::cat(&masks, 0)));
        write_nifti(
            &m,
            &dir.join("metal_mask.nii.gz"),
            "scorerecon metal mask (excluded from metrics)",
        )?;
    }
    Ok(())
}

/// One PNG panel per slice (layout: `report::panels`), listed in the report.
fn panels(
    spec: &JobSpec,
    grid: &OutputGrid,
    results: &Assessed,
    dir: &Path,
    report: &mut JobReport,
) -> Result<()> {
    let (methods, refs, metal) = (&results.methods, results.references(), &results.metal);
    let window = match (spec.task, refs) {
        (Task::Mri, Some(r)) => {
            WindowPreset::Auto.resolve(&to_volume(grid, r, true).data, Modality::Mr)
        }
        (Task::Mri, None) => {
            let score = to_volume(grid, &methods["score"].x, true);
            WindowPreset::Auto.resolve(&score.data, Modality::Mr)
        }
        _ => WindowPreset::SoftTissue.resolve(&[], Modality::Ct),
    };
    let order: Vec<&str> = spec
        .baselines
        .iter()
        .map(|b| b.name())
        .filter(|b| methods.contains_key(*b))
        .chain(["score"])
        .collect();
    let (h, w) = (grid.vol.ny(), grid.vol.nx());
    // `t` is already one slice (`nth_slice`), `[1, 1, h, w]`.
    let slice_of = |t: &Tensor| tensor_to_vec(&grid.scaling.from_model_tensor(t));
    for (i, &k) in grid.ks.iter().enumerate() {
        let r = refs.map(|refs| slice_of(&nth_slice(refs, i)));
        let xs: Vec<(&str, Vec<f32>, Option<f64>)> = order
            .iter()
            .filter_map(|&name| {
                let m = methods.get(name)?;
                Some((name, slice_of(&nth_slice(&m.x, i)), m.psnr.get(i).copied()))
            })
            .collect();
        let score = methods.get("score");
        let error = match (score, &r) {
            (Some(m), Some(r)) => {
                let x = slice_of(&nth_slice(&m.x, i));
                let mut err: Vec<f32> = x.iter().zip(r).map(|(a, b)| (a - b).abs()).collect();
                if let Some(Some(mm)) = metal.get(i) {
                    for (e, m) in err.iter_mut().zip(tensor_to_vec(mm)) {
                        if m > 0.5 {
                            *e = 0.0;
                        }
                    }
                }
                Some(err)
            }
            _ => None,
        };
        let std = score.filter(|m| !m.std.is_empty()).map(|m| {
            (
                tensor_to_vec(&(nth_slice(&m.std, i) * grid.scaling.scale)),
                spec.samples,
            )
        });
        let ((pw, ph, px), captions) = slice_panel(&SliceViews {
            width: w,
            height: h,
            window,
            reference: r.as_deref(),
            methods: xs.iter().map(|(n, x, p)| (*n, x.as_slice(), *p)).collect(),
            error,
            std,
        });
        let file = format!("panel_slice{k:03}.png");
        io::png::write_png_gray(&dir.join(&file), pw, ph, &px, true)?;
        report.panels.push(Panel {
            file,
            caption: format!("Slice {k}: {}", captions.join(" | ")),
        });
    }
    Ok(())
}

/// A NIfTI file in the job's staging folder.
fn write_nifti(v: &Volume, path: &Path, description: &str) -> Result<()> {
    io::write_volume_with(
        v,
        path,
        &WriteOptions {
            format: Some(Format::Nifti),
            force: true,
            series_description: Some(description.into()),
            ..Default::default()
        },
    )
}

/// Slice `i` (over the concatenation of per-case batches) as `[1, 1, H, W]`.
fn nth_slice(parts: &[Tensor], mut i: usize) -> Tensor {
    for p in parts {
        let b = p.size()[0] as usize;
        if i < b {
            return p.narrow(0, i as i64, 1);
        }
        i -= b;
    }
    panic!("slice index out of range")
}
