//! **Measure**: the operator `A = P(Lambda) T` and the measurement `y` of each case, in the
//! prior's model space: simulated from an image input (through `crate::simulate`, the physics
//! the `simulate` command uses), or taken from a measurement file.

use super::input::{ImageInput, KspaceInput, Padding};
use crate::io::kspace::RawKspace;
use crate::io::measurement::{Measurement, MeasurementModality};
use crate::job::{JobSpec, Task};
use crate::metrics;
use crate::ops::ct::{fan, Geometry, Radon};
use crate::ops::mri::{espirit, MriFft, Sense};
use crate::ops::{MeasurementOperator, Transform};
use crate::prior::{Normalisation, Scaling, ScoreModel};
use crate::simulate::metal::{default_metal, metal_in_image};
use crate::simulate::mri::{measure_kspace, measure_multicoil, MriSimulationSpec};
use crate::simulate::{self, CtSimulationSpec, CtTask};
use crate::volume::{Modality, Volume};
use anyhow::{bail, ensure, Context, Result};
use tch::{Device, Tensor};

/// The multi-coil operator of measured k-space `[B, C, H, W]` under `mask` (`[1, 1, H, W]`):
/// the SENSE transform with ESPIRiT maps from each slice's own calibration region (the fully
/// sampled centre columns of the mask) and the smooth phase of its low-resolution image folded
/// into the maps, so the image is real and the magnitude prior applies (docs/operators-mri.md,
/// "Complex images and the magnitude prior"). Only the data are used: no simulation truth.
pub fn coil_operator(kspace: &Tensor, mask: &Tensor) -> Result<(MeasurementOperator, Tensor)> {
    let size = kspace.size();
    ensure!(
        size.len() == 4,
        "multi-coil k-space: expected [B, C, H, W], got {size:?}"
    );
    let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
    // The centre row crosses the calibration region of 1-D column masks and of 2-D masks alike.
    let centre_row: Vec<bool> =
        crate::tensor::tensor_to_vec(&mask.reshape([h, w]).get(h / 2).to_device(Device::Cpu))
            .iter()
            .map(|&v| v > 0.5)
            .collect();
    let opts = espirit::EspiritOptions::default();
    // At least three kernel positions across the calibration region: fewer leave ESPIRiT's
    // calibration matrix too few rows to find the coils' null space.
    let min_calib = opts.kernel + 2;
    let width = espirit::calibration_width(&centre_row);
    ensure!(
        width >= min_calib,
        "multi-coil k-space: the mask's fully sampled centre is {width} column(s) wide; ESPIRiT's \
         {k}x{k} kernels need at least {min_calib} (raise --center-fraction)",
        k = opts.kernel
    );
    let calib = opts.calib;
    let mut maps = Vec::with_capacity(b as usize);
    let mut phases = Vec::with_capacity(b as usize);
    for k in 0..b {
        let slice = kspace.get(k);
        // One coil has no sensitivity to estimate: its map is 1 and only the phase remains.
        let m = if c == 1 {
            Tensor::ones([1, h, w], (tch::Kind::ComplexFloat, kspace.device()))
        } else {
            // ESPIRiT can fail where the simpler estimate does not (a calibration matrix with no
            // kernel above the threshold, a singular eigenproblem): fall back, and say so.
            match espirit::espirit(&slice, &opts) {
                Ok(e) => e.maps,
                Err(e) => {
                    crate::io::warn(&format!(
                        "ESPIRiT failed ({e:#}); low-resolution coil maps used instead"
                    ));
                    espirit::lowres_maps(&slice, calib)?
                }
            }
        };
        phases.push(espirit::calibration_phase(&slice, &m, calib)?);
        maps.push(m);
    }
    let maps = Tensor::stack(&maps, 0);
    let phase = Tensor::cat(&phases, 0);
    let sense = Sense::with_phase(maps.shallow_clone(), &phase)?;
    let op = MeasurementOperator::new(Box::new(sense), mask.to_device(Device::Cpu))
        .to_device(kspace.device());
    Ok((op, maps))
}

/// The value of the swept parameter a measurement uses.
#[derive(Clone, Copy, Debug)]
pub enum Setting {
    Views(usize),
    Wedge(f64),
    Acceleration(f64),
    Mar,
    /// What a measurement file holds.
    File,
}

impl Setting {
    pub fn x(&self) -> f64 {
        match *self {
            Setting::Views(v) => v as f64,
            Setting::Wedge(w) => w,
            Setting::Acceleration(r) => r,
            Setting::Mar | Setting::File => 0.0,
        }
    }

    pub fn label(&self) -> String {
        match *self {
            Setting::Views(v) => format!("{v} views"),
            Setting::Wedge(w) => format!("{w} degree wedge"),
            Setting::Acceleration(r) => format!("{r}x"),
            Setting::Mar => "metal trace removed".into(),
            Setting::File => "the measurement file's".into(),
        }
    }
}

/// The settings an image job sweeps over (one unless `views` / `acceleration` list several).
pub fn settings_of(spec: &JobSpec) -> Vec<Setting> {
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

/// The measurement of a batch of slices under one operator.
pub struct Case {
    pub op: MeasurementOperator,
    /// Zero-filled measurement in model space, `[B, 1, m0, m1]`.
    pub y: Tensor,
    /// The image measured, model space, `[B, 1, H, W]` (model size); None for a measurement file.
    pub reference: Option<Tensor>,
    /// MAR: FBP of the whole metal-corrupted sinogram (what a scanner shows): the `fbp` baseline.
    pub fbp_full: Option<Tensor>,
    /// MAR: the metal, excluded from the metrics, `[B, 1, H, W]`.
    pub metal: Option<Tensor>,
    /// Whether `y` is exact (then the sampler ends with an exact projection onto `A x = y`).
    pub noise_free: bool,
    /// The standard deviation of the measurement noise in model units, when known (simulated
    /// noise): the samplers' likelihood and DDS's data weight use it.
    pub noise_sigma: Option<f64>,
    /// Multi-coil MRI: the coil maps the operator estimated, `[B, C, H, W]` complex (written out
    /// for inspection).
    pub coil_maps: Option<Tensor>,
}

impl Case {
    /// The data range of the TV weight, over the whole batch: the reference's (metal excluded),
    /// or without a reference that of the direct inverse (FBP / zero-filled). (The metrics use
    /// each slice's own range: `metrics::value_range_per_image`.)
    pub fn data_range(&self) -> f64 {
        match (&self.reference, &self.metal) {
            (Some(r), Some(m)) => metrics::value_range_outside(r, m),
            (Some(r), None) => metrics::value_range(r),
            (None, _) => {
                metrics::value_range(&self.op.transform.inverse_masked(&self.y, &self.op.mask))
            }
        }
    }
}

/// Simulate the measurement of slices `hu` (scanner values, `[B,1,h,w]`) of `image` under
/// `setting`.
pub fn simulate_cases(
    spec: &JobSpec,
    setting: Setting,
    hu: &Tensor,
    image: &ImageInput,
    device: Device,
) -> Result<Vec<Case>> {
    let (fit, scaling) = (&image.padding, &image.scaling);
    let b = hu.size()[0];
    match spec.task {
        Task::Mri => {
            let Setting::Acceleration(r) = setting else {
                unreachable!("MRI settings are accelerations")
            };
            let reference = fit.pad(&scaling.to_model_tensor(hu)).to_device(device);
            if spec.coils > 1 {
                let sim_spec = MriSimulationSpec {
                    mask: spec.mask_spec(r),
                    snr_db: spec.snr_db,
                    seed: spec.seed,
                };
                let sim = measure_multicoil(&sim_spec, spec.coils, &reference)?;
                // One case per slice: each slice has its own coil maps, hence its own operator
                // (as MAR's metal trace), and the samplers split and repeat a case's batch.
                let mut cases = Vec::with_capacity(b as usize);
                for k in 0..b {
                    let y = sim.kspace.narrow(0, k, 1);
                    let (op, maps) = coil_operator(&y, &sim.mask)?;
                    cases.push(Case {
                        op,
                        y,
                        reference: Some(reference.narrow(0, k, 1)),
                        fbp_full: None,
                        metal: None,
                        // The operator is estimated from the data (maps, phase), so even
                        // noise-free k-space is not exactly `A x` for a real `x`: no final hard
                        // projection and no 1e-2 residual bound (metrics.json's residual shows
                        // the mismatch).
                        noise_free: false,
                        noise_sigma: spec.snr_db.map(|_| sim.sigma),
                        coil_maps: Some(maps),
                    });
                }
                return Ok(cases);
            }
            let (op, y, sigma) = measure_kspace(
                &MriSimulationSpec {
                    mask: spec.mask_spec(r),
                    snr_db: spec.snr_db,
                    seed: spec.seed,
                },
                &reference,
            )?;
            Ok(vec![Case {
                op,
                y,
                reference: Some(reference),
                fbp_full: None,
                metal: None,
                noise_free: spec.snr_db.is_none(),
                noise_sigma: spec.snr_db.map(|_| sigma),
                coil_maps: None,
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
            let to_model = ct_to_model(scaling)?;
            let n = fit.mh;
            // Pad in HU with air so the padded ring is empty in attenuation.
            let hu_padded = fit.pad(&(hu + 1000.0)) - 1000.0;
            let host: Vec<f32> = crate::tensor::tensor_to_vec(&hu_padded);
            let pixel_mm = image.vol.spacing[0];
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
                Setting::Acceleration(_) | Setting::File => unreachable!("CT settings"),
            };
            let sim_spec = CtSimulationSpec {
                task,
                full_views: spec.full_views,
                photons: spec.photons,
                seed: spec.seed,
                pixel_mm,
                filter: crate::ops::ct::fbp::Filter::Ramp,
                fan: spec.fan_spec(),
            };
            let per_slice = |k: usize| &host[k * n * n..(k + 1) * n * n];
            let image_tensor = |v: &[f32], b: i64| {
                (Tensor::from_slice(v).reshape([b, 1, n as i64, n as i64]) * to_model)
                    .to_device(device)
            };
            let mut cases = Vec::new();
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
                let mask = mask.expect("at least one slice");
                // The noise of the measured bins, in model units (of the fan-beam data: rebinning
                // interpolates, which changes it little).
                let noise_sigma = spec.photons.map(|i0| {
                    let masks = mask.repeat(b as usize);
                    let to_dimensionless = 2.0 * crate::ops::ct::hu::MU_WATER_PER_MM * pixel_mm;
                    simulate::poisson_sigma(&ys, &masks, to_dimensionless, i0) * to_model
                });
                let (g, ys, mask) = rebinned(spec, g, ys, mask, b as usize)?;
                let (a, d) = (g.n_angles() as i64, g.n_det as i64);
                let op = MeasurementOperator::new(
                    Box::new(Radon::new(g)?),
                    Tensor::from_slice(&mask).reshape([1, 1, a, d]),
                )
                .to_device(device);
                let y =
                    (Tensor::from_slice(&ys).reshape([b, 1, a, d]) * to_model).to_device(device);
                cases.push(Case {
                    op,
                    y,
                    reference: Some(image_tensor(&refs, b)),
                    fbp_full: None,
                    metal: None,
                    // Rebinned data are interpolated: not exact measurements of the parallel `A`.
                    noise_free: spec.photons.is_none() && !spec.rebin,
                    noise_sigma,
                    coil_maps: None,
                });
            } else {
                // MAR: the metal trace, hence the operator, differs from slice to slice.
                for k in 0..b as usize {
                    let slice = per_slice(k);
                    let metal = if spec.insert_metal {
                        default_metal(slice, n, pixel_mm)?
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
                    let (g, sinogram, mask) = rebinned(
                        spec,
                        sim.geometry.clone(),
                        sim.sinogram.clone(),
                        sim.mask.clone(),
                        1,
                    )?;
                    let (a, d) = (g.n_angles() as i64, g.n_det as i64);
                    let radon = Radon::new(g)?;
                    let mask = Tensor::from_slice(&mask).reshape([1, 1, a, d]);
                    let op = MeasurementOperator::new(Box::new(radon), mask).to_device(device);
                    let y = (Tensor::from_slice(&sinogram).reshape([1, 1, a, d]) * to_model)
                        .to_device(device);
                    let metal_mask = sim.metal_mask.as_ref().map(|m| {
                        Tensor::from_slice(m)
                            .reshape([1, 1, n as i64, n as i64])
                            .to_device(device)
                    });
                    cases.push(Case {
                        op,
                        y,
                        // The reference is the metal-free slice when metal was inserted; else
                        // the input itself (its metal is excluded from the metrics either way).
                        reference: Some(image_tensor(&sim.reference, 1)),
                        // What the scanner shows: FBP of the whole metal-corrupted sinogram.
                        fbp_full: Some(image_tensor(&sim.fbp, 1)),
                        metal: metal_mask,
                        noise_free: false,
                        // The polychromatic scan's error is systematic, not a known noise level.
                        noise_sigma: None,
                        coil_maps: None,
                    });
                }
            }
            Ok(cases)
        }
    }
}

/// The factor from scorerecon's CT simulation scale (`ops::ct::hu`: `(HU + 1000) / 2000`, the
/// scale of measurement files too) to the prior's `(HU + 1000) / (hu_max + 1000)`: both put air
/// at zero, so they differ by a constant factor, and so (linear measurement) do the sinograms.
fn ct_to_model(scaling: &Scaling) -> Result<f64> {
    ensure!(
        scaling.offset == -1000.0,
        "the CT prior maps HU {} to zero; scorerecon's CT simulation and measurement files need air (-1000 HU) at zero",
        scaling.offset
    );
    Ok(2000.0 / scaling.scale)
}

/// A measurement file's cases (one per slice: a MAR trace differs from slice to slice), the
/// scaling from model space to the output's units, and an empty volume with the output's
/// geometry; `notes` get what the file says.
pub fn file_cases(
    spec: &JobSpec,
    m: &Measurement,
    model: &dyn ScoreModel,
    device: Device,
    notes: &mut Vec<String>,
) -> Result<(Vec<Case>, Scaling, Volume)> {
    match m.meta.modality {
        MeasurementModality::Ct => ct_file_cases(spec, m, model, device, notes),
        MeasurementModality::Mri => mri_file_cases(spec, m, model, device, notes),
    }
}

fn ct_file_cases(
    spec: &JobSpec,
    m: &Measurement,
    model: &dyn ScoreModel,
    device: Device,
    notes: &mut Vec<String>,
) -> Result<(Vec<Case>, Scaling, Volume)> {
    let ct = m
        .meta
        .ct
        .as_ref()
        .expect("checked on reading: a CT measurement");
    let scaling = model.normalisation().fit(&[0.0])?;
    // The file's line integrals are of (HU + 1000) / 2000 (docs/formats.md).
    let to_model = ct_to_model(&scaling)?;
    let [s, a, d] = m.meta.shape;
    let n = ct.geometry.image_size;
    let per = a * d;
    notes.push(format!("CT task: {:?}.", ct.task));
    let mut cases = Vec::with_capacity(s);
    for k in 0..s {
        let (g, data, mask) = rebinned(
            spec,
            ct.geometry.clone(),
            m.data[k * per..(k + 1) * per].to_vec(),
            m.mask[k * per..(k + 1) * per].to_vec(),
            1,
        )?;
        let (a, d) = (g.n_angles() as i64, g.n_det as i64);
        let mask = Tensor::from_slice(&mask).reshape([1, 1, a, d]);
        let op = MeasurementOperator::new(Box::new(Radon::new(g)?), mask).to_device(device);
        let y = (Tensor::from_slice(&data).reshape([1, 1, a, d]) * to_model).to_device(device);
        cases.push(Case {
            reference: None,
            op,
            y,
            fbp_full: None,
            metal: None,
            noise_free: ct.photons.is_none()
                && !matches!(ct.task, CtTask::Mar { .. })
                && !spec.rebin,
            noise_sigma: None,
            coil_maps: None,
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
fn mri_file_cases(
    spec: &JobSpec,
    m: &Measurement,
    model: &dyn ScoreModel,
    device: Device,
    notes: &mut Vec<String>,
) -> Result<(Vec<Case>, Scaling, Volume)> {
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
            notes.push(format!(
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
            notes.push(format!(
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
    notes.push(format!(
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
            reference: None,
            op,
            y,
            fbp_full: None,
            metal: None,
            noise_free,
            noise_sigma: None,
            coil_maps: None,
        });
    }
    let [dy, dx] = mri.pixel_spacing_mm.unwrap_or([1.0, 1.0]);
    if mri.pixel_spacing_mm.is_none() {
        notes.push("The sidecar gives no pixel spacing; the outputs say 1 mm.".into());
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

/// `--rebin`: a fan-beam geometry, its `b` sinograms and their shared mask rebinned to parallel
/// beam (`fan::rebin_to_parallel_masked`, at the fan scan's angular step), so the parallel-beam
/// operator, baselines and samplers run on them unchanged; as given otherwise.
fn rebinned(
    spec: &JobSpec,
    geometry: Geometry,
    sinograms: Vec<f32>,
    mask: Vec<f32>,
    b: usize,
) -> Result<(Geometry, Vec<f32>, Vec<f32>)> {
    if !spec.rebin {
        return Ok((geometry, sinograms, mask));
    }
    ensure!(
        geometry.fan.is_some(),
        "{}: --rebin turns fan-beam data into parallel beam; these data are parallel beam already",
        spec.input.display()
    );
    let (g, sinograms, mask) = fan::rebin_to_parallel_masked(
        &geometry,
        &sinograms,
        Some(&mask),
        b,
        fan::rebin_views(&geometry),
    )
    .with_context(|| format!("{}: --rebin", spec.input.display()))?;
    ensure!(
        mask.contains(&1.0),
        "{}: --rebin: no parallel-beam bin is covered by measured fan-beam samples",
        spec.input.display()
    );
    Ok((g, sinograms, mask))
}

/// What `--rebin` did, for the report: the parallel grid and how much of it is measured.
pub fn rebin_note(case: &Case) -> String {
    let [a, d] = case.op.transform.measurement_shape();
    let measured = case.op.mask.mean(tch::Kind::Float).double_value(&[]);
    format!(
        "Rebinned to parallel beam (--rebin): the fan-beam sinogram and its mask were \
         interpolated onto {a} parallel angles over [0, 180) x {d} bins ({:.1} % of the bins \
         measured); the parallel-beam operator, baselines and sampler ran on the rebinned data.",
        100.0 * measured
    )
}

/// No padding on a measurement file's grid.
pub fn file_padding(cases: &[Case]) -> Padding {
    let [h, w] = cases
        .first()
        .map(|c| c.op.transform.image_shape())
        .unwrap_or([1, 1]);
    Padding::none(h as usize, w as usize)
}

/// Slices `ks` of a raw k-space file as a `[B, C, H, W]` complex64 tensor on the CPU.
fn kspace_tensor(raw: &RawKspace, ks: &[usize]) -> Tensor {
    let &[_, c, h, w] = raw.kspace.shape() else {
        unreachable!("RawKspace holds [slices, coils, rows, cols]")
    };
    let per = c * h * w;
    let mut interleaved = Vec::with_capacity(2 * per * ks.len());
    for &k in ks {
        let slice = raw.kspace.index_axis(ndarray::Axis(0), k);
        interleaved.extend(slice.iter().flat_map(|z| [z.re, z.im]));
    }
    Tensor::from_slice(&interleaved)
        .reshape([ks.len() as i64, c as i64, h as i64, w as i64, 2])
        .view_as_complex()
}

/// How a raw k-space file is measured: with its own mask (undersampled) or a retrospective one
/// (fully sampled, which then gives the reference).
pub fn kspace_settings(spec: &JobSpec, input: &KspaceInput) -> Vec<Setting> {
    if input.raw.mask.is_some() {
        vec![Setting::File]
    } else {
        settings_of(spec)
    }
}

/// The scaling of a raw k-space file into the prior's model space: the MR prior's percentile of
/// the fully sampled RSS of the chosen slices, or, undersampled, of the zero-filled RSS (which
/// keeps the low frequencies, hence the level; the note says so).
pub fn kspace_scaling(
    input: &KspaceInput,
    model: &dyn ScoreModel,
    notes: &mut Vec<String>,
) -> Result<Scaling> {
    let normalisation = model.normalisation();
    let Normalisation::MrPerVolume { percentile } = normalisation else {
        bail!("the prior's normalisation is {normalisation:?}; MRI k-space needs an MR prior");
    };
    let mut k = kspace_tensor(&input.raw, &input.ks);
    if let Some(mask) = &input.raw.mask {
        k *= mask_tensor(mask);
    }
    let rss: Vec<f32> = crate::tensor::tensor_to_vec(&crate::classic::rss::rss_of(&k));
    let scaling = normalisation.fit(&rss)?;
    notes.push(format!(
        "Intensity scale: the {percentile}th percentile of the {} RSS image of the reconstructed \
         slice(s), {:.5}.",
        if input.raw.mask.is_some() {
            "zero-filled"
        } else {
            "fully sampled"
        },
        scaling.scale
    ));
    Ok(scaling)
}

fn mask_tensor(mask: &ndarray::Array2<f32>) -> Tensor {
    let (h, w) = mask.dim();
    let v: Vec<f32> = mask.iter().copied().collect();
    Tensor::from_slice(&v).reshape([1, 1, h as i64, w as i64])
}

/// The case of a raw k-space file under `setting`: the file's own mask (`Setting::File`, no
/// reference) or, for fully sampled k-space, a retrospective mask with the fully sampled RSS as
/// the reference; the multi-coil operator from the data's own calibration region.
pub fn kspace_cases(
    spec: &JobSpec,
    setting: Setting,
    input: &KspaceInput,
    scaling: &Scaling,
    device: Device,
) -> Result<Vec<Case>> {
    let full = kspace_tensor(&input.raw, &input.ks) / scaling.scale;
    let [_, _, h, w] = full.size()[..] else {
        unreachable!("[B, C, H, W]")
    };
    let (mask, reference) = match (setting, &input.raw.mask) {
        // A reference the file carries on the k-space grid (fastMRI's `reconstruction_rss` of
        // a fully sampled acquisition, as `simulate --coils` writes it) is assessed against.
        (Setting::File, Some(mask)) => (mask_tensor(mask), file_reference(input, h, w, scaling)),
        (Setting::Acceleration(r), None) => (
            spec.mask_spec(r)
                .build(h, w)?
                .to_kind(tch::Kind::Float)
                .reshape([1, 1, h, w]),
            Some(crate::classic::rss::rss_of(&full).to_device(device)),
        ),
        _ => bail!(
            "{}: no measurement setting {setting:?} for this k-space",
            spec.input.display()
        ),
    };
    let y = (full * &mask).to_device(device);
    let mask = mask.to_device(device);
    // One case per slice: each has its own coil maps, hence its own operator.
    let mut cases = Vec::with_capacity(input.ks.len());
    for (i, k) in input.ks.iter().enumerate() {
        let y = y.narrow(0, i as i64, 1);
        let (op, maps) = coil_operator(&y, &mask)
            .with_context(|| format!("{}: slice {k}: coil sensitivities", spec.input.display()))?;
        cases.push(Case {
            op,
            coil_maps: Some(maps),
            y,
            reference: reference.as_ref().map(|r| r.narrow(0, i as i64, 1)),
            fbp_full: None,
            metal: None,
            // Measured data carry noise: the sampler keeps the likelihood and skips the final
            // hard projection onto A x = y.
            noise_free: false,
            noise_sigma: None,
        });
    }
    Ok(cases)
}

/// The file's reference image of the chosen slices, in model space, when it has the k-space's
/// grid (fastMRI's own RSS is cropped to 320x320 and is then not on it).
fn file_reference(input: &KspaceInput, h: i64, w: i64, scaling: &Scaling) -> Option<Tensor> {
    let (_, reference) = input.raw.reference.as_ref()?;
    let (rs, rh, rw) = reference.dim();
    if (rh as i64, rw as i64) != (h, w) || rs != input.raw.kspace.shape()[0] {
        return None;
    }
    let mut values = Vec::with_capacity(input.ks.len() * rh * rw);
    for &k in &input.ks {
        values.extend(reference.index_axis(ndarray::Axis(0), k).iter().copied());
    }
    Some(Tensor::from_slice(&values).reshape([input.ks.len() as i64, 1, h, w]) / scaling.scale)
}

/// The output grid of a raw k-space file: the reconstructed slices, the file's pixel size where
/// its header gives the field of view (else 1 mm, and the note says so).
pub fn kspace_volume(spec: &JobSpec, input: &KspaceInput, notes: &mut Vec<String>) -> Volume {
    let &[_, _, h, w] = input.raw.kspace.shape() else {
        unreachable!("RawKspace holds [slices, coils, rows, cols]")
    };
    let s = input.ks.len();
    let (dy, dx, dz) = match input.raw.fov_mm {
        Some([fy, fx, fz]) if fy > 0.0 && fx > 0.0 => (
            fy / h as f64,
            fx / w as f64,
            if fz > 0.0 { fz } else { 1.0 },
        ),
        _ => {
            notes.push("The file gives no field of view; the outputs say 1 mm pixels.".into());
            (1.0, 1.0, 1.0)
        }
    };
    let mut vol = Volume::new(
        vec![0.0; h * w * s],
        [w, h, s, 1],
        [dx, dy, dz],
        Modality::Mr,
    );
    vol.provenance.history.push(format!(
        "reconstructed from {} ({})",
        spec.input.display(),
        input.raw.format
    ));
    vol
}
