//! CT geometry, apart from the projector that uses it: the image grid, the detector, the full
//! angle set of `T`, and the angle subsets (sparse-view, limited-angle) that make `Lambda`.
//! Parallel beam by default (scikit-image's `radon(image, theta, circle=False)` conventions);
//! a [`FanBeam`] makes it the divergent beam of a clinical scanner (ASTRA's `fanflat`
//! conventions for the flat detector). Both: docs/operators.md.

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
    /// Projection angles in degrees, the full set of `T` (the source angle `beta` in fan beam).
    pub angles_deg: Vec<f64>,
    /// Fan beam: where the source and the detector are; `None` is parallel beam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan: Option<FanBeam>,
}

/// The detector of a fan-beam scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    /// Equiangular: an arc centred on the source (third-generation clinical scanners); bins are
    /// equal angles `detector_spacing_mm / source_to_detector_mm` radians apart.
    Curved,
    /// Equispaced: a line perpendicular to the central ray (flat panels; ASTRA's `fanflat`).
    Flat,
}

crate::names::named!(Detector, "--detector", {
    Curved => "curved",
    Flat => "flat",
});

/// The arc the source travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scan {
    /// 360 degrees: every line measured twice.
    Full,
    /// 180 degrees plus the fan angle (Parker 1982): every line at least once; FBP weights the
    /// doubly measured ones with Parker's weights.
    Short,
}

crate::names::named!(Scan, "--scan", {
    Full => "full",
    Short => "short",
});

/// A fan-beam scanner around the image: a point source on a circle of radius
/// `source_to_isocentre_mm` about the image centre, the detector `source_to_detector_mm` from the
/// source. Lengths in mm; `pixel_mm` places the image grid in the scanner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanBeam {
    pub source_to_isocentre_mm: f64,
    pub source_to_detector_mm: f64,
    pub detector: Detector,
    /// Bin pitch on the detector (arc length on a curved one).
    pub detector_spacing_mm: f64,
    /// Shift of the detector centre in bins (a quarter-detector offset is 0.25): bin `s` sits
    /// at `s - (n_det - 1) / 2 + detector_offset` bins from the central ray.
    #[serde(default)]
    pub detector_offset: f64,
    pub scan: Scan,
    /// Side of an image pixel in mm.
    pub pixel_mm: f64,
}

/// Parallel or fan beam: what `--geometry` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Beam {
    #[default]
    Parallel,
    Fan,
}

crate::names::named!(Beam, "--geometry", {
    Parallel => "parallel",
    Fan => "fan",
});

/// A fan-beam scanner as a user describes it, before an image grid places it: [`FanBeam`]
/// without the pixel size, the detector sampling optional (default: bins one pixel wide at the
/// isocentre, as many as cover the image).
#[derive(Debug, Clone, PartialEq)]
pub struct FanSpec {
    pub source_to_isocentre_mm: f64,
    pub source_to_detector_mm: f64,
    pub detector: Detector,
    pub detector_spacing_mm: Option<f64>,
    pub n_det: Option<usize>,
    pub detector_offset: f64,
    pub scan: Scan,
}

impl Default for FanSpec {
    /// The typical scanner of [`FanBeam::typical`].
    fn default() -> Self {
        FanSpec {
            source_to_isocentre_mm: DEFAULT_SOURCE_TO_ISOCENTRE_MM,
            source_to_detector_mm: DEFAULT_SOURCE_TO_DETECTOR_MM,
            detector: Detector::Curved,
            detector_spacing_mm: None,
            n_det: None,
            detector_offset: 0.0,
            scan: Scan::Full,
        }
    }
}

impl FanSpec {
    /// The fan-beam geometry of `n_views` over the scan of an `image_size` image of `pixel_mm`
    /// pixels.
    pub fn geometry(&self, image_size: usize, n_views: usize, pixel_mm: f64) -> Result<Geometry> {
        ensure!(
            pixel_mm.is_finite() && pixel_mm > 0.0,
            "fan-beam geometry: pixel size {pixel_mm} mm must be positive"
        );
        let spacing = self
            .detector_spacing_mm
            .unwrap_or(pixel_mm * self.source_to_detector_mm / self.source_to_isocentre_mm);
        let fan = FanBeam {
            source_to_isocentre_mm: self.source_to_isocentre_mm,
            source_to_detector_mm: self.source_to_detector_mm,
            detector: self.detector,
            detector_spacing_mm: spacing,
            detector_offset: self.detector_offset,
            scan: self.scan,
            pixel_mm,
        };
        Geometry::fan(image_size, n_views, self.n_det, fan)
    }
}

/// The CT geometry of `full_views` angles of an `image_size` image: parallel beam over [0, 180)
/// when `fan` is None, else that scanner's fan over its scan.
pub fn ct_geometry(
    image_size: usize,
    full_views: usize,
    fan: Option<&FanSpec>,
    pixel_mm: f64,
) -> Result<Geometry> {
    match fan {
        None => Geometry::new(image_size, full_views),
        Some(f) => f.geometry(image_size, full_views, pixel_mm),
    }
}

/// Source-to-isocentre distance of a typical clinical head/body scanner (Siemens SOMATOM
/// Definition, as in the AAPM low-dose CT data's DICOM-CT-PD headers), mm.
pub const DEFAULT_SOURCE_TO_ISOCENTRE_MM: f64 = 595.0;
/// Its source-to-detector distance, mm.
pub const DEFAULT_SOURCE_TO_DETECTOR_MM: f64 = 1085.6;

impl FanBeam {
    /// The typical scanner's distances and curved detector, with the detector sampled as finely
    /// as the image grid: bins one pixel wide at the isocentre (`pixel_mm` magnified by
    /// `SDD / SID`), full scan, no offset.
    pub fn typical(pixel_mm: f64) -> Self {
        FanBeam {
            source_to_isocentre_mm: DEFAULT_SOURCE_TO_ISOCENTRE_MM,
            source_to_detector_mm: DEFAULT_SOURCE_TO_DETECTOR_MM,
            detector: Detector::Curved,
            detector_spacing_mm: pixel_mm * DEFAULT_SOURCE_TO_DETECTOR_MM
                / DEFAULT_SOURCE_TO_ISOCENTRE_MM,
            detector_offset: 0.0,
            scan: Scan::Full,
            pixel_mm,
        }
    }

    /// Source-to-isocentre distance in pixels.
    pub fn sid(&self) -> f64 {
        self.source_to_isocentre_mm / self.pixel_mm
    }

    /// Source-to-detector distance in pixels.
    pub fn sdd(&self) -> f64 {
        self.source_to_detector_mm / self.pixel_mm
    }

    /// Position of bin `s` in bins from the central ray.
    pub fn bin_position(&self, s: f64, n_det: usize) -> f64 {
        s - (n_det as f64 - 1.0) / 2.0 + self.detector_offset
    }

    /// The fan angle `gamma` (radians, signed) of the ray to bin `s` (fractional bins allowed).
    pub fn gamma(&self, s: f64, n_det: usize) -> f64 {
        let p = self.bin_position(s, n_det) * self.detector_spacing_mm;
        match self.detector {
            Detector::Curved => p / self.source_to_detector_mm,
            Detector::Flat => (p / self.source_to_detector_mm).atan(),
        }
    }

    /// The (fractional) bin of fan angle `gamma`, inverse of [`FanBeam::gamma`].
    pub fn bin_of_gamma(&self, gamma: f64, n_det: usize) -> f64 {
        let p = match self.detector {
            Detector::Curved => gamma * self.source_to_detector_mm,
            Detector::Flat => gamma.tan() * self.source_to_detector_mm,
        };
        p / self.detector_spacing_mm + (n_det as f64 - 1.0) / 2.0 - self.detector_offset
    }

    /// Half the fan angle the detector spans: the largest `|gamma|` of its bin edges.
    pub fn half_fan(&self, n_det: usize) -> f64 {
        self.gamma(-0.5, n_det)
            .abs()
            .max(self.gamma(n_det as f64 - 0.5, n_det).abs())
    }

    /// The arc of the scan in degrees: 360, or 180 plus the fan angle.
    pub fn scan_deg(&self, n_det: usize) -> f64 {
        match self.scan {
            Scan::Full => 360.0,
            Scan::Short => 180.0 + 2.0 * self.half_fan(n_det).to_degrees(),
        }
    }

    /// `n` source angles equally spaced over the scan's arc: `k * arc / n`.
    pub fn angles(&self, n: usize, n_det: usize) -> Vec<f64> {
        let arc = self.scan_deg(n_det);
        (0..n).map(|k| k as f64 * arc / n as f64).collect()
    }

    /// Detector bins that see the whole square image (its circumscribed circle) from every
    /// source angle, for the typical scanner's distances: the smallest even count whose fan
    /// covers `asin(R / SID)` on both sides (plus the offset).
    pub fn covering_n_det(&self, image_size: usize) -> usize {
        let r = image_size as f64 / std::f64::consts::SQRT_2;
        let half = (r / self.sid()).min(1.0).asin();
        let p = match self.detector {
            Detector::Curved => half * self.source_to_detector_mm,
            Detector::Flat => half.tan() * self.source_to_detector_mm,
        } / self.detector_spacing_mm;
        2 * ((p + self.detector_offset.abs() + 1.0).ceil() as usize)
    }

    fn validate(&self, image_size: usize, n_det: usize) -> Result<()> {
        self.validate_lengths()?;
        self.validate_fit(image_size, n_det)
    }

    /// The distances and sizes alone (what the detector count's default needs).
    fn validate_lengths(&self) -> Result<()> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        ensure!(
            pos(self.source_to_isocentre_mm),
            "fan-beam geometry: source-to-isocentre distance {} mm must be positive",
            self.source_to_isocentre_mm
        );
        ensure!(
            pos(self.source_to_detector_mm) && self.source_to_detector_mm > self.source_to_isocentre_mm,
            "fan-beam geometry: source-to-detector distance {} mm must exceed the source-to-isocentre distance {} mm",
            self.source_to_detector_mm,
            self.source_to_isocentre_mm
        );
        ensure!(
            pos(self.detector_spacing_mm),
            "fan-beam geometry: detector spacing {} mm must be positive",
            self.detector_spacing_mm
        );
        ensure!(
            pos(self.pixel_mm),
            "fan-beam geometry: pixel size {} mm must be positive",
            self.pixel_mm
        );
        Ok(())
    }

    /// The detector and the image inside the scanner.
    fn validate_fit(&self, image_size: usize, n_det: usize) -> Result<()> {
        ensure!(
            self.detector_offset.is_finite() && self.detector_offset.abs() < n_det as f64 / 2.0,
            "fan-beam geometry: detector offset {} bins is not inside the {n_det}-bin detector",
            self.detector_offset
        );
        // The source must stay outside the image: the projector follows each ray across the
        // whole grid.
        let r_mm = image_size as f64 / std::f64::consts::SQRT_2 * self.pixel_mm;
        ensure!(
            self.source_to_isocentre_mm > r_mm,
            "fan-beam geometry: the source ({} mm from the centre) is inside the {image_size}x{image_size} image of {} mm pixels (corner at {r_mm:.1} mm)",
            self.source_to_isocentre_mm,
            self.pixel_mm
        );
        let half = self.half_fan(n_det);
        ensure!(
            half < std::f64::consts::FRAC_PI_2 * 0.95,
            "fan-beam geometry: a fan of {:.1} degrees; the detector spans too wide an angle",
            2.0 * half.to_degrees()
        );
        // The field of view (the circle every view sees) must hold the image's inscribed
        // circle, where the body is: else FBP truncates every projection.
        let fov_mm = self.source_to_isocentre_mm
            * self
                .gamma(-0.5, n_det)
                .abs()
                .min(self.gamma(n_det as f64 - 0.5, n_det).abs())
                .sin();
        let need_mm = image_size as f64 / 2.0 * self.pixel_mm;
        ensure!(
            fov_mm >= need_mm * 0.999,
            "fan-beam geometry: the detector ({n_det} bins of {} mm) sees a field of view of radius {fov_mm:.1} mm, smaller than the image's {need_mm:.1} mm; give more bins or a wider spacing",
            self.detector_spacing_mm
        );
        Ok(())
    }
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
            fan: None,
        };
        g.validate()?;
        Ok(g)
    }

    /// A fan-beam scan of an `image_size x image_size` image: `n_views` source angles over the
    /// scan's arc, `n_det` bins (None: [`FanBeam::covering_n_det`]), line integrals in pixel
    /// units.
    pub fn fan(
        image_size: usize,
        n_views: usize,
        n_det: Option<usize>,
        fan: FanBeam,
    ) -> Result<Self> {
        fan.validate_lengths()?;
        ensure!(
            n_views >= 1,
            "CT geometry: zero views; give at least one projection angle"
        );
        let n_det = n_det.unwrap_or_else(|| fan.covering_n_det(image_size));
        let g = Geometry {
            image_size,
            n_det,
            pixel_size: 1.0,
            angles_deg: fan.angles(n_views, n_det),
            fan: Some(fan),
        };
        g.validate()?;
        Ok(g)
    }

    /// The arc the angles sample in degrees: 180 for parallel beam, the scan's for fan beam.
    pub fn arc_deg(&self) -> f64 {
        self.fan.as_ref().map_or(180.0, |f| f.scan_deg(self.n_det))
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
        if let Some(f) = &self.fan {
            f.validate(self.image_size, self.n_det)?;
            // Parker's weights are zero outside the short scan's arc: views there would be
            // silently dropped, so angles that do not fit it are an error.
            let arc = f.scan_deg(self.n_det);
            let a0 = self.angles_deg[0];
            let span = self
                .angles_deg
                .iter()
                .map(|a| a - a0)
                .fold(0.0f64, |m, d| m.max(d.abs()));
            ensure!(
                span <= arc + 1e-6 && self.angles_deg.iter().all(|&a| a >= a0),
                "fan-beam geometry: the angles span {span:.2} degrees from {a0}, beyond the {:?} scan's {arc:.2} (angles must run upwards from the first one)",
                f.scan
            );
        }
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
/// full set (angles taken modulo 180 in parallel beam; pass [`limited_angle_rows_over`] the
/// scan's arc for fan beam).
pub fn limited_angle_rows(
    angles_deg: &[f64],
    start_deg: f64,
    wedge_deg: f64,
) -> Result<Vec<usize>> {
    limited_angle_rows_over(angles_deg, start_deg, wedge_deg, 180.0)
}

/// [`limited_angle_rows`] with angles taken modulo `arc_deg` (360 for a full fan-beam scan).
pub fn limited_angle_rows_over(
    angles_deg: &[f64],
    start_deg: f64,
    wedge_deg: f64,
    arc_deg: f64,
) -> Result<Vec<usize>> {
    ensure!(
        wedge_deg.is_finite() && wedge_deg > 0.0 && wedge_deg <= arc_deg,
        "--wedge {wedge_deg}: the wedge must be in (0, {arc_deg}] degrees"
    );
    ensure!(
        start_deg.is_finite(),
        "wedge start {start_deg} is not a number"
    );
    let rows: Vec<usize> = angles_deg
        .iter()
        .enumerate()
        .filter(|(_, a)| (*a - start_deg).rem_euclid(arc_deg.max(180.0)) < wedge_deg)
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
