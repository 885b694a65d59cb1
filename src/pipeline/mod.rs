//! One job from input to outputs: **read -> measure -> reconstruct -> assess -> write**. The `ct`,
//! `mri`, `mar`, `batch` and `demo` commands all come through [`run_to_dir`].
//!
//! Everything between read and write happens in the prior's model space (CT: `ops::hu`'s
//! attenuation scale, MR: per-volume percentile scaling), so the measurement, the baselines and
//! the sampler see the same numbers; outputs go back to HU / scanner intensity.

use crate::classic::{fista_tv::FistaTv, Baseline};
use crate::io::{self, atomic, Format, ReadOptions, WindowPreset, WriteOptions};
use crate::job::{JobSpec, Task};
use crate::metrics::{self, Roi};
use crate::ops::masks::{MaskKind, MaskSpec};
use crate::ops::mri::{kspace_noise, MriFft, NoiseLevel};
use crate::ops::radon::Radon;
use crate::ops::MeasurementOperator;
use crate::prior::normalisation::{Normalisation, Scaling};
use crate::prior::{load_prior, ScoreModel};
use crate::report::{html, panels, JobReport, MethodMetrics, Panel, SweepPoint};
use crate::sampler::{self, SamplerKind, SamplerOptions};
use crate::simulate::{self, CtSimulationSpec, CtTask, Material, MetalObject};
use crate::tensor::parse_device;
use crate::volume::{Modality, Volume};
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

pub(crate) mod measured;

/// Run `spec` and write everything into `out` (atomically: the folder appears only when the job
/// finished; an existing folder is replaced only with `force`).
pub fn run_to_dir(spec: &JobSpec, out: &Path, force: bool) -> Result<JobReport> {
    atomic::check_overwrite(out, force)?;
    let mut report = None;
    atomic::write_dir(out, force, |dir| {
        report = Some(run_job(spec, dir)?);
        Ok(())
    })?;
    Ok(report.expect("write_dir ran the job"))
}

/// Where the results are, and the headline numbers, for the terminal.
pub fn print_summary(report: &JobReport, out: &Path) {
    println!("{} ({}): {}", report.title, report.task, out.display());
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

/// The measurement of a batch of slices under one operator.
struct Case {
    op: MeasurementOperator,
    /// Zero-filled measurement in model space, `[B, 1, m0, m1]`.
    y: Tensor,
    /// The image measured, model space, `[B, 1, H, W]` (model size).
    reference: Tensor,
    /// MAR: FBP of the whole metal-corrupted sinogram (what a scanner shows): the `fbp` baseline.
    fbp_full: Option<Tensor>,
    /// MAR: the metal, excluded from the metrics, `[B, 1, H, W]`.
    metal: Option<Tensor>,
    /// Whether `y` is exact (then the sampler ends with an exact projection onto `A x = y`).
    noise_free: bool,
}

/// Centred zero-padding of the input slices to the model's size (`--fit pad`, and after the
/// averaging down of `--fit resample`).
#[derive(Clone, Copy, Debug)]
struct Fit {
    h: usize,
    w: usize,
    mh: usize,
    mw: usize,
}

impl Fit {
    fn new(h: usize, w: usize, model: [i64; 2], mode: &str, input: &Path) -> Result<Self> {
        let (mh, mw) = (model[0] as usize, model[1] as usize);
        if (h, w) != (mh, mw) {
            if mode == "error" {
                bail!(
                    "{}: slices are {w}x{h} but the prior works on {mw}x{mh}; use a prior trained at \
                     this size, or pass --fit resample (average larger slices down by an integer \
                     factor, then pad) or --fit pad (zero-pad smaller slices)",
                    input.display()
                );
            }
            if h > mh || w > mw {
                bail!("{}: slices are {w}x{h}, larger than the prior's {mw}x{mh}; --fit pad only pads (--fit resample averages down)", input.display());
            }
        }
        Ok(Fit { h, w, mh, mw })
    }

    fn offsets(&self) -> (i64, i64) {
        (
            ((self.mh - self.h) / 2) as i64,
            ((self.mw - self.w) / 2) as i64,
        )
    }

    /// `[B, 1, h, w]` -> `[B, 1, mh, mw]`.
    fn pad(&self, x: &Tensor) -> Tensor {
        let (top, left) = self.offsets();
        let (bottom, right) = (
            self.mh as i64 - self.h as i64 - top,
            self.mw as i64 - self.w as i64 - left,
        );
        if top == 0 && left == 0 && bottom == 0 && right == 0 {
            return x.shallow_clone();
        }
        x.constant_pad_nd([left, right, top, bottom])
    }

    /// `[B, 1, mh, mw]` -> `[B, 1, h, w]`.
    fn crop(&self, x: &Tensor) -> Tensor {
        let (top, left) = self.offsets();
        x.narrow(2, top, self.h as i64)
            .narrow(3, left, self.w as i64)
    }
}

/// `--fit resample`: the smallest integer factor that brings the slices within the model's size
/// (1 when they already fit or another mode is chosen).
fn resample_factor(spec: &JobSpec, vol: &Volume, model: [i64; 2]) -> usize {
    if spec.fit != "resample" {
        return 1;
    }
    let (mh, mw) = (model[0] as usize, model[1] as usize);
    vol.ny().div_ceil(mh).max(vol.nx().div_ceil(mw)).max(1)
}

/// The prior, checked against the task before any work.
fn load_model(spec: &JobSpec, device: Device) -> Result<Box<dyn ScoreModel>> {
    if spec.model.is_empty() {
        bail!("no prior given: pass --model NAME (shipped, see models/), a .safetensors or .pt file, or knn:FOLDER");
    }
    let model = load_prior(&spec.model, device)?;
    let ct_prior = matches!(model.normalisation(), Normalisation::CtAttenuation { .. });
    let mr_prior = matches!(model.normalisation(), Normalisation::MrPerVolume { .. });
    match spec.task {
        Task::Ct | Task::Mar if mr_prior => bail!(
            "prior {}: it was trained on MR images (per-volume intensity scaling); the {} command needs a CT prior (HU)",
            spec.model,
            spec.task.name()
        ),
        Task::Mri if ct_prior => bail!(
            "prior {}: it was trained on CT images (HU); the mri command needs an MR prior",
            spec.model
        ),
        _ => {}
    }
    Ok(model)
}

fn check_modality(spec: &JobSpec, vol: &Volume) -> Result<()> {
    match (spec.task, vol.modality) {
        (Task::Ct | Task::Mar, Modality::Mr) => bail!(
            "{}: this is an MR image; the {} command reconstructs CT (use `scorerecon mri`)",
            spec.input.display(),
            spec.task.name()
        ),
        (Task::Mri, Modality::Ct) => bail!(
            "{}: this is a CT image; the mri command reconstructs MR (use `scorerecon ct` or `mar`)",
            spec.input.display()
        ),
        _ => Ok(()),
    }
}

fn choose_slices(spec: &JobSpec, vol: &Volume) -> Result<Vec<usize>> {
    let nz = vol.nz();
    let ks: Vec<usize> = if spec.all_slices {
        (0..nz).collect()
    } else if spec.slices.is_empty() {
        vec![nz / 2]
    } else {
        spec.slices.clone()
    };
    for &k in &ks {
        if k >= nz {
            bail!(
                "{}: slice {k} does not exist (the volume has {nz} slices, 0..={})",
                spec.input.display(),
                nz.saturating_sub(1)
            );
        }
    }
    Ok(ks)
}

/// The host slices `ks` as a `[B, 1, ny, nx]` tensor.
fn slices(vol: &Volume, ks: &[usize]) -> Result<Tensor> {
    crate::tensor::slices_to_tensor(vol, ks, Device::Cpu)
}

/// The value of the swept parameter this measurement uses.
#[derive(Clone, Copy, Debug)]
enum Setting {
    Views(usize),
    Wedge(f64),
    Acceleration(f64),
    Mar,
}

impl Setting {
    fn x(&self) -> f64 {
        match *self {
            Setting::Views(v) => v as f64,
            Setting::Wedge(w) => w,
            Setting::Acceleration(r) => r,
            Setting::Mar => 0.0,
        }
    }
    fn label(&self) -> String {
        match *self {
            Setting::Views(v) => format!("{v} views"),
            Setting::Wedge(w) => format!("{w} degree wedge"),
            Setting::Acceleration(r) => format!("{r}x"),
            Setting::Mar => "metal trace removed".into(),
        }
    }
}

fn settings_of(spec: &JobSpec) -> Vec<Setting> {
    match spec.task {
        Task::Ct => match spec.limited_angle {
            Some(w) => vec![Setting::Wedge(w)],
            None => spec.views.iter().map(|&v| Setting::Views(v)).collect(),
        },
        Task::Mri => spec
            .acceleration
            .iter()
            .map(|&r| Setting::Acceleration(r))
            .collect(),
        Task::Mar => vec![Setting::Mar],
    }
}

/// Simulate the measurement of slices `hu` (scanner values, `[B,1,h,w]`) under `setting`.
fn measure(
    spec: &JobSpec,
    setting: Setting,
    hu: &Tensor,
    vol: &Volume,
    fit: &Fit,
    scaling: &Scaling,
    device: Device,
) -> Result<Vec<Case>> {
    let b = hu.size()[0];
    match spec.task {
        Task::Mri => {
            let reference = fit.pad(&scaling.to_model_tensor(hu)).to_device(device);
            let mask_kind = MaskKind::parse(&spec.mask)?;
            let Setting::Acceleration(r) = setting else {
                unreachable!()
            };
            let mask = MaskSpec {
                kind: mask_kind,
                acceleration: r,
                center_fraction: spec.center_fraction,
                seed: spec.seed,
            }
            .build(fit.mh as i64, fit.mw as i64)?;
            let op = MeasurementOperator::new(
                Box::new(MriFft::real(fit.mh as i64, fit.mw as i64)?),
                mask,
            )
            .to_device(device);
            let mut y = op.forward(&reference);
            if let Some(snr_db) = spec.snr_db {
                y = kspace_noise(&y, Some(&op.mask), NoiseLevel::SnrDb(snr_db), spec.seed)?.0;
            }
            Ok(vec![Case {
                op,
                y,
                reference,
                fbp_full: None,
                metal: None,
                noise_free: spec.snr_db.is_none(),
            }])
        }
        Task::Ct | Task::Mar => {
            ensure!(
                fit.mh == fit.mw,
                "{}: the parallel-beam operator needs square images; the prior works on {}x{}",
                spec.input.display(),
                fit.mw,
                fit.mh
            );
            // The CT simulation works on ops::hu's scale (HU + 1000) / 2000; a prior trained on
            // (HU + 1000) / (hu_max + 1000) differs from it by a constant factor, and so (linear
            // measurement) do the sinograms.
            ensure!(
                scaling.offset == -1000.0,
                "the CT prior maps HU {} to zero; scorerecon's CT simulation needs air (-1000 HU) at zero",
                scaling.offset
            );
            let to_model = 2000.0 / scaling.scale;
            let n = fit.mh;
            // Pad in HU with air so the padded ring is empty in attenuation.
            let hu_padded = fit.pad(&(hu + 1000.0)) - 1000.0;
            let host: Vec<f32> = crate::tensor::tensor_to_vec(&hu_padded);
            let pixel_mm = vol.spacing[0];
            let task = match setting {
                Setting::Views(v) => CtTask::SparseView { views: v },
                Setting::Wedge(w) => CtTask::LimitedAngle {
                    wedge_deg: w,
                    start_deg: 0.0,
                },
                Setting::Mar => CtTask::Mar {
                    threshold_hu: spec.metal_threshold,
                    dilation: 1,
                },
                Setting::Acceleration(_) => unreachable!(),
            };
            let sim_spec = CtSimulationSpec {
                task: task.clone(),
                full_views: spec.full_views,
                photons: spec.photons,
                seed: spec.seed,
                pixel_mm,
                filter: crate::ops::fbp::Filter::Ramp,
            };
            let mut cases = Vec::new();
            let per_slice = |k: usize| &host[k * n * n..(k + 1) * n * n];
            if spec.task == Task::Ct {
                // One operator for the whole batch: sparse-view and limited-angle masks do not
                // depend on the slice.
                let mut ys = Vec::new();
                let mut refs = Vec::new();
                let mut geometry = None;
                let mut mask = None;
                for k in 0..b as usize {
                    let sim = simulate::simulate_ct(
                        &CtSimulationSpec {
                            seed: spec.seed + k as u64,
                            ..sim_spec.clone()
                        },
                        per_slice(k),
                        n,
                        &[],
                    )?;
                    ys.extend_from_slice(&sim.sinogram);
                    refs.extend_from_slice(&sim.reference);
                    mask.get_or_insert(sim.mask.clone());
                    geometry.get_or_insert(sim.geometry.clone());
                }
                let g = geometry.expect("at least one slice");
                let (a, d) = (g.n_angles() as i64, g.n_det as i64);
                let op = MeasurementOperator::new(
                    Box::new(Radon::new(g)?),
                    Tensor::from_slice(&mask.unwrap()).reshape([1, 1, a, d]),
                )
                .to_device(device);
                let y =
                    (Tensor::from_slice(&ys).reshape([b, 1, a, d]) * to_model).to_device(device);
                let reference = (Tensor::from_slice(&refs).reshape([b, 1, n as i64, n as i64])
                    * to_model)
                    .to_device(device);
                cases.push(Case {
                    op,
                    y,
                    reference,
                    fbp_full: None,
                    metal: None,
                    noise_free: spec.photons.is_none(),
                });
            } else {
                // MAR: the metal trace, hence the operator, differs from slice to slice.
                for k in 0..b as usize {
                    let slice = per_slice(k);
                    let metal = if spec.insert_metal {
                        simulate::default_metal(slice, n, pixel_mm)?
                    } else {
                        metal_in_image(slice, spec.metal_threshold).with_context(|| {
                            format!("{}: slice {k}: no metal above {} HU; pass --insert-metal to simulate an implant", spec.input.display(), spec.metal_threshold)
                        })?
                    };
                    let sim = simulate::simulate_ct(
                        &CtSimulationSpec {
                            seed: spec.seed + k as u64,
                            ..sim_spec.clone()
                        },
                        slice,
                        n,
                        &metal,
                    )?;
                    let g = sim.geometry.clone();
                    let (a, d) = (g.n_angles() as i64, g.n_det as i64);
                    let radon = Radon::new(g)?;
                    // What the scanner shows: FBP of the whole metal-corrupted sinogram.
                    let fbp_full = (Tensor::from_slice(&sim.fbp)
                        .reshape([1, 1, n as i64, n as i64])
                        * to_model)
                        .to_device(device);
                    let mask = Tensor::from_slice(&sim.mask).reshape([1, 1, a, d]);
                    let op = MeasurementOperator::new(Box::new(radon), mask).to_device(device);
                    let y = (Tensor::from_slice(&sim.sinogram).reshape([1, 1, a, d]) * to_model)
                        .to_device(device);
                    // The reference is the metal-free slice when metal was inserted; else the
                    // input itself (its metal is excluded from the metrics either way).
                    let reference = (Tensor::from_slice(&sim.reference)
                        .reshape([1, 1, n as i64, n as i64])
                        * to_model)
                        .to_device(device);
                    let metal_mask = sim.metal_mask.as_ref().map(|m| {
                        Tensor::from_slice(m)
                            .reshape([1, 1, n as i64, n as i64])
                            .to_device(device)
                    });
                    cases.push(Case {
                        op,
                        y,
                        reference,
                        fbp_full: Some(fbp_full),
                        metal: metal_mask,
                        noise_free: false,
                    });
                }
            }
            Ok(cases)
        }
    }
}

/// Metal already in the image: every voxel above `threshold` HU, as one titanium object.
fn metal_in_image(hu: &[f32], threshold: f64) -> Option<Vec<MetalObject>> {
    let fraction: Vec<f32> = hu
        .iter()
        .map(|&v| if f64::from(v) > threshold { 1.0 } else { 0.0 })
        .collect();
    fraction.iter().any(|&f| f > 0.0).then(|| {
        vec![MetalObject {
            material: Material::Titanium,
            density_g_cm3: Material::Titanium.density(),
            fraction,
        }]
    })
}

/// A reconstruction method's output for one case, model space, model size.
struct Recon {
    x: Tensor,
    std: Option<Tensor>,
    seconds: f64,
}

fn sampler_options(spec: &JobSpec, noise_free: bool) -> Result<SamplerOptions> {
    use clap::ValueEnum;
    let kind = SamplerKind::from_str(&spec.sampler, true).map_err(|_| {
        anyhow::anyhow!(
            "--sampler {}: expected pc, ald, langevin, score-sde, ode or euler-maruyama",
            spec.sampler
        )
    })?;
    Ok(SamplerOptions {
        sampler: kind,
        steps: spec.steps,
        corrector_steps: spec.corrector_steps,
        snr: spec.snr,
        lambda: spec.lambda,
        seed: spec.seed,
        samples: spec.samples,
        batch: spec.batch_size,
        noise_free_measurement: noise_free,
        progress: !spec.quiet,
        ..Default::default()
    })
}

/// Every requested baseline, then the score-based posterior mean (and std with several samples),
/// for one case. The TV weight is asked of `tv_weight` only when a TV baseline first needs it,
/// then kept in `tv` for the job's later cases.
fn reconstruct_case(
    spec: &JobSpec,
    model: &dyn ScoreModel,
    case: &Case,
    tv: &mut Option<(f64, f64)>,
    mut tv_weight: impl FnMut() -> Result<(f64, f64)>,
) -> Result<Vec<(String, Recon)>> {
    let mut recons = Vec::new();
    for name in &spec.baselines {
        let w = if name == "fista_tv" || name == "tv" {
            if tv.is_none() {
                *tv = Some(tv_weight()?);
            }
            *tv
        } else {
            None
        };
        recons.push((
            name.clone(),
            run_baseline(name, case, w).with_context(|| format!("baseline {name}"))?,
        ));
    }
    let t0 = Instant::now();
    let posterior = sampler::reconstruct(
        model,
        &case.op,
        &case.y,
        &sampler_options(spec, case.noise_free)?,
    )?;
    recons.push((
        "score".into(),
        Recon {
            x: posterior.mean,
            std: (spec.samples > 1).then_some(posterior.std),
            seconds: t0.elapsed().as_secs_f64(),
        },
    ));
    Ok(recons)
}

/// Run the baseline `name` on a case.
fn run_baseline(name: &str, case: &Case, tv_weight: Option<(f64, f64)>) -> Result<Recon> {
    let t0 = Instant::now();
    let x = match (name, &case.fbp_full) {
        ("fbp", Some(full)) => full.shallow_clone(),
        _ => {
            let mut b = Baseline::parse(name)?;
            if let (Baseline::FistaTv(o) | Baseline::Tv(o), Some((w, l))) = (&mut b, tv_weight) {
                *o = FistaTv {
                    weight: Some(w),
                    lipschitz: Some(l),
                    ..*o
                };
            }
            b.reconstruct(&case.op, &case.y)?
        }
    };
    Ok(Recon {
        x,
        std: None,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The TV weight for this case's operator: `relative * ||A||^2 * data_range`, the relative
/// weight either given (`tv_weight`) or tuned on the validation case by maximising SSIM
/// (`classic::tune_tv_weight`, the rule that tuned the sampler's lambda and snr).
fn tv_weight_for(
    spec: &JobSpec,
    op: &MeasurementOperator,
    range: f64,
    validation: Option<&Case>,
    notes: &mut Vec<String>,
) -> Result<(f64, f64)> {
    let lipschitz = 1.01 * crate::ops::norm::lipschitz(op);
    if let Some(rel) = spec.tv_weight {
        return Ok((rel * lipschitz * range, lipschitz));
    }
    match validation {
        Some(v) => {
            let vr = metrics::value_range(&v.reference);
            let base = FistaTv {
                lipschitz: Some(lipschitz),
                ..Default::default()
            };
            let t = crate::classic::tune_tv_weight(
                &v.op,
                &v.y,
                &v.reference,
                vr,
                &crate::classic::RELATIVE_TV_GRID,
                &base,
            )?;
            let rel = t.weight / (lipschitz * vr);
            notes.push(format!("TV weight tuned on a validation slice (not reconstructed here) by maximising SSIM: relative weight {rel:.2e}."));
            Ok((rel * lipschitz * range, lipschitz))
        }
        None => {
            let rel = DEFAULT_RELATIVE_TV;
            notes.push(format!("No validation slice (single-slice input) and no tv_weight given: TV used the default relative weight {rel:.0e}."));
            Ok((rel * lipschitz * range, lipschitz))
        }
    }
}

/// Relative TV weight when nothing else decides it (the middle of `classic::RELATIVE_TV_GRID`).
pub const DEFAULT_RELATIVE_TV: f64 = 1e-3;

/// A slice for tuning, away from the reconstructed ones (>= 8 slices from each), the nearest to
/// the first reconstructed slice; None when the volume has no such slice.
fn validation_slice(vol: &Volume, ks: &[usize]) -> Option<usize> {
    let far = |k: usize| ks.iter().all(|&s| (s as i64 - k as i64).abs() >= 8);
    let k0 = ks[0] as i64;
    (0..vol.nz())
        .filter(|&k| far(k))
        .min_by_key(|&k| (k as i64 - k0).abs())
}

/// Everything a job produced for one method, over all its slices (model space, input size).
#[derive(Default)]
struct MethodOut {
    x: Vec<Tensor>,
    std: Vec<Tensor>,
    seconds: f64,
    psnr: Vec<f64>,
    ssim: Vec<f64>,
    nrmse: Vec<f64>,
    residual: Vec<f64>,
}

/// Read, measure, reconstruct, assess and write one job into `dir` (a staging folder).
pub fn run_job(spec: &JobSpec, dir: &Path) -> Result<JobReport> {
    spec.validate()?;
    let device = parse_device(&spec.device)?;
    let model = load_model(spec, device)?;
    if measured::is_measurement(&spec.input) {
        return measured::run_job(spec, model.as_ref(), device, dir);
    }
    let mut vol = io::read_volume(
        &spec.input,
        &ReadOptions {
            series_uid: spec.series.clone(),
        },
    )
    .with_context(|| format!("{}: cannot read the input", spec.input.display()))?;
    check_modality(spec, &vol)?;
    if vol.modality == Modality::Other {
        // NIfTI does not say; the task does.
        vol.modality = if spec.task == Task::Mri {
            Modality::Mr
        } else {
            Modality::Ct
        };
    }
    if vol.nt() > 1 {
        bail!(
            "{}: a 4-D volume ({} frames); reconstruct one frame at a time",
            spec.input.display(),
            vol.nt()
        );
    }
    let ks = choose_slices(spec, &vol)?;
    // Scaled before any averaging down, as the training data were (MR: the volume's percentile).
    let scaling = model.normalisation().fit(&vol.data).with_context(|| {
        format!(
            "{}: scaling to the prior's model space",
            spec.input.display()
        )
    })?;
    let averaged = resample_factor(spec, &vol, model.image_size());
    if averaged > 1 {
        vol = vol.average_down(averaged);
    }
    let fit = Fit::new(
        vol.ny(),
        vol.nx(),
        model.image_size(),
        &spec.fit,
        &spec.input,
    )?;
    let hu = slices(&vol, &ks)?;
    let val_k = validation_slice(&vol, &ks);

    let mut report = JobReport::new(
        &format!("scorerecon {}", spec.task.name()),
        spec.task.name(),
        &spec.input.display().to_string(),
        serde_json::to_value(spec)?,
    );
    report.has_reference = true;
    report.notes.push(format!("Prior: {}.", model.describe()));
    if spec.model.starts_with("knn:") || spec.model.starts_with("empirical:") {
        report.notes.push("The nearest-neighbour prior can memorise its reference images; the report gives each reconstruction's distance to the nearest reference image.".into());
    }
    if averaged > 1 {
        report.notes.push(format!(
            "--fit resample: slices were averaged down {averaged}x in-plane to {}x{} (as the prior's \
             training data were); the reference and every output are on that grid.",
            fit.w, fit.h
        ));
    }
    if fit.h != fit.mh || fit.w != fit.mw {
        report.notes.push(format!(
            "Slices ({}x{}) were zero-padded to the prior's {}x{} and cropped back.",
            fit.w, fit.h, fit.mw, fit.mh
        ));
    }
    let settings = settings_of(spec);
    if settings.len() > 1 {
        report.sweep_parameter = Some(match spec.task {
            Task::Mri => "acceleration".into(),
            _ => "views".into(),
        });
    }

    let mut first: Option<(
        Setting,
        BTreeMap<String, MethodOut>,
        Vec<Tensor>,
        Vec<Option<Tensor>>,
    )> = None;
    for setting in settings.iter().copied() {
        let cases = measure(spec, setting, &hu, &vol, &fit, &scaling, device)?;
        let validation = match val_k {
            Some(k)
                if spec.tv_weight.is_none()
                    && spec.baselines.iter().any(|b| b == "fista_tv" || b == "tv") =>
            {
                measure(
                    spec,
                    setting,
                    &slices(&vol, &[k])?,
                    &vol,
                    &fit,
                    &scaling,
                    device,
                )?
                .into_iter()
                .next()
            }
            _ => None,
        };
        let mut methods: BTreeMap<String, MethodOut> = BTreeMap::new();
        let mut refs = Vec::new();
        let mut metal = Vec::new();
        let mut tv: Option<(f64, f64)> = None;
        for case in &cases {
            let range = match &case.metal {
                Some(m) => metrics::value_range_outside(&case.reference, m),
                None => metrics::value_range(&case.reference),
            };
            let roi = match &case.metal {
                Some(m) => Some(
                    Roi::from_mask(&fit.crop(&case.reference).ones_like())?
                        .exclude(&fit.crop(m))?,
                ),
                None => None,
            };
            let recons = reconstruct_case(spec, model.as_ref(), case, &mut tv, || {
                tv_weight_for(
                    spec,
                    &case.op,
                    range,
                    validation.as_ref(),
                    &mut report.notes,
                )
            })?;
            for (name, r) in recons {
                let x = r.x.to_kind(Kind::Float);
                // Metrics over the input's own extent (padding cropped), metal excluded for MAR.
                let roi = roi.as_ref();
                let scores =
                    metrics::assess(&fit.crop(&x), &fit.crop(&case.reference), range, roi)?;
                let m = methods.entry(name).or_default();
                m.seconds += r.seconds;
                m.residual.extend(case.op.residual(&x, &case.y));
                for s in scores {
                    m.psnr.push(s.psnr);
                    m.ssim.push(s.ssim);
                    m.nrmse.push(s.nrmse);
                }
                m.x.push(fit.crop(&x).to_device(Device::Cpu));
                if let Some(s) = r.std {
                    m.std.push(fit.crop(&s).to_device(Device::Cpu));
                }
            }
            refs.push(fit.crop(&case.reference).to_device(Device::Cpu));
            metal.push(
                case.metal
                    .as_ref()
                    .map(|m| fit.crop(m).to_device(Device::Cpu)),
            );
        }
        for (name, m) in &methods {
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            report.sweep.push(SweepPoint {
                x: setting.x(),
                method: name.clone(),
                psnr: mean(&m.psnr),
                ssim: mean(&m.ssim),
            });
        }
        if first.is_none() {
            first = Some((setting, methods, refs, metal));
        }
    }
    if settings.len() < 2 {
        report.sweep.clear();
    }

    let (setting, methods, refs, metal) = first.expect("at least one setting");
    report.notes.insert(
        0,
        format!(
            "Measurement: {} ({} slice(s): {:?}).",
            setting.label(),
            ks.len(),
            ks
        ),
    );
    for (name, m) in &methods {
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        report.methods.insert(
            name.clone(),
            MethodMetrics {
                psnr: mean(&m.psnr),
                ssim: mean(&m.ssim),
                nrmse: mean(&m.nrmse),
                seconds: m.seconds,
                residual: mean(&m.residual),
                psnr_per_slice: m.psnr.clone(),
                ssim_per_slice: m.ssim.clone(),
            },
        );
    }
    write_outputs(
        spec,
        &vol,
        &ks,
        &scaling,
        &methods,
        Some(&refs),
        &metal,
        dir,
        &mut report,
    )?;
    std::fs::write(dir.join("metrics.json"), report.to_json())?;
    std::fs::write(dir.join("report.html"), html::render_job(&report, dir))?;
    Ok(report)
}

/// Volumes (NIfTI + DICOM series) per method, PNG panels per slice.
#[allow(clippy::too_many_arguments)]
fn write_outputs(
    spec: &JobSpec,
    vol: &Volume,
    ks: &[usize],
    scaling: &Scaling,
    methods: &BTreeMap<String, MethodOut>,
    refs: Option<&[Tensor]>,
    metal: &[Option<Tensor>],
    dir: &Path,
    report: &mut JobReport,
) -> Result<()> {
    let sel = vol.select_slices(ks);
    let to_volume = |parts: &[Tensor], physical: bool| -> Volume {
        let x = Tensor::cat(parts, 0);
        let x = if physical {
            scaling.from_model_tensor(&x)
        } else {
            x * scaling.scale
        };
        sel.with_data(crate::tensor::tensor_to_vec(&x))
    };
    let describe =
        |name: &str| format!("scorerecon {} {} ({})", spec.task.name(), name, spec.model);
    for (name, m) in methods {
        let v = to_volume(&m.x, true);
        let opts = WriteOptions {
            force: true,
            series_description: Some(describe(name)),
            derivation_description: Some(format!(
                "scorerecon {} reconstruction, method {name}; settings in metrics.json",
                crate::version()
            )),
            ..Default::default()
        };
        io::write_volume_with(
            &v,
            &dir.join(format!("{name}.nii.gz")),
            &WriteOptions {
                format: Some(Format::Nifti),
                ..opts.clone()
            },
        )?;
        io::write_volume_with(
            &v,
            &dir.join(format!("{name}_dicom")),
            &WriteOptions {
                format: Some(Format::Dicom),
                ..opts.clone()
            },
        )?;
        if !m.std.is_empty() {
            let s = to_volume(&m.std, false);
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
    let reference = refs.map(|r| to_volume(r, true));
    if let Some(reference) = &reference {
        write_nifti(
            reference,
            &dir.join("reference.nii.gz"),
            "scorerecon reference",
        )?;
    }

    // MAR: the metal left out of the metrics (and of their data range), for the record.
    let masks: Vec<Tensor> = metal.iter().flatten().map(|m| m.shallow_clone()).collect();
    if !masks.is_empty() && masks.len() == metal.len() {
        let m = sel.with_data(crate::tensor::tensor_to_vec(&Tensor::cat(&masks, 0)));
        write_nifti(
            &m,
            &dir.join("metal_mask.nii.gz"),
            "scorerecon metal mask (excluded from metrics)",
        )?;
    }

    // Panels: reference | baselines | score | |error of score| | posterior std (the reference
    // and the error only when there is a reference).
    let window = match (spec.task, &reference) {
        (Task::Mri, Some(r)) => WindowPreset::Auto.resolve(&r.data, Modality::Mr),
        (Task::Mri, None) => {
            let score = to_volume(&methods["score"].x, true);
            WindowPreset::Auto.resolve(&score.data, Modality::Mr)
        }
        _ => WindowPreset::SoftTissue.resolve(&[], Modality::Ct),
    };
    let order: Vec<&str> = spec
        .baselines
        .iter()
        .map(String::as_str)
        .filter(|b| methods.contains_key(*b))
        .chain(["score"])
        .collect();
    let (h, w) = (vol.ny(), vol.nx());
    for (i, &k) in ks.iter().enumerate() {
        // `t` is already one slice (`nth_slice`), `[1, 1, h, w]`.
        let slice_of = |t: &Tensor| crate::tensor::tensor_to_vec(&scaling.from_model_tensor(t));
        let r = refs.map(|refs| slice_of(&nth_slice(refs, i)));
        let mut tiles = Vec::new();
        let mut captions = Vec::new();
        if let Some(r) = &r {
            tiles.push(panels::Tile {
                label: "reference".into(),
                width: w,
                height: h,
                pixels: io::png::window_to_u8(r, window),
            });
            captions.push("reference".to_string());
        }
        for &name in &order {
            let Some(m) = methods.get(name) else { continue };
            let x = slice_of(&nth_slice(&m.x, i));
            tiles.push(panels::Tile {
                label: name.into(),
                width: w,
                height: h,
                pixels: io::png::window_to_u8(&x, window),
            });
            let p = m
                .psnr
                .get(i)
                .map(|p| format!(" {p:.2} dB"))
                .unwrap_or_default();
            captions.push(format!("{name}{p}"));
        }
        if let Some(m) = methods.get("score") {
            if let Some(r) = &r {
                let x = slice_of(&nth_slice(&m.x, i));
                let mut err: Vec<f32> = x.iter().zip(r).map(|(a, b)| (a - b).abs()).collect();
                if let Some(Some(mm)) = metal.get(i) {
                    let mm = crate::tensor::tensor_to_vec(mm);
                    for (e, m) in err.iter_mut().zip(mm) {
                        if m > 0.5 {
                            *e = 0.0;
                        }
                    }
                }
                let (tile, top) = magnitude_tile("|error|", &err, w, h);
                tiles.push(tile);
                captions.push(format!("|score - reference| (0 to {top:.0})"));
            }
            if !m.std.is_empty() {
                let s: Vec<f32> =
                    crate::tensor::tensor_to_vec(&(nth_slice(&m.std, i) * scaling.scale));
                let (tile, top) = magnitude_tile("std", &s, w, h);
                tiles.push(tile);
                captions.push(format!(
                    "posterior std over {} samples (0 to {top:.0})",
                    spec.samples
                ));
            }
        }
        let (pw, ph, px) = panels::row(&tiles);
        let file = format!("panel_slice{k:03}.png");
        io::png::write_png_gray(&dir.join(&file), pw, ph, &px, true)?;
        report.panels.push(Panel {
            file,
            caption: format!("Slice {k}: {}", captions.join(" | ")),
        });
    }
    Ok(())
}

/// A NIfTI file in the job's staging folder (which `atomic::write_dir` moves into place whole).
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

/// A tile of a non-negative map (|error|, std) shown from 0 to its 99.5th percentile, which is
/// returned for the caption.
fn magnitude_tile(label: &str, values: &[f32], w: usize, h: usize) -> (panels::Tile, f64) {
    let p = io::png::percentile_window(values, 0.0, 99.5);
    let top = (p.center + p.width / 2.0).max(1e-6);
    let window = io::png::Window {
        center: top / 2.0,
        width: top,
    };
    let tile = panels::Tile {
        label: label.into(),
        width: w,
        height: h,
        pixels: io::png::window_to_u8(values, window),
    };
    (tile, top)
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
