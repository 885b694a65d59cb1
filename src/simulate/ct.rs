//! What a CT scanner would measure from a slice: sinograms with Poisson noise at a given
//! incident photon count, and metal scans simulated polychromatically (beam hardening, photon
//! starvation) so that FBP shows the streaks metal artifact removal has to undo.
//!
//! Units: images are on the attenuation scale `x = (HU + 1000) / 2000` (src/ops/hu.rs),
//! sinograms are line integrals of `x` in pixel units (`Geometry::pixel_size = 1`). A pixel
//! spacing in mm turns them into dimensionless `integral mu dl = 2 mu_water * pixel_mm * p`,
//! which is what photons see.

use super::metal::{insert_metal, polychromatic_sinogram, MetalObject, Spectrum};
use crate::ops::ct::fbp::Filter;
use crate::ops::ct::hu;
use crate::ops::ct::metal;
use crate::ops::ct::{self, Geometry, Radon};

use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Poisson noise on line integrals: counts `~ Poisson(I0 exp(-p))`, at least 1 (a detector
/// reading zero would give an infinite line integral), `p' = ln(I0 / counts)`.
/// `to_dimensionless` converts `p` to `integral mu dl`; each sinogram row draws from its own
/// ChaCha stream, so the result does not depend on the thread count.
pub fn poisson_noise(
    sinogram: &[f32],
    n_det: usize,
    to_dimensionless: f64,
    photons: f64,
    seed: u64,
) -> Result<Vec<f32>> {
    ensure!(
        photons.is_finite() && photons >= 1.0,
        "--photons {photons}: the incident photon count must be at least 1"
    );
    ensure!(
        to_dimensionless.is_finite() && to_dimensionless > 0.0,
        "Poisson noise: the line-integral scale must be positive"
    );
    let mut out = sinogram.to_vec();
    out.par_chunks_mut(n_det)
        .enumerate()
        .for_each(|(row, line)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(row as u64);
            for v in line.iter_mut() {
                let expected = photons * (-(*v as f64) * to_dimensionless).exp();
                let counts = draw_counts(expected, &mut rng);
                *v = ((photons / counts).ln() / to_dimensionless) as f32;
            }
        });
    Ok(out)
}

/// The root-mean-square standard deviation, over the bins `mask` keeps, of line integrals
/// (attenuation scale, pixel units) measured with `photons` per bin: a count `~ Poisson(I0
/// e^-q)` of `q = to_dimensionless p` gives `ln(I0 / count)` a variance of about `e^q / I0`
/// (delta method), i.e. `sd(p) = sqrt(e^q / I0) / to_dimensionless`. `sinogram` may be the
/// measured (noisy) one: the estimate is what a reconstruction can know of its noise.
pub fn poisson_sigma(sinogram: &[f32], mask: &[f32], to_dimensionless: f64, photons: f64) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (&p, &m) in sinogram.iter().zip(mask) {
        if m > 0.5 {
            sum += (f64::from(p) * to_dimensionless).exp() / photons;
            n += 1;
        }
    }
    (sum / n.max(1) as f64).sqrt() / to_dimensionless
}

/// A Poisson count clipped below at 1 (photon starvation).
pub(super) fn draw_counts(expected: f64, rng: &mut ChaCha8Rng) -> f64 {
    let c = if expected > 1e-9 {
        Poisson::new(expected)
            .map(|p| p.sample(rng))
            .unwrap_or(expected)
    } else {
        0.0
    };
    c.max(1.0)
}

/// The CT tasks of the paper, as measurement processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
pub enum CtTask {
    /// `views` of the full set, equally spaced (`ct::sparse_view_rows`).
    SparseView { views: usize },
    /// The angles in `[start_deg, start_deg + wedge_deg)`.
    LimitedAngle { wedge_deg: f64, start_deg: f64 },
    /// Everything but the metal trace of metal segmented above `threshold_hu`.
    Mar { threshold_hu: f64, dilation: usize },
}

/// What to simulate from one slice.
#[derive(Debug, Clone)]
pub struct CtSimulationSpec {
    pub task: CtTask,
    pub full_views: usize,
    /// Incident photons per detector bin; `None`: noise-free (the MAR scan is still
    /// polychromatic).
    pub photons: Option<f64>,
    pub seed: u64,
    pub pixel_mm: f64,
    pub filter: Filter,
    /// Fan beam from this scanner; None: parallel beam.
    pub fan: Option<ct::FanSpec>,
}

/// A simulated CT measurement of one slice and what it came from.
pub struct CtSimulation {
    pub geometry: Geometry,
    /// Full-set sinogram, zero-filled where `mask` is 0 (`P^-1(Lambda) y`), attenuation scale.
    pub sinogram: Vec<f32>,
    /// `Lambda`, `n_angles x n_det`.
    pub mask: Vec<f32>,
    /// Measured angle indices (sparse-view, limited-angle); `None` for MAR.
    pub rows: Option<Vec<usize>>,
    /// FBP of the measurement (the measured rows only; all rows with metal for MAR).
    pub fbp: Vec<f32>,
    /// The image measured, attenuation scale (with metal for MAR).
    pub reference: Vec<f32>,
    /// Metal mask used for the trace (MAR).
    pub metal_mask: Option<Vec<f32>>,
}

/// Simulate `spec` from an `n x n` HU slice; for MAR, `metal` is inserted first (pass the
/// objects of `default_metal` or a phantom's).
pub fn simulate_ct(
    spec: &CtSimulationSpec,
    hu_slice: &[f32],
    n: usize,
    metal: &[MetalObject],
) -> Result<CtSimulation> {
    ensure!(
        hu_slice.len() == n * n,
        "CT simulation: the slice is not {n}x{n}"
    );
    if let Some(k) = hu_slice.iter().position(|v| !v.is_finite()) {
        bail!("CT simulation: the slice holds a non-finite value (voxel {k})");
    }
    let geometry = ct::ct_geometry(n, spec.full_views, spec.fan.as_ref(), spec.pixel_mm)
        .context("--full-views / --geometry")?;
    let radon = Radon::new(geometry.clone())?;
    let to_dimensionless = 2.0 * hu::MU_WATER_PER_MM * spec.pixel_mm;
    let n_det = geometry.n_det;
    let all: Vec<usize> = (0..spec.full_views).collect();
    let (full, rows, mask, reference, metal_mask) = match &spec.task {
        CtTask::SparseView { .. } | CtTask::LimitedAngle { .. } => {
            let rows = match spec.task {
                CtTask::SparseView { views } => ct::sparse_view_rows(spec.full_views, views)?,
                CtTask::LimitedAngle {
                    wedge_deg,
                    start_deg,
                } => ct::limited_angle_rows_over(
                    &geometry.angles_deg,
                    start_deg,
                    wedge_deg,
                    geometry.arc_deg(),
                )?,
                CtTask::Mar { .. } => unreachable!(),
            };
            let x: Vec<f32> = hu_slice
                .iter()
                .map(|&h| hu::hu_to_unit(f64::from(h)) as f32)
                .collect();
            let mut sino = radon.project(&x, 1);
            if let Some(i0) = spec.photons {
                sino = poisson_noise(&sino, n_det, to_dimensionless, i0, spec.seed)?;
            }
            let mask = ct::rows_mask_values(&rows, spec.full_views, n_det);
            (sino, Some(rows), mask, x, None)
        }
        CtTask::Mar {
            threshold_hu,
            dilation,
        } => {
            ensure!(
                !metal.is_empty(),
                "metal artifact removal: no metal object to insert"
            );
            let with_metal = insert_metal(hu_slice, metal);
            let sino = polychromatic_sinogram(
                &radon,
                hu_slice,
                metal,
                spec.pixel_mm,
                &Spectrum::tungsten_120kvp(),
                spec.photons,
                spec.seed,
            )?;
            let metal_mask = metal::segment_metal(&with_metal, n, *threshold_hu, *dilation)?;
            ensure!(
                metal_mask.iter().any(|&m| m > 0.0),
                "metal artifact removal: no voxel of the slice with metal is above the threshold of {threshold_hu} HU"
            );
            let mask: Vec<f32> = metal::metal_trace(&radon, &metal_mask)
                .into_iter()
                .map(|t| 1.0 - t)
                .collect();
            let x: Vec<f32> = with_metal
                .iter()
                .map(|&h| hu::hu_to_unit(f64::from(h)) as f32)
                .collect();
            (sino, None, mask, x, Some(metal_mask))
        }
    };
    let fbp_rows = rows.clone().unwrap_or(all);
    let fbp = crate::ops::ct::fbp::fbp(&geometry, &full, 1, spec.filter, &fbp_rows)?;
    let sinogram = full.iter().zip(&mask).map(|(v, m)| v * m).collect();
    Ok(CtSimulation {
        geometry,
        sinogram,
        mask,
        rows,
        fbp,
        reference,
        metal_mask,
    })
}
