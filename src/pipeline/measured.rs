//! Jobs whose input is a measurement file (`NAME.json` written by `scorerecon simulate`, or a
//! user's own sinogram in that format, docs/formats.md) rather than an image: the operator and
//! `y` come from the file, there is no reference image, so PSNR/SSIM/NRMSE are null and the
//! report says so; the data-consistency residual `|A x - y| / |y|` is still reported.

use super::{reconstruct_case, tv_weight_for, write_outputs, Case, MethodOut};
use crate::io::measurement::{self, Measurement, MeasurementModality};
use crate::job::{JobSpec, Task};
use crate::metrics;
use crate::ops::mri::MriFft;
use crate::ops::radon::Radon;
use crate::ops::MeasurementOperator;
use crate::ops::Transform;
use crate::prior::ScoreModel;
use crate::prior::{Normalisation, Scaling};
use crate::report::{html, JobReport, MethodMetrics};
use crate::simulate::CtTask;
use crate::volume::{Modality, Volume};
use anyhow::{bail, ensure, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Whether `path` names a measurement sidecar (a `.json` file carrying the format tag).
pub fn is_measurement(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json") && path.is_file()
}

/// What a CT measurement says about its geometry, checked against the command and the prior
/// before any work: a CT measurement for `ct` (sparse-view, limited-angle) or `mar`, with the
/// prior's image size.
fn check_ct_fits(spec: &JobSpec, m: &Measurement, model: &dyn ScoreModel) -> Result<()> {
    let file = spec.input.display();
    let Some(ct) = &m.meta.ct else {
        bail!("{file}: a CT measurement needs its \"ct\" geometry");
    };
    match (spec.task, &ct.task) {
        (Task::Mri, _) => bail!("{file}: a CT sinogram; the mri command needs MRI k-space"),
        (Task::Ct, CtTask::Mar { .. }) => {
            bail!("{file}: a metal-artifact measurement; use `scorerecon mar`")
        }
        (Task::Mar, CtTask::SparseView { .. } | CtTask::LimitedAngle { .. }) => {
            bail!("{file}: a sparse-view or limited-angle measurement; use `scorerecon ct`")
        }
        _ => {}
    }
    let [mh, mw] = model.image_size();
    let n = ct.geometry.image_size as i64;
    ensure!(
        (n, n) == (mh, mw),
        "{file}: the measurement is of a {n}x{n} image but the prior works on {mw}x{mh}; \
         simulate at the prior's size or use a prior trained at {n}x{n}"
    );
    Ok(())
}

/// The same for MRI k-space: the mri command, and a k-space grid equal to the prior's image.
fn check_mri_fits(spec: &JobSpec, m: &Measurement, model: &dyn ScoreModel) -> Result<()> {
    let file = spec.input.display();
    ensure!(
        spec.task == Task::Mri,
        "{file}: an MRI k-space measurement; use `scorerecon mri`"
    );
    let [_, h, w] = m.meta.shape;
    let [mh, mw] = model.image_size();
    ensure!(
        (h as i64, w as i64) == (mh, mw),
        "{file}: the k-space is {w}x{h} but the prior works on {mw}x{mh} images; measure on the \
         prior's grid (`scorerecon simulate --task mri --downsample K --pad-to N`) or use a prior \
         trained at {w}x{h}"
    );
    Ok(())
}

/// The measurement flags a user gave (None / empty where not given): the job's settings whose
/// keys the user wrote, on the command line or in a manifest entry (a preset config's values are
/// defaults, not statements about a file, so they are not "given").
#[derive(Clone, Debug, Default)]
pub struct GivenFlags {
    pub slices: bool,
    pub views: Vec<usize>,
    pub full_views: Option<usize>,
    pub limited_angle: Option<f64>,
    pub photons: Option<f64>,
    pub acceleration: Vec<f64>,
    pub center_fraction: Option<f64>,
    pub mask: Option<String>,
    pub snr_db: Option<f64>,
}

impl GivenFlags {
    /// The settings of `spec` whose keys appear in `given`.
    pub fn of(spec: &JobSpec, given: &serde_yaml_ng::Mapping) -> Self {
        let has = |k: &str| given.contains_key(k);
        GivenFlags {
            slices: (has("slices") && !spec.slices.is_empty())
                || (has("all_slices") && spec.all_slices),
            views: if has("views") {
                spec.views.clone()
            } else {
                vec![]
            },
            full_views: has("full_views").then_some(spec.full_views),
            limited_angle: spec.limited_angle.filter(|_| has("limited_angle")),
            photons: spec.photons.filter(|_| has("photons")),
            acceleration: if has("acceleration") {
                spec.acceleration.clone()
            } else {
                vec![]
            },
            center_fraction: has("center_fraction").then_some(spec.center_fraction),
            mask: has("mask").then(|| spec.mask.clone()),
            snr_db: spec.snr_db.filter(|_| has("snr_db")),
        }
    }
}

/// Flags that describe a measurement's geometry must agree with the file's (the file wins; a
/// contradiction is an error rather than a silent choice). Nothing to check for an image input.
pub fn check_flags(spec: &JobSpec, given: &GivenFlags) -> Result<()> {
    let path = spec.input.as_path();
    if !is_measurement(path) {
        return Ok(());
    }
    ensure!(
        !given.slices,
        "{}: a measurement file is reconstructed whole; --slice and --all-slices (`slices`, `all_slices` in a manifest) select slices of an image",
        path.display()
    );
    let views = given.views.as_slice();
    let (full_views, limited_angle, photons) =
        (given.full_views, given.limited_angle, given.photons);
    // The sidecar holds the geometry; the data are read (and checked) by the job itself.
    let meta = measurement::read_sidecar(path)?;
    let file = path.display();
    if meta.modality == MeasurementModality::Mri {
        let mri = meta.mri.clone().unwrap_or_default();
        let differs = |flag: Option<f64>, file_value: Option<f64>| match (flag, file_value) {
            (Some(a), Some(b)) => (a - b).abs() > 1e-9,
            (Some(_), None) => true,
            _ => false,
        };
        let acc = match given.acceleration.as_slice() {
            [] => None,
            [r] => Some(*r),
            _ => bail!("{file}: a measurement file has one acceleration; --acceleration sweeps need an image"),
        };
        ensure!(
            !differs(acc, mri.acceleration)
                && !differs(given.center_fraction, mri.center_fraction)
                && given
                    .mask
                    .as_deref()
                    .is_none_or(|k| Some(k) == mri.mask.as_deref()),
            "{file}: --acceleration {acc:?} / --center-fraction {:?} / --mask {:?} contradict the \
             measurement (acceleration {:?}, centre fraction {:?}, mask {:?}); a measurement file \
             fixes its own mask",
            given.center_fraction,
            given.mask,
            mri.acceleration,
            mri.center_fraction,
            mri.mask
        );
        ensure!(
            given.snr_db.is_none(),
            "{file}: --snr-db simulates noise; a measurement file already carries its own"
        );
        ensure!(
            views.is_empty() && full_views.is_none() && limited_angle.is_none() && photons.is_none(),
            "{file}: CT flags (--views, --full-views, --limited-angle, --photons) given for MRI k-space"
        );
        return Ok(());
    }
    let Some(ct) = &meta.ct else { return Ok(()) };
    if let Some(f) = full_views {
        ensure!(
            f == ct.geometry.n_angles(),
            "{file}: --full-views {f} contradicts the measurement's {} angles",
            ct.geometry.n_angles()
        );
    }
    match (&ct.task, views, limited_angle) {
        (_, [], None) => {}
        (CtTask::SparseView { views: v }, [w], None) if w == v => {}
        (CtTask::LimitedAngle { wedge_deg, .. }, [], Some(w)) if (w - wedge_deg).abs() < 1e-9 => {}
        (task, _, _) => bail!(
            "{file}: --views {views:?} / --limited-angle {limited_angle:?} contradict the \
             measurement ({task:?}); a measurement file fixes its own views"
        ),
    }
    ensure!(
        photons.is_none(),
        "{file}: --photons simulates noise; a measurement file already carries its own"
    );
    Ok(())
}

/// Reconstruct every slice of the measurement `spec.input` into `dir`.
pub fn run_job(
    spec: &JobSpec,
    model: &dyn ScoreModel,
    device: Device,
    dir: &Path,
) -> Result<JobReport> {
    let m = measurement::read_measurement(&spec.input)?;
    let mut report = JobReport::new(
        &format!("scorerecon {}", spec.task.name()),
        spec.task.name(),
        &spec.input.display().to_string(),
        serde_json::to_value(spec)?,
    );
    report.has_reference = false;
    let (s, a, d) = (m.meta.shape[0], m.meta.shape[1], m.meta.shape[2]);
    let (cases, scaling, vol) = match m.meta.modality {
        MeasurementModality::Ct => ct_cases(spec, &m, model, device, &mut report)?,
        MeasurementModality::Mri => mri_cases(spec, &m, model, device, &mut report)?,
    };
    report.notes.push(format!(
        "Measurement file: {s} slice(s) of {a}x{d}, {} of {} samples measured; no reference \
         image, so PSNR, SSIM and NRMSE are not available; the data-consistency residual is.",
        m.mask.iter().filter(|&&v| v > 0.5).count(),
        m.mask.len()
    ));
    report.notes.push(format!("Prior: {}.", model.describe()));

    let mut methods: BTreeMap<String, MethodOut> = BTreeMap::new();
    let mut tv = None;
    for case in &cases {
        let recons = reconstruct_case(spec, model, case, &mut tv, || {
            // No reference: the data range is the direct inverse's (FBP / zero-filled).
            let direct = case.op.transform.inverse_masked(&case.y, &case.op.mask);
            let range = metrics::value_range(&direct);
            tv_weight_for(spec, &case.op, range, None, &mut report.notes)
        })?;
        for (name, r) in recons {
            let x = r.x.to_kind(Kind::Float);
            let out = methods.entry(name).or_default();
            out.seconds += r.seconds;
            out.residual.extend(case.op.residual(&x, &case.y));
            out.x.push(x.to_device(Device::Cpu));
            if let Some(sd) = r.std {
                out.std.push(sd.to_device(Device::Cpu));
            }
        }
    }
    for (name, out) in &methods {
        report.methods.insert(
            name.clone(),
            MethodMetrics {
                psnr: None,
                ssim: None,
                nrmse: None,
                seconds: out.seconds,
                residual: Some(out.residual.iter().sum::<f64>() / out.residual.len() as f64),
                psnr_per_slice: vec![],
                ssim_per_slice: vec![],
            },
        );
    }
    let ks: Vec<usize> = (0..vol.nz()).collect();
    write_outputs(
        spec,
        &vol,
        &ks,
        &scaling,
        &methods,
        None,
        &[],
        dir,
        &mut report,
    )?;
    std::fs::write(dir.join("metrics.json"), report.to_json())?;
    std::fs::write(dir.join("report.html"), html::render_job(&report, dir))?;
    Ok(report)
}

/// A job's cases (one per slice: a MAR trace differs from slice to slice), the scaling from
/// model space to the output's units, and an empty volume with the output's geometry.
type Cases = (Vec<Case>, Scaling, Volume);

/// The cases of a CT sinogram file, in the prior's model space.
fn ct_cases(
    spec: &JobSpec,
    m: &Measurement,
    model: &dyn ScoreModel,
    device: Device,
    report: &mut JobReport,
) -> Result<Cases> {
    check_ct_fits(spec, m, model)?;
    let ct = m.meta.ct.as_ref().expect("checked: a CT measurement");
    let scaling = model.normalisation().fit(&[0.0])?;
    ensure!(
        scaling.offset == -1000.0,
        "the CT prior maps HU {} to zero; measurement files are on the scale with air at zero",
        scaling.offset
    );
    // The file's line integrals are of (HU + 1000) / 2000 (docs/formats.md); the prior's scale
    // differs from it by a constant factor.
    let to_model = 2000.0 / scaling.scale;
    let [s, a, d] = m.meta.shape;
    let n = ct.geometry.image_size;
    let per = a * d;
    report.notes.push(format!("CT task: {:?}.", ct.task));
    let mut cases = Vec::with_capacity(s);
    for k in 0..s {
        let mask =
            Tensor::from_slice(&m.mask[k * per..(k + 1) * per]).reshape([1, 1, a as i64, d as i64]);
        let op = MeasurementOperator::new(Box::new(Radon::new(ct.geometry.clone())?), mask)
            .to_device(device);
        let y = (Tensor::from_slice(&m.data[k * per..(k + 1) * per])
            .reshape([1, 1, a as i64, d as i64])
            * to_model)
            .to_device(device);
        cases.push(Case {
            // Never read on this path (no metrics); the baselines and the sampler use op and y.
            reference: Tensor::zeros([1, 1, n as i64, n as i64], (Kind::Float, device)),
            op,
            y,
            fbp_full: None,
            metal: None,
            noise_free: ct.photons.is_none() && !matches!(ct.task, CtTask::Mar { .. }),
        });
    }
    // Image geometry: the pixel spacing the sidecar records, isotropic, identity direction.
    let px = ct.pixel_spacing_mm;
    let mut vol = Volume::new(
        vec![0.0; n * n * s],
        [n, n, s, 1],
        [px, px, px],
        Modality::Ct,
    );
    vol.provenance
        .history
        .push(format!("reconstructed from {}", spec.input.display()));
    Ok((cases, scaling, vol))
}

/// The cases of an MRI k-space file: the real-image centred orthonormal FFT on the file's
/// mask, the data divided by the volume's intensity scale (from the sidecar, else estimated
/// from the zero-filled image, and the report says so).
fn mri_cases(
    spec: &JobSpec,
    m: &Measurement,
    model: &dyn ScoreModel,
    device: Device,
    report: &mut JobReport,
) -> Result<Cases> {
    check_mri_fits(spec, m, model)?;
    let mri = m.meta.mri.clone().unwrap_or_default();
    let [s, h, w] = m.meta.shape;
    let per = h * w;
    let kspace = |k: usize| -> Tensor {
        Tensor::from_slice(&m.data[2 * k * per..2 * (k + 1) * per])
            .reshape([1, 1, h as i64, w as i64, 2])
            .view_as_complex()
    };
    let mask_of = |k: usize| -> Tensor {
        Tensor::from_slice(&m.mask[k * per..(k + 1) * per]).reshape([1, 1, h as i64, w as i64])
    };
    let normalisation = model.normalisation();
    let scaling = match (&normalisation, mri.intensity_scale) {
        (Normalisation::MrPerVolume { percentile }, Some(sc))
            if (sc.percentile - percentile).abs() < 1e-9 =>
        {
            report.notes.push(format!(
                "Intensity scale from the sidecar: the source volume's {percentile}th percentile, {}.",
                sc.value
            ));
            Scaling {
                offset: 0.0,
                scale: sc.value,
            }
        }
        (Normalisation::MrPerVolume { percentile }, _) => {
            // The zero-filled image keeps the low frequencies, hence the intensity level; it
            // sees only the measured slices, not the whole volume the prior's scale refers to.
            let op = MriFft::real(h as i64, w as i64)?;
            let zf: Vec<f32> = (0..s)
                .flat_map(|k| {
                    crate::tensor::tensor_to_vec(&op.inverse_masked(&kspace(k), &mask_of(k)))
                })
                .collect();
            let sc = normalisation.fit(&zf)?;
            report.notes.push(format!(
                "The sidecar gives no intensity scale: the {percentile}th percentile of the \
                 zero-filled image ({:.4}) stands in for the volume's, so intensities may sit off \
                 the prior's scale.",
                sc.scale
            ));
            sc
        }
        (other, _) => bail!(
            "{}: the prior's normalisation is {other:?}; MRI k-space needs an MR prior",
            spec.input.display()
        ),
    };
    let noise_free = mri.noise_free && mri.snr_db.is_none();
    report.notes.push(format!(
        "MRI k-space {w}x{h}: mask {}, acceleration {}, centre fraction {}; {}.",
        mri.mask.as_deref().unwrap_or("not stated"),
        mri.acceleration
            .map_or("not stated".into(), |r| r.to_string()),
        mri.center_fraction
            .map_or("not stated".into(), |c| c.to_string()),
        if noise_free {
            "noise-free (the sampler ends with an exact projection onto A x = y)"
        } else {
            "treated as noisy"
        }
    ));
    let mut cases = Vec::with_capacity(s);
    for k in 0..s {
        let op = MeasurementOperator::new(Box::new(MriFft::real(h as i64, w as i64)?), mask_of(k))
            .to_device(device);
        let y = (kspace(k) / scaling.scale).to_device(device);
        cases.push(Case {
            reference: Tensor::zeros([1, 1, h as i64, w as i64], (Kind::Float, device)),
            op,
            y,
            fbp_full: None,
            metal: None,
            noise_free,
        });
    }
    let [dy, dx] = mri.pixel_spacing_mm.unwrap_or([1.0, 1.0]);
    if mri.pixel_spacing_mm.is_none() {
        report
            .notes
            .push("The sidecar gives no pixel spacing; the outputs say 1 mm.".into());
    }
    let mut vol = Volume::new(
        vec![0.0; per * s],
        [w, h, s, 1],
        [dx, dy, dx.min(dy)],
        Modality::Mr,
    );
    vol.provenance
        .history
        .push(format!("reconstructed from {}", spec.input.display()));
    Ok((cases, scaling, vol))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::{Mapping, Value};

    fn yaml(text: &str) -> Mapping {
        match serde_yaml_ng::from_str(text).unwrap() {
            Value::Mapping(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn only_the_keys_the_user_wrote_are_given() {
        // A preset's `views: [23]` and `mask` are in the spec but were not written for this input.
        let written = yaml("input: m.json\nphotons: 1.0e5\nslices: [3]\n");
        let mut preset = yaml("views: [23]\nfull_views: 180\nmask: random\n");
        preset.extend(written.clone());
        let spec = JobSpec::from_yaml(Some(Task::Ct), &preset, "test").unwrap();
        assert_eq!(spec.views, vec![23]);
        let given = GivenFlags::of(&spec, &written);
        assert!(given.views.is_empty() && given.full_views.is_none() && given.mask.is_none());
        assert_eq!(given.photons, Some(1.0e5));
        assert!(given.slices);
        let given = GivenFlags::of(&spec, &preset);
        assert_eq!((given.views, given.full_views), (vec![23], Some(180)));
        assert_eq!(given.mask.as_deref(), Some("random"));
    }
}
