//! Parallel-beam CT geometry, apart from the projector that uses it: the image grid, the detector,
//! the full angle set of `T`, and the angle subsets (sparse-view, limited-angle) that make `Lambda`.
//! Conventions: docs/operators.md (those of scikit-image's `radon(image, theta, circle=False)`).

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Parallel-beam geometry of the full angle set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// The image is `image_size x image_size` pixels.
    pub image_size: usize,
    /// Detector bins, one pixel wide, centred at bin `n_det / 2`.
    pub n_det: usize,
    /// Length of a pixel side in the unit the line integrals are reported in: 1 for pixel
    /// units, the pixel spacing in mm for mm.
    pub pixel_size: f64,
    /// Projection angles in degrees, the full set of `T`.
    pub angles_deg: Vec<f64>,
}

/// Detector bins that cover the whole square image at every angle (scikit-image's
/// `circle=False` padding): `ceil(sqrt(2) N)`.
pub fn default_n_det(image_size: usize) -> usize {
    (std::f64::consts::SQRT_2 * image_size as f64).ceil() as usize
}

/// `n` angles equally spaced over [0, 180) degrees: `k * 180 / n`.
pub fn full_angles(n: usize) -> Vec<f64> {
    (0..n).map(|k| k as f64 * 180.0 / n as f64).collect()
}

impl Geometry {
    /// An `image_size x image_size` image, `n_views` angles over [0, 180), default detector,
    /// line integrals in pixel units.
    pub fn new(image_size: usize, n_views: usize) -> Result<Self> {
        let g = Geometry {
            image_size,
            n_det: default_n_det(image_size),
            pixel_size: 1.0,
            angles_deg: full_angles(n_views),
        };
        g.validate()?;
        Ok(g)
    }

    pub fn with_n_det(mut self, n_det: usize) -> Result<Self> {
        self.n_det = n_det;
        self.validate()?;
        Ok(self)
    }

    /// Report line integrals in the unit of `pixel_size` (e.g. the pixel spacing in mm).
    pub fn with_pixel_size(mut self, pixel_size: f64) -> Result<Self> {
        self.pixel_size = pixel_size;
        self.validate()?;
        Ok(self)
    }

    pub fn with_angles(mut self, angles_deg: Vec<f64>) -> Result<Self> {
        self.angles_deg = angles_deg;
        self.validate()?;
        Ok(self)
    }

    pub fn n_angles(&self) -> usize {
        self.angles_deg.len()
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.image_size >= 2,
            "CT geometry: image size {} is too small (need at least 2x2 pixels)",
            self.image_size
        );
        ensure!(
            !self.angles_deg.is_empty(),
            "CT geometry: zero views; give at least one projection angle"
        );
        ensure!(
            self.angles_deg.iter().all(|a| a.is_finite()),
            "CT geometry: projection angles must be finite numbers"
        );
        ensure!(
            self.n_det >= 2,
            "CT geometry: {} detector bins; need at least 2",
            self.n_det
        );
        ensure!(
            self.pixel_size.is_finite() && self.pixel_size > 0.0,
            "CT geometry: pixel size {} must be a positive number",
            self.pixel_size
        );
        Ok(())
    }
}

/// Angle indices of sparse-view CT: `n_views` of the `n_full` angles, equally spaced, namely
/// `floor(k * n_full / n_views)` for `k = 0..n_views` (23 of 180: 0, 7, 15, 23, 31, 39, ...).
pub fn sparse_view_rows(n_full: usize, n_views: usize) -> Result<Vec<usize>> {
    ensure!(
        n_views >= 1,
        "--views 0: sparse-view CT needs at least one view"
    );
    ensure!(
        n_views <= n_full,
        "--views {n_views}: more views than the full set of {n_full} angles"
    );
    Ok((0..n_views).map(|k| k * n_full / n_views).collect())
}

/// Angle indices of limited-angle CT: the wedge `[start_deg, start_deg + wedge_deg)` of the
/// full set (angles taken modulo 180).
pub fn limited_angle_rows(
    angles_deg: &[f64],
    start_deg: f64,
    wedge_deg: f64,
) -> Result<Vec<usize>> {
    ensure!(
        wedge_deg.is_finite() && wedge_deg > 0.0 && wedge_deg <= 180.0,
        "--wedge {wedge_deg}: the wedge must be in (0, 180] degrees"
    );
    ensure!(
        start_deg.is_finite(),
        "wedge start {start_deg} is not a number"
    );
    let rows: Vec<usize> = angles_deg
        .iter()
        .enumerate()
        .filter(|(_, a)| (*a - start_deg).rem_euclid(180.0) < wedge_deg)
        .map(|(k, _)| k)
        .collect();
    if rows.is_empty() {
        bail!(
            "--wedge {wedge_deg}: the wedge holds none of the {} angles",
            angles_deg.len()
        );
    }
    Ok(rows)
}

/// The 0/1 mask `Lambda` (`n_angles x n_det`, row major) that keeps whole sinogram rows.
pub fn rows_mask_values(rows: &[usize], n_angles: usize, n_det: usize) -> Vec<f32> {
    let mut m = vec![0f32; n_angles * n_det];
    for &r in rows {
        m[r * n_det..(r + 1) * n_det].fill(1.0);
    }
    m
}

/// [`rows_mask_values`] as the `[1, 1, n_angles, n_det]` tensor `MeasurementOperator` takes.
pub fn rows_mask(rows: &[usize], n_angles: usize, n_det: usize) -> Tensor {
    Tensor::from_slice(&rows_mask_values(rows, n_angles, n_det)).reshape([
        1,
        1,
        n_angles as i64,
        n_det as i64,
    ])
}
