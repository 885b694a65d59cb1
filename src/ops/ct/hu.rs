//! Hounsfield units <-> attenuation, in one place (docs/operators.md, "Units").
//!
//! `HU = 1000 (mu - mu_water) / mu_water` (air, `mu = 0`, is -1000 HU). `mu_water` is taken at
//! an effective energy of 70 keV, a usual effective energy of a 120 kVp CT beam: NIST XCOM gives
//! `mu/rho` = 0.2059 cm^2/g at 60 keV and 0.1837 at 80 keV; log-log interpolation gives 0.1937
//! at 70 keV, so `mu_water` = 0.01937 / mm.
//!
//! The score model and the reconstructions work on attenuation scaled to about [0, 1]:
//! `x = mu / (2 mu_water) = (HU + 1000) / 2000`, so air is 0, water 0.5 and dense bone
//! (+1000 HU) 1; values below air (noise, padding of -2048 or -3024) become 0.

/// Effective energy at which `MU_WATER_PER_MM` is taken, keV.
pub const EFFECTIVE_ENERGY_KEV: f64 = 70.0;
/// Linear attenuation coefficient of water at `EFFECTIVE_ENERGY_KEV`, 1/mm.
pub const MU_WATER_PER_MM: f64 = 0.01937;

/// Linear attenuation (1/mm) of a voxel in HU; never negative.
pub fn hu_to_mu(hu: f64) -> f64 {
    (MU_WATER_PER_MM * (1.0 + hu / 1000.0)).max(0.0)
}

/// HU of a linear attenuation (1/mm).
pub fn mu_to_hu(mu: f64) -> f64 {
    1000.0 * (mu / MU_WATER_PER_MM - 1.0)
}

/// The model's attenuation scale `x = (HU + 1000) / 2000 = mu / (2 mu_water)`, clamped at 0.
pub fn hu_to_unit(hu: f64) -> f64 {
    ((hu + 1000.0) / 2000.0).max(0.0)
}

/// Inverse of [`hu_to_unit`] (for `x >= 0`).
pub fn unit_to_hu(x: f64) -> f64 {
    2000.0 * x - 1000.0
}

/// Linear attenuation (1/mm) of a voxel on the model's scale.
pub fn unit_to_mu(x: f64) -> f64 {
    2.0 * MU_WATER_PER_MM * x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_points() {
        assert_eq!(hu_to_mu(-1000.0), 0.0);
        assert!((hu_to_mu(0.0) - MU_WATER_PER_MM).abs() < 1e-12);
        assert!((mu_to_hu(hu_to_mu(1234.0)) - 1234.0).abs() < 1e-9);
        assert_eq!(hu_to_unit(-1000.0), 0.0);
        assert_eq!(hu_to_unit(0.0), 0.5);
        assert_eq!(hu_to_unit(-3024.0), 0.0);
        assert!((unit_to_hu(hu_to_unit(700.0)) - 700.0).abs() < 1e-9);
        assert!((unit_to_mu(hu_to_unit(300.0)) - hu_to_mu(300.0)).abs() < 1e-12);
    }
}
