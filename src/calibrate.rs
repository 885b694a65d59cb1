//! `scorerecon calibrate`: the prior-fit range of a model (`prior::fit`) from validation images,
//! written into the model's metadata sidecar. The images are read, scaled and fitted to the
//! prior's grid exactly as a reconstruction job reads its input (`pipeline::input`), so the
//! statistic of a validation slice and of a reconstruction compare like for like.

use crate::job::{Fit, JobSpec, Task};
use crate::pipeline::input::{self, Input};
use crate::prior::fit::{dsm_residual, FitRange};
use crate::prior::metadata::PriorMetadata;
use crate::prior::{Normalisation, PriorRef};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// One volume and the slices of it that are validation images.
#[derive(Debug, Clone)]
pub struct ValidationVolume {
    pub path: PathBuf,
    /// Empty: every slice.
    pub slices: Vec<usize>,
}

/// What to calibrate.
pub struct CalibrateOptions {
    pub model: PriorRef,
    pub volumes: Vec<ValidationVolume>,
    pub fit: Fit,
    /// Replace a range the metadata already has.
    pub force: bool,
}

/// The statistic of every validation slice, their range, and the sidecar it was written to.
pub struct Calibration {
    pub values: Vec<f64>,
    pub range: FitRange,
    pub sidecar: PathBuf,
}

/// Compute the range and write it into the model's sidecar (atomically; the rest of the
/// sidecar is kept as it was).
pub fn run(opts: &CalibrateOptions) -> Result<Calibration> {
    ensure!(
        !opts.volumes.is_empty(),
        "calibrate: give at least one validation volume (--input)"
    );
    let weights = match &opts.model {
        PriorRef::File(p) => p.clone(),
        PriorRef::Shipped(name) => crate::prior::find_shipped(name)?,
        PriorRef::Nearest { .. } => bail!(
            "calibrate: a nearest-neighbour prior has no metadata sidecar to calibrate; its \
             reconstructions report nearest_reference_distance instead"
        ),
    };
    let sidecar = PriorMetadata::sidecar_path(&weights);
    let mut meta = PriorMetadata::read(&sidecar)?;
    if meta.prior_fit.is_some() && !opts.force {
        bail!(
            "{}: the model already has a prior-fit range; pass --force to replace it",
            sidecar.display()
        );
    }
    let model = PriorRef::File(weights.clone()).load(tch::Device::Cpu)?;
    let task = match model.normalisation() {
        Normalisation::MrPerVolume { .. } => Task::Mri,
        _ => Task::Ct,
    };
    let mut values = Vec::new();
    let mut sources = Vec::new();
    for v in &opts.volumes {
        let spec = JobSpec {
            input: v.path.clone(),
            slices: v.slices.clone(),
            all_slices: v.slices.is_empty(),
            fit: opts.fit,
            model: Some(opts.model.clone()),
            ..JobSpec::for_task(task)
        };
        spec.validate()?;
        let Input::Image(image) = input::read(&spec, model.as_ref())? else {
            bail!(
                "{}: a measurement file; calibration needs images",
                v.path.display()
            );
        };
        let hu = image.slices(&image.ks)?;
        let x = image.padding.pad(&image.scaling.to_model_tensor(&hu));
        let r = dsm_residual(model.as_ref(), &x)
            .with_context(|| format!("{}: prior fit", v.path.display()))?;
        values.extend(r);
        sources.push(format!(
            "{} slices {}",
            v.path.display(),
            slice_list(&image.ks)
        ));
    }
    let range = FitRange::of(&values, &sources.join("; "))?;
    meta.prior_fit = Some(range.clone());
    meta.write(&sidecar, true)?;
    Ok(Calibration {
        values,
        range,
        sidecar,
    })
}

/// `3..=9, 12` style.
fn slice_list(ks: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ks.len() {
        let mut j = i;
        while j + 1 < ks.len() && ks[j + 1] == ks[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}..={}", ks[i], ks[j])
        } else {
            ks[i].to_string()
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// `PATH` or `PATH:SLICES` (SLICES as `a..=b`, `a..b` or comma-separated).
pub fn parse_volume(s: &str) -> Result<ValidationVolume> {
    let (path, slices) = match s.rsplit_once(':') {
        Some((p, k))
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_digit() || ",.=".contains(c)) =>
        {
            (p, parse_slices(k).with_context(|| format!("{s}: slices"))?)
        }
        _ => (s, vec![]),
    };
    ensure!(Path::new(path).exists(), "{path}: no such file or folder");
    Ok(ValidationVolume {
        path: path.into(),
        slices,
    })
}

fn parse_slices(k: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in k.split(',') {
        if let Some((a, b)) = part.split_once("..=") {
            out.extend(a.parse::<usize>()?..=b.parse::<usize>()?);
        } else if let Some((a, b)) = part.split_once("..") {
            out.extend(a.parse::<usize>()?..b.parse::<usize>()?);
        } else {
            out.push(part.parse::<usize>()?);
        }
    }
    ensure!(!out.is_empty(), "no slices");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_lists_read_and_print() {
        assert_eq!(parse_slices("3..=5,9").unwrap(), vec![3, 4, 5, 9]);
        assert_eq!(parse_slices("3..5").unwrap(), vec![3, 4]);
        assert!(parse_slices("a").is_err());
        assert_eq!(slice_list(&[3, 4, 5, 9]), "3..=5, 9");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.nii");
        std::fs::write(&p, b"").unwrap();
        let v = parse_volume(&format!("{}:1..=2", p.display())).unwrap();
        assert_eq!((v.path, v.slices), (p.clone(), vec![1, 2]));
        assert!(parse_volume(&p.display().to_string())
            .unwrap()
            .slices
            .is_empty());
        assert!(parse_volume("/no/such.nii:1").is_err());
    }
}
