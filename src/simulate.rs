//! What a CT scanner would measure from a slice: sinograms with Poisson noise at a given
//! incident photon count, and metal scans simulated polychromatically (beam hardening, photon
//! starvation) so that FBP shows the streaks metal artifact removal has to undo.
//!
//! Units: images are on the attenuation scale `x = (HU + 1000) / 2000` (src/ops/hu.rs),
//! sinograms are line integrals of `x` in pixel units (`Geometry::pixel_size = 1`). A pixel
//! spacing in mm turns them into dimensionless `integral mu dl = 2 mu_water * pixel_mm * p`,
//! which is what photons see.

use crate::ops::fbp::Filter;
use crate::ops::hu::{self, EFFECTIVE_ENERGY_KEV};
use crate::ops::metal;
use crate::ops::radon::{self, Geometry, Radon};
use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Materials with tabulated X-ray attenuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Material {
    Water,
    /// Cortical bone (ICRU-44, 1.92 g/cm^3).
    Bone,
    Titanium,
    /// Iron, standing for stainless steel.
    Iron,
}

/// Energies (keV) of the mass attenuation table.
const TABLE_KEV: [f64; 7] = [30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0];

impl Material {
    /// Mass attenuation coefficients mu/rho (cm^2/g, coherent scattering included) at
    /// `TABLE_KEV`, rounded from the NIST X-ray mass attenuation tables (Hubbell & Seltzer,
    /// NISTIR 5632; physics.nist.gov/PhysRefData/XrayMassCoef). Approximate, as a coarse
    /// beam-hardening model needs.
    fn table(self) -> [f64; 7] {
        match self {
            Material::Water => [0.3756, 0.2683, 0.2269, 0.2059, 0.1837, 0.1707, 0.1505],
            Material::Bone => [1.331, 0.6655, 0.4242, 0.3148, 0.2229, 0.1855, 0.1480],
            Material::Titanium => [4.972, 2.214, 1.213, 0.7661, 0.4052, 0.2721, 0.1649],
            Material::Iron => [8.176, 3.629, 1.958, 1.205, 0.5952, 0.3717, 0.1964],
        }
    }

    /// mu/rho (cm^2/g) at `kev`, log-log interpolation in the table (no K edge lies in
    /// 30-150 keV for these materials).
    pub fn mass_attenuation(self, kev: f64) -> f64 {
        let t = self.table();
        let k = TABLE_KEV
            .windows(2)
            .position(|w| kev <= w[1])
            .unwrap_or(TABLE_KEV.len() - 2);
        let (e0, e1) = (TABLE_KEV[k].ln(), TABLE_KEV[k + 1].ln());
        let (m0, m1) = (t[k].ln(), t[k + 1].ln());
        (m0 + (kev.ln() - e0) * (m1 - m0) / (e1 - e0)).exp()
    }

    /// Linear attenuation (1/mm) at `kev` for a density in g/cm^3.
    pub fn mu_per_mm(self, density_g_cm3: f64, kev: f64) -> f64 {
        self.mass_attenuation(kev) * density_g_cm3 / 10.0
    }

    /// Usual density (g/cm^3).
    pub fn density(self) -> f64 {
        match self {
            Material::Water => 1.0,
            Material::Bone => 1.92,
            Material::Titanium => 4.5,
            Material::Iron => 7.87,
        }
    }
}

/// A coarse X-ray spectrum: photon fractions at a few energies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spectrum {
    pub energies_kev: Vec<f64>,
    /// Fraction of the incident photons in each bin; sums to 1.
    pub weights: Vec<f64>,
}

impl Spectrum {
    /// A 120 kVp tungsten-anode spectrum after typical filtration, in 10 keV bins: rising from
    /// 30 keV, peaking at 60-70 keV (the tungsten K lines at 59 and 67 keV), ending at the tube
    /// voltage. The shape of the usual tabulated spectra (e.g. TASMIP, SpekCalc), coarsely
    /// binned; fine for beam hardening, not for dosimetry.
    pub fn tungsten_120kvp() -> Self {
        let energies_kev = vec![30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0];
        let raw = [0.03, 0.10, 0.16, 0.19, 0.17, 0.13, 0.10, 0.07, 0.05];
        let total: f64 = raw.iter().sum();
        Spectrum {
            energies_kev,
            weights: raw.iter().map(|w| w / total).collect(),
        }
    }
}

/// A metal object inserted into a slice: the fraction of each pixel it fills.
#[derive(Debug, Clone)]
pub struct MetalObject {
    pub material: Material,
    pub density_g_cm3: f64,
    /// `n x n`, in [0, 1].
    pub fraction: Vec<f32>,
}

impl MetalObject {
    /// HU the object reads at the effective energy (what a reconstruction would show).
    pub fn hu(&self) -> f64 {
        hu::mu_to_hu(
            self.material
                .mu_per_mm(self.density_g_cm3, EFFECTIVE_ENERGY_KEV),
        )
    }
}

/// The HU image with metal painted in (partial-volume mix at the objects' edges).
pub fn insert_metal(hu_image: &[f32], metal: &[MetalObject]) -> Vec<f32> {
    let mut out = hu_image.to_vec();
    for m in metal {
        let h = m.hu() as f32;
        for (v, f) in out.iter_mut().zip(&m.fraction) {
            *v = (1.0 - f) * *v + f * h;
        }
    }
    out
}

/// Discs of `radius_mm` at `centres` (pixel coordinates `(column, row)`), as metal objects,
/// rasterised with 4x4 supersampling so their rims carry partial volumes.
pub fn metal_discs(
    n: usize,
    pixel_mm: f64,
    centres: &[(f64, f64)],
    radius_mm: f64,
    material: Material,
) -> Vec<MetalObject> {
    let r = radius_mm / pixel_mm;
    centres
        .iter()
        .map(|&(cx, cy)| {
            let mut fraction = vec![0f32; n * n];
            for j in 0..n {
                for i in 0..n {
                    if ((i as f64 - cx).abs() > r + 1.0) || ((j as f64 - cy).abs() > r + 1.0) {
                        continue;
                    }
                    let mut hits = 0;
                    for sj in 0..4 {
                        for si in 0..4 {
                            let x = i as f64 - 0.375 + 0.25 * si as f64 - cx;
                            let y = j as f64 - 0.375 + 0.25 * sj as f64 - cy;
                            if x * x + y * y <= r * r {
                                hits += 1;
                            }
                        }
                    }
                    fraction[j * n + i] = hits as f32 / 16.0;
                }
            }
            MetalObject {
                material,
                density_g_cm3: material.density(),
                fraction,
            }
        })
        .collect()
}

/// Where to put metal in a real slice when none is given: two titanium discs of 3 mm radius
/// (fixation screws seen end-on), left and right of the body's centre at 40 % of its half
/// width, so the streaks between them cross the anatomy.
pub fn default_metal(hu_image: &[f32], n: usize, pixel_mm: f64) -> Result<Vec<MetalObject>> {
    let (mut sx, mut sy, mut count) = (0.0, 0.0, 0usize);
    let (mut xmin, mut xmax) = (f64::MAX, f64::MIN);
    for (k, &v) in hu_image.iter().enumerate() {
        if v > -500.0 {
            let (x, y) = ((k % n) as f64, (k / n) as f64);
            sx += x;
            sy += y;
            count += 1;
            xmin = xmin.min(x);
            xmax = xmax.max(x);
        }
    }
    ensure!(
        count > n,
        "metal insertion: the slice holds no body (no voxel above -500 HU) to put metal in"
    );
    let (cx, cy) = (sx / count as f64, sy / count as f64);
    let half = 0.5 * (xmax - xmin);
    let centres = [(cx - 0.4 * half, cy), (cx + 0.4 * half, cy)];
    Ok(metal_discs(n, pixel_mm, &centres, 3.0, Material::Titanium))
}

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

/// A Poisson count clipped below at 1 (photon starvation).
fn draw_counts(expected: f64, rng: &mut ChaCha8Rng) -> f64 {
    let c = if expected > 1e-9 {
        Poisson::new(expected)
            .map(|p| p.sample(rng))
            .unwrap_or(expected)
    } else {
        0.0
    };
    c.max(1.0)
}

/// The polychromatic measurement of a slice with metal, as line integrals on the attenuation
/// scale (pixel units), i.e. what a scanner calibrated for water at the effective energy would
/// report.
///
/// Tissue is split into water-like and bone-like parts by HU (all water below +100 HU, all bone
/// above +1500, a linear mix between), each scaled so it reproduces the slice at the effective
/// energy and varies with energy like its material; metal replaces the tissue under it. Per
/// ray, `I = sum_E I0 w_E exp(-sum_m mu_m(E) L_m)` from the forward projections `L_m` of the
/// three parts; then Poisson noise (when `photons` is given), counts clipped at 1, and
/// `-ln(I / I0)`.
pub fn polychromatic_sinogram(
    radon: &Radon,
    hu_clean: &[f32],
    metal: &[MetalObject],
    pixel_mm: f64,
    spectrum: &Spectrum,
    photons: Option<f64>,
    seed: u64,
) -> Result<Vec<f32>> {
    let g = radon.geometry();
    let n = g.image_size;
    ensure!(
        hu_clean.len() == n * n,
        "polychromatic simulation: image size does not match the geometry"
    );
    ensure!(
        pixel_mm.is_finite() && pixel_mm > 0.0,
        "pixel spacing {pixel_mm} mm must be positive"
    );
    if let Some(i0) = photons {
        ensure!(
            i0.is_finite() && i0 >= 1.0,
            "--photons {i0}: the incident photon count must be at least 1"
        );
    }
    let mut metal_total = vec![0f32; n * n];
    for m in metal {
        for (t, f) in metal_total.iter_mut().zip(&m.fraction) {
            *t = (*t + f).min(1.0);
        }
    }
    // Relative densities (mu / mu_water at the effective energy) of the water and bone parts.
    let mut water = vec![0f32; n * n];
    let mut bone = vec![0f32; n * n];
    for k in 0..n * n {
        let h = f64::from(hu_clean[k]);
        let rel = (hu::hu_to_mu(h) / hu::MU_WATER_PER_MM) * (1.0 - f64::from(metal_total[k]));
        let beta = ((h - 100.0) / 1400.0).clamp(0.0, 1.0);
        water[k] = (rel * (1.0 - beta)) as f32;
        bone[k] = (rel * beta) as f32;
    }
    // Line integrals in mm: water- and bone-part relative densities, and each metal's fraction.
    let to_mm = |img: &[f32]| -> Vec<f32> {
        radon
            .project(img, 1)
            .into_iter()
            .map(|v| v * pixel_mm as f32)
            .collect()
    };
    let l_water = to_mm(&water);
    let l_bone = to_mm(&bone);
    let l_metal: Vec<Vec<f32>> = metal.iter().map(|m| to_mm(&m.fraction)).collect();

    let mu_w_eff = Material::Water.mu_per_mm(1.0, EFFECTIVE_ENERGY_KEV);
    let bone_eff = Material::Bone.mass_attenuation(EFFECTIVE_ENERGY_KEV);
    // Per energy: attenuation per mm of each part.
    let coeffs: Vec<(f64, f64, f64, Vec<f64>)> = spectrum
        .energies_kev
        .iter()
        .zip(&spectrum.weights)
        .map(|(&e, &w)| {
            let cw = Material::Water.mu_per_mm(1.0, e);
            // A bone part of relative density r attenuates r mu_w_eff at the effective energy.
            let cb = mu_w_eff * Material::Bone.mass_attenuation(e) / bone_eff;
            let cm = metal
                .iter()
                .map(|m| m.material.mu_per_mm(m.density_g_cm3, e))
                .collect();
            (w, cw, cb, cm)
        })
        .collect();
    let expected_fraction = |k: usize| -> f64 {
        coeffs
            .iter()
            .map(|(w, cw, cb, cm)| {
                let mut a = cw * f64::from(l_water[k]) + cb * f64::from(l_bone[k]);
                for (c, l) in cm.iter().zip(&l_metal) {
                    a += c * f64::from(l[k]);
                }
                w * (-a).exp()
            })
            .sum()
    };
    // Back to the attenuation scale: p_unit = integral mu dl / (2 mu_water pixel_mm).
    let to_unit = 1.0 / (2.0 * hu::MU_WATER_PER_MM * pixel_mm);
    let n_det = g.n_det;
    let mut out = vec![0f32; g.n_angles() * n_det];
    out.par_chunks_mut(n_det)
        .enumerate()
        .for_each(|(row, line)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(row as u64);
            for (d, v) in line.iter_mut().enumerate() {
                let frac = expected_fraction(row * n_det + d);
                let p = match photons {
                    Some(i0) => (i0 / draw_counts(i0 * frac, &mut rng)).ln(),
                    None => -frac.max(f64::MIN_POSITIVE).ln(),
                };
                *v = (p * to_unit) as f32;
            }
        });
    Ok(out)
}

/// The CT tasks of the paper, as measurement processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
pub enum CtTask {
    /// `views` of the full set, equally spaced (`radon::sparse_view_rows`).
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
    let geometry = Geometry::new(n, spec.full_views).context("--full-views")?;
    let radon = Radon::new(geometry.clone())?;
    let to_dimensionless = 2.0 * hu::MU_WATER_PER_MM * spec.pixel_mm;
    let n_det = geometry.n_det;
    let all: Vec<usize> = (0..spec.full_views).collect();
    let (full, rows, mask, reference, metal_mask) = match &spec.task {
        CtTask::SparseView { .. } | CtTask::LimitedAngle { .. } => {
            let rows = match spec.task {
                CtTask::SparseView { views } => radon::sparse_view_rows(spec.full_views, views)?,
                CtTask::LimitedAngle {
                    wedge_deg,
                    start_deg,
                } => radon::limited_angle_rows(&geometry.angles_deg, start_deg, wedge_deg)?,
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
            let mask = radon::rows_mask_values(&rows, spec.full_views, n_det);
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
    let fbp = crate::ops::fbp::fbp(&geometry, &full, 1, spec.filter, &fbp_rows)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attenuation_tables_interpolate_between_their_points() {
        assert!((Material::Water.mass_attenuation(60.0) - 0.2059).abs() < 1e-12);
        let w70 = Material::Water.mass_attenuation(70.0);
        assert!(w70 < 0.2059 && w70 > 0.1837);
        // The effective water attenuation of src/ops/hu.rs is this table's value at 70 keV.
        assert!((Material::Water.mu_per_mm(1.0, 70.0) - hu::MU_WATER_PER_MM).abs() < 1e-4);
        // Titanium reads several thousand HU.
        let ti = hu::mu_to_hu(Material::Titanium.mu_per_mm(4.5, 70.0));
        assert!(ti > 5000.0 && ti < 20000.0, "{ti}");
    }

    #[test]
    fn spectrum_sums_to_one() {
        let s = Spectrum::tungsten_120kvp();
        assert!((s.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
