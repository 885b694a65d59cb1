//! **Write**: every method's volume (NIfTI + derived DICOM series, std maps with several samples),
//! the reference and MAR's metal mask, a PNG panel per slice, `metrics.json` and `report.html`,
//! into the job's staging folder (which `io::atomic::write_dir` moves into place whole).

use super::assess::Assessed;
use crate::io::{self, Format, WindowPreset, WriteOptions};
use crate::job::{JobSpec, Task};
use crate::prior::Scaling;
use crate::report::panels::{slice_panel, SliceViews};
use crate::report::{html, JobReport, Panel, TileFile};
use crate::tensor::tensor_to_vec;
use crate::volume::{Modality, Volume};
use anyhow::{Context, Result};
use std::path::Path;
use tch::Tensor;

/// Where the outputs sit: the volume whose slices `ks` were reconstructed, and the scaling from
/// model space back to its units.
pub struct OutputGrid<'a> {
    pub vol: &'a Volume,
    pub ks: &'a [usize],
    pub scaling: &'a Scaling,
}

/// One output volume: the slices at `idx` (positions in `ks`) on the geometry `vol`, in files
/// named with `suffix` after the method (`""` or `"_slice052"`).
struct Part {
    suffix: String,
    idx: Vec<usize>,
    vol: Volume,
}

impl OutputGrid<'_> {
    /// The output volumes: one over every slice when their positions are evenly spaced (its
    /// affine then places each where it is in the input, `Volume::select_slices`), else one per
    /// slice, `_sliceKKK` after each name, since no single affine could (docs/user-guide.md).
    fn parts(&self) -> Result<Vec<Part>> {
        if self.vol.slice_step(self.ks).is_some() {
            return Ok(vec![Part {
                suffix: String::new(),
                idx: (0..self.ks.len()).collect(),
                vol: self.vol.select_slices(self.ks)?,
            }]);
        }
        self.ks
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                Ok(Part {
                    suffix: format!("_slice{k:03}"),
                    idx: vec![i],
                    vol: self.vol.select_slices(&[k])?,
                })
            })
            .collect()
    }

    /// Model-space slices (over the concatenation of per-case batches) in output units, the
    /// slices at `idx` only when given.
    fn values(&self, slices: &[Tensor], idx: Option<&[usize]>, units: Units) -> Vec<f32> {
        let x = match idx {
            Some(idx) => Tensor::cat(
                &idx.iter()
                    .map(|&i| nth_slice(slices, i))
                    .collect::<Vec<_>>(),
                0,
            ),
            None => Tensor::cat(slices, 0),
        };
        let x = match units {
            Units::Physical => self.scaling.from_model_tensor(&x),
            Units::Spread => x * self.scaling.scale,
            Units::Mask => x,
        };
        tensor_to_vec(&x)
    }

    /// The part's slices of `slices` as its output volume.
    fn volume(&self, part: &Part, slices: &[Tensor], units: Units) -> Volume {
        part.vol
            .with_data(self.values(slices, Some(&part.idx), units))
    }
}

/// How model-space values go out.
#[derive(Clone, Copy)]
enum Units {
    /// Images: back to HU / scanner intensity.
    Physical,
    /// A spread such as a std map: scaled only, no offset.
    Spread,
    /// A 0/1 mask: as it is.
    Mask,
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
    let parts = grid.parts()?;
    if parts.len() > 1 {
        report.notes.push(format!(
            "Slices {:?} are not evenly spaced in the input, so no single volume's geometry can \
             place them: each slice is written as a volume of its own (<method>_sliceKKK.nii.gz, \
             <method>_sliceKKK_dicom/, reference_sliceKKK.nii.gz) at its position in the input.",
            grid.ks
        ));
    }
    volumes(spec, grid, &parts, results, dir)?;
    panels(spec, grid, results, dir, report)?;
    std::fs::write(dir.join("metrics.json"), report.to_json())?;
    std::fs::write(dir.join("report.html"), html::render_job(report, dir))?;
    Ok(())
}

fn volumes(
    spec: &JobSpec,
    grid: &OutputGrid,
    parts: &[Part],
    results: &Assessed,
    dir: &Path,
) -> Result<()> {
    let (methods, refs, metal) = (&results.methods, results.references(), &results.metal);
    let model = spec
        .model
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let describe = |name: &str| format!("scorerecon {} {} ({})", spec.task.name(), name, model);
    // Every method's series belongs to one study and one frame of reference (the source's when it
    // was DICOM), so a PACS files FBP, FISTA-TV and the score-based result together and a viewer
    // may link them; each series gets its own number: score 9001, the baselines after it.
    let carried = |key: &str| {
        grid.vol
            .provenance
            .carried_tags
            .iter()
            .find(|(t, _, _)| t == key)
            .map(|(_, _, v)| v.clone())
    };
    let study_uid = carried("0020000D").unwrap_or_else(io::dicom::new_uid);
    let frame_of_reference = carried("00200052").unwrap_or_else(io::dicom::new_uid);
    let numbered: Vec<&str> = std::iter::once("score")
        .chain(spec.baselines.iter().map(|b| b.name()))
        .chain(methods.keys().map(|k| k.as_str()))
        .fold(Vec::new(), |mut seen, n| {
            if !seen.contains(&n) {
                seen.push(n);
            }
            seen
        });
    for (name, m) in methods {
        let series_number = numbered.iter().position(|n| n == name).unwrap_or(0) as u32 + 9001;
        let opts = WriteOptions {
            series_number: Some(series_number),
            study_instance_uid: Some(study_uid.clone()),
            frame_of_reference_uid: Some(frame_of_reference.clone()),
            force: true,
            // The report's window, so a viewer opens the series as the report shows it.
            window: Some(spec.window),
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
        for part in parts {
            let v = grid.volume(part, &m.x, Units::Physical);
            let stem = format!("{name}{}", part.suffix);
            io::write_volume_with(
                &v,
                &dir.join(format!("{stem}.nii.gz")),
                &as_format(Format::Nifti),
            )?;
            io::write_volume_with(
                &v,
                &dir.join(format!("{stem}_dicom")),
                &as_format(Format::Dicom),
            )?;
            if !m.std.is_empty() {
                io::write_volume_with(
                    &grid.volume(part, &m.std, Units::Spread),
                    &dir.join(format!("{stem}_std.nii.gz")),
                    &WriteOptions {
                        format: Some(Format::Nifti),
                        series_description: Some(format!("{} posterior std", describe(name))),
                        ..opts.clone()
                    },
                )?;
            }
        }
    }
    // MAR: the metal left out of the metrics (and of their data range), for the record.
    let masks: Vec<Tensor> = metal.iter().flatten().map(|m| m.shallow_clone()).collect();
    for part in parts {
        if let Some(refs) = refs {
            write_nifti(
                &grid.volume(part, refs, Units::Physical),
                &dir.join(format!("reference{}.nii.gz", part.suffix)),
                "scorerecon reference",
            )?;
        }
        if !masks.is_empty() && masks.len() == metal.len() {
            write_nifti(
                &grid.volume(part, &masks, Units::Mask),
                &dir.join(format!("metal_mask{}.nii.gz", part.suffix)),
                "scorerecon metal mask (excluded from metrics)",
            )?;
        }
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
    let mr_window = |values: &[f32], of: &str| {
        let w = WindowPreset::Auto.resolve(values, Modality::Mr);
        let (lo, hi) = (w.center - w.width / 2.0, w.center + w.width / 2.0);
        let said = format!(
            "0.5th to 99.5th percentile of the {of}: {} to {} (scanner intensity)",
            html::sig(lo),
            html::sig(hi)
        );
        (w, said)
    };
    let (window, said, units) = match (spec.task, refs) {
        (Task::Mri, Some(r)) => {
            let (w, said) = mr_window(&grid.values(r, None, Units::Physical), "reference");
            (w, said, "scanner intensity")
        }
        (Task::Mri, None) => {
            let score = grid.values(&methods["score"].x, None, Units::Physical);
            let (w, said) = mr_window(&score, "score-based reconstruction");
            (w, said, "scanner intensity")
        }
        _ => (
            spec.window.resolve(&[], Modality::Ct),
            spec.window.describe_ct(),
            "HU",
        ),
    };
    report.display_window = Some(said);
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
        type Shown<'a> = (&'a str, Vec<f32>, Option<f64>, Option<f64>);
        let xs: Vec<Shown> = order
            .iter()
            .filter_map(|&name| {
                let m = methods.get(name)?;
                let x = slice_of(&nth_slice(&m.x, i));
                Some((name, x, m.psnr.get(i).copied(), m.ssim.get(i).copied()))
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
        let panel = slice_panel(&SliceViews {
            width: w,
            height: h,
            window,
            reference: r.as_deref(),
            methods: xs
                .iter()
                .map(|(n, x, p, q)| (*n, x.as_slice(), *p, *q))
                .collect(),
            error,
            std,
            units,
        });
        let (pw, ph, px) = &panel.row;
        let file = format!("panel_slice{k:03}.png");
        io::png::write_png_gray(&dir.join(&file), *pw, *ph, px, true)?;
        // Each tile on its own too, at full resolution, for the report's labelled tiles.
        std::fs::create_dir_all(dir.join("tiles"))?;
        let mut tiles = Vec::new();
        for (j, t) in panel.tiles.into_iter().enumerate() {
            let file = format!("tiles/slice{k:03}_{j}.png");
            io::png::write_png_gray(&dir.join(&file), t.width, t.height, &t.pixels, true)?;
            tiles.push(TileFile {
                file,
                label: t.label,
                colour_bar: t.bar,
            });
        }
        report.panels.push(Panel {
            file,
            caption: format!("Slice {k}: {}", panel.captions.join(" | ")),
            tiles,
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

/// Multi-coil MRI: the coil maps the operator used (`[B, C, H, W]` complex, on the slices'
/// grid), written for inspection as `coil_maps.nii.gz` (magnitude) and `coil_maps_phase.nii.gz`
/// (radians): 4-D, x by y by slice by coil, with the output's pixel spacing.
pub fn coil_maps(maps: &Tensor, grid: &Volume, dir: &Path) -> Result<()> {
    let spacing = [grid.spacing[0], grid.spacing[1], grid.spacing[2]];
    let [b, c, h, w] = maps.size()[..] else {
        anyhow::bail!("coil maps: expected [B, C, H, W], got {:?}", maps.size())
    };
    // NIfTI's order: x fastest, then y, slice, coil.
    let order = |t: Tensor| -> Vec<f32> { tensor_to_vec(&t.permute([1, 0, 2, 3]).contiguous()) };
    let dims = [w as usize, h as usize, b as usize, c as usize];
    let maps = maps.to_device(tch::Device::Cpu);
    for (name, values) in [
        ("coil_maps.nii.gz", order(maps.abs())),
        ("coil_maps_phase.nii.gz", order(maps.angle())),
    ] {
        let mut vol = Volume::new(values, dims, spacing, Modality::Mr);
        vol.provenance
            .history
            .push("coil sensitivities (ESPIRiT) of the multi-coil operator".into());
        io::write_volume(&vol, &dir.join(name), Some(Format::Nifti), false)
            .with_context(|| format!("cannot write {name}"))?;
    }
    Ok(())
}
