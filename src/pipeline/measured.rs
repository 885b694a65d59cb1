//! Jobs whose input is a measurement file (`NAME.json` written by `scorerecon simulate`, or a
//! user's own sinogram in that format, docs/formats.md) rather than an image: the operator and
//! `y` come from the file, there is no reference image, so PSNR/SSIM/NRMSE are null and the
//! report says so; the data-consistency residual `|A x - y| / |y|` is still reported.

use super::{reconstruct_case, tv_weight_for, write_outputs, Case, MethodOut};
use crate::io::measurement::{self, Measurement, MeasurementModality};
use crate::job::{JobSpec, Task};
use crate::metrics;
use crate::ops::radon::Radon;
use crate::ops::MeasurementOperator;
use crate::prior::ScoreModel;
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

/// What a measurement says about its geometry, checked against the command and the prior
/// before any work: a CT measurement for `ct` (sparse-view, limited-angle) or `mar`, with the
/// prior's image size.
fn check_fits(spec: &JobSpec, m: &Measurement, model: &dyn ScoreModel) -> Result<()> {
    let file = spec.input.display();
    let Some(ct) = &m.meta.ct else {
        bail!(
            "{file}: an MRI k-space measurement; reconstructing from MRI measurement files is not \
             supported yet (pass the image to `scorerecon mri`, which simulates the k-space)"
        );
    };
    ensure!(
        m.meta.modality == MeasurementModality::Ct,
        "{file}: the sidecar's modality is {:?} but it carries CT geometry",
        m.meta.modality
    );
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
    ensure!(
        m.meta.shape[1] == ct.geometry.n_angles() && m.meta.shape[2] == ct.geometry.n_det,
        "{file}: data shape {:?} does not match the geometry ({} angles x {} detector bins)",
        m.meta.shape,
        ct.geometry.n_angles(),
        ct.geometry.n_det
    );
    ensure!(
        m.data.iter().all(|v| v.is_finite()),
        "{file}: the sinogram holds NaN or infinite values"
    );
    Ok(())
}

/// Flags that describe a measurement's geometry must agree with the file's (the file wins; a
/// contradiction is an error rather than a silent choice). `views`, `full_views` and
/// `limited_angle` are the flags the user gave, None where not given.
pub fn check_flags(
    path: &Path,
    views: &[usize],
    full_views: Option<usize>,
    limited_angle: Option<f64>,
    photons: Option<f64>,
) -> Result<()> {
    let m = measurement::read_measurement(path)?;
    let file = path.display();
    let Some(ct) = &m.meta.ct else { return Ok(()) };
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
    check_fits(spec, &m, model)?;
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

    let mut report = JobReport::new(
        &format!("scorerecon {}", spec.task.name()),
        spec.task.name(),
        &spec.input.display().to_string(),
        serde_json::to_value(spec)?,
    );
    report.has_reference = false;
    report.notes.push(format!(
        "Measurement file: {:?}, {} slice(s), {} of {} sinogram bins measured; no reference \
         image, so PSNR, SSIM and NRMSE are not available; the data-consistency residual is.",
        ct.task,
        s,
        m.mask.iter().filter(|&&v| v > 0.5).count(),
        m.mask.len()
    ));
    report.notes.push(format!("Prior: {}.", model.describe()));

    let mut methods: BTreeMap<String, MethodOut> = BTreeMap::new();
    let mut tv = None;
    for k in 0..s {
        // One operator per slice: a MAR trace differs from slice to slice.
        let mask =
            Tensor::from_slice(&m.mask[k * per..(k + 1) * per]).reshape([1, 1, a as i64, d as i64]);
        let op = MeasurementOperator::new(Box::new(Radon::new(ct.geometry.clone())?), mask)
            .to_device(device);
        let y = (Tensor::from_slice(&m.data[k * per..(k + 1) * per])
            .reshape([1, 1, a as i64, d as i64])
            * to_model)
            .to_device(device);
        let case = Case {
            // Never read on this path (no metrics); the baselines and the sampler use op and y.
            reference: Tensor::zeros([1, 1, n as i64, n as i64], (Kind::Float, device)),
            op,
            y,
            fbp_full: None,
            metal: None,
            noise_free: ct.photons.is_none() && !matches!(ct.task, CtTask::Mar { .. }),
        };
        let recons = reconstruct_case(spec, model, &case, &mut tv, || {
            // No reference: the data range is the FBP image's.
            let fbp = case.op.transform.inverse_masked(&case.y, &case.op.mask);
            let range = metrics::value_range(&fbp);
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
    let ks: Vec<usize> = (0..s).collect();
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
