//! Metal in a CT slice and what a scanner measures through it: materials with tabulated X-ray
//! attenuation, a 120 kVp spectrum, metal objects (inserted discs, or metal already in the image),
//! and the polychromatic sinogram (beam hardening, photon starvation) that makes FBP show the
//! streaks metal artifact removal has to undo.

use super::ct::draw_counts;
use crate::ops::ct::hu::{self, EFFECTIVE_ENERGY_KEV};
use crate::ops::ct::Radon;
use anyhow::{ensure, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Materials with tabulated X-ray attenuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Material {
    Water,
    /// Cortical bone (ICRU-44, 1.92 g/cm^3).
    Bone,
    Titanium,
    /// Iron, standing for stainless steel.
    Iron,
}

crate::names::named!(Material, "material", {
    Water => "water",
    Bone => "bone",
    Titanium => "titanium",
    Iron => "iron",
});

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
    Ok(metal_discs(n, pixel_mm, &centres, 4.0, Material::Iron))
}

/// Metal already in the image: every voxel above `threshold` HU, as one titanium object; None
/// when there is none.
pub fn metal_in_image(hu_image: &[f32], threshold: f64) -> Option<Vec<MetalObject>> {
    let fraction = crate::ops::ct::metal::threshold_mask(hu_image, threshold);
    fraction.iter().any(|&f| f > 0.0).then(|| {
        vec![MetalObject {
            material: Material::Titanium,
            density_g_cm3: Material::Titanium.density(),
            fraction,
        }]
    })
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
