//! Parallel-beam CT: the geometry, the angle subsets of the CT tasks, and the Joseph projector
//! `T` (Radon transform over the full angle set) with its exact transpose `T^T`.
//!
//! Conventions (docs/operators.md), chosen to match scikit-image's `radon(image, theta,
//! circle=False)` so arrays compare directly:
//! - the image is `N x N`, pixel `(row j, column i)`, rotation centre at pixel `(N/2, N/2)`
//!   (integer division);
//! - angle `theta` in degrees; the detector coordinate of a point is
//!   `u = (i - N/2) cos theta - (j - N/2) sin theta` in pixels, and detector bin `s` sits at
//!   `u = s - n_det/2` (bins one pixel wide, `n_det` defaults to `ceil(sqrt(2) N)`);
//! - sinograms are `[B, 1, n_angles, n_det]` (scikit-image returns the transpose);
//! - line integrals are in pixel units times `pixel_size` (1 by default; the pixel spacing in
//!   mm gives mm).
//!
//! The projector and its transpose walk one shared description of the rays (`AngleParams` and
//! `AngleParams::span`): a ray steps one pixel at a time along the image axis closest to its
//! direction and interpolates linearly across the other axis (Joseph 1982), with weight
//! `1 / |cos|` of the angle between the ray and that axis. `forward` gathers with those weights,
//! `adjoint` scatters with the very same weights, so `<T x, y> = <x, T^T y>` holds up to float
//! rounding by construction.

use super::fbp::{self, Filter};
use super::Transform;
use anyhow::{bail, ensure, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

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

/// One angle's rays, in the frame of the image axis they step along.
///
/// Ray `s` crosses step `k` (a row, or a column of the transposed image) at the position
/// `pos = base(k) + s * slope` along the interpolated axis, `base(k) = offset + k * shear`.
#[derive(Debug, Clone, Copy)]
struct AngleParams {
    /// Step along columns: walk the transposed image.
    transposed: bool,
    offset: f64,
    shear: f64,
    slope: f64,
    /// Path length of one step, `1 / |cos|` of the angle to the stepped axis, times the pixel size.
    weight: f32,
}

impl AngleParams {
    fn new(theta_deg: f64, n: usize, n_det: usize, pixel_size: f64) -> Self {
        let (sin, cos) = theta_deg.to_radians().sin_cos();
        let c = (n / 2) as f64;
        let sc = (n_det / 2) as f64;
        // A point at detector offset u and ray parameter v is (i, j) = c + (cos u + sin v,
        // -sin u + cos v). Row j: i = c + u / cos + tan (j - c). Column i: j = c - u / sin +
        // cot (i - c).
        let (transposed, slope, shear, step) = if cos.abs() >= sin.abs() {
            (false, 1.0 / cos, sin / cos, cos.abs())
        } else {
            (true, -1.0 / sin, cos / sin, sin.abs())
        };
        AngleParams {
            transposed,
            offset: c - c * shear - sc * slope,
            shear,
            slope,
            weight: (pixel_size / step) as f32,
        }
    }

    /// The bins `s0..s1` whose ray crosses step `k` strictly inside `(-1, n)` along the
    /// interpolated axis, and that crossing as `t(s) = start + s * slope = pos(s) + 1`: the
    /// position in a line padded with one zero on each side (`padded_line`). Every bin outside
    /// misses the line; inside, the ray reads pixels `floor(t) - 1` and `floor(t)` with weights
    /// `1 - frac(t)` and `frac(t)`. This, with `weight`, is the one definition of the
    /// projector's matrix entries.
    #[inline]
    fn span(&self, n: usize, n_det: usize, k: usize) -> (f32, f32, usize, usize) {
        let base = self.offset + k as f64 * self.shear;
        let a = (-1.0 - base) / self.slope;
        let b = (n as f64 - base) / self.slope;
        let mut s0 = (a.min(b).floor().max(0.0) as usize).min(n_det);
        let mut s1 = ((a.max(b).ceil() + 1.0).max(0.0) as usize).min(n_det);
        let (start, slope) = ((base + 1.0) as f32, self.slope as f32);
        // Trim with the very expression the kernels evaluate, so no bin reads outside the
        // padded line whatever the rounding.
        let inside = |s: usize| {
            let t = start + s as f32 * slope;
            t > 0.0 && t < (n + 1) as f32
        };
        while s0 < s1 && !inside(s0) {
            s0 += 1;
        }
        while s1 > s0 && !inside(s1 - 1) {
            s1 -= 1;
        }
        (start, slope, s0, s1)
    }
}

/// `sino[s] += (1 - frac t) line[floor t] + frac t line[floor t + 1]` for `t = start + s slope`,
/// over a line padded with a zero on each side.
#[inline(always)]
fn gather_line(sino: &mut [f32], line: &[f32], start: f32, slope: f32, s0: usize) {
    for (ds, out) in sino.iter_mut().enumerate() {
        let t = start + (s0 + ds) as f32 * slope;
        let i = t as usize; // t > 0: truncation is floor
        let f = t - i as f32;
        // SAFETY: `span` keeps 0 < t < n + 1, so i + 1 <= n + 1 < line.len() = n + 2.
        let (a, b) = unsafe { (*line.get_unchecked(i), *line.get_unchecked(i + 1)) };
        *out += a + f * (b - a);
    }
}

/// The transpose of [`gather_line`]: `line[floor t] += (1 - frac t) y[s]`,
/// `line[floor t + 1] += frac t y[s]`.
#[inline(always)]
fn scatter_line(line: &mut [f32], y: &[f32], start: f32, slope: f32, s0: usize) {
    for (ds, v) in y.iter().enumerate() {
        let t = start + (s0 + ds) as f32 * slope;
        let i = t as usize;
        let f = t - i as f32;
        line[i] += v - f * v;
        line[i + 1] += f * v;
    }
}

/// One angle of the forward projection: every step of the plane (`n` padded lines).
#[inline(always)]
fn project_angle(p: &AngleParams, plane: &[f32], n: usize, sino: &mut [f32]) {
    let n_det = sino.len();
    for k in 0..n {
        let (start, slope, s0, s1) = p.span(n, n_det, k);
        let line = &plane[k * (n + 2)..(k + 1) * (n + 2)];
        gather_line(&mut sino[s0..s1], line, start, slope, s0);
    }
    for v in sino.iter_mut() {
        *v *= p.weight;
    }
}

/// [`project_angle`] reading 8 bins at a time with AVX2 gathers; same positions and weights.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn project_angle_avx2(p: &AngleParams, plane: &[f32], n: usize, sino: &mut [f32]) {
    use std::arch::x86_64::*;
    let n_det = sino.len();
    let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    for k in 0..n {
        let (start, slope, s0, s1) = p.span(n, n_det, k);
        let line = &plane[k * (n + 2)..(k + 1) * (n + 2)];
        let (vstart, vslope) = (_mm256_set1_ps(start), _mm256_set1_ps(slope));
        let mut s = s0;
        while s + 8 <= s1 {
            // t = start + s * slope, rounded as the scalar code rounds it.
            let idx = _mm256_add_ps(_mm256_set1_ps(s as f32), lanes);
            let t = _mm256_add_ps(vstart, _mm256_mul_ps(idx, vslope));
            let i = _mm256_cvttps_epi32(t);
            let f = _mm256_sub_ps(t, _mm256_cvtepi32_ps(i));
            // SAFETY: `span` keeps 0 < t < n + 1, so i + 1 < line.len() = n + 2.
            let a = _mm256_i32gather_ps::<4>(line.as_ptr(), i);
            let b = _mm256_i32gather_ps::<4>(line.as_ptr().add(1), i);
            let v = _mm256_fmadd_ps(f, _mm256_sub_ps(b, a), a);
            let out = sino.as_mut_ptr().add(s);
            _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), v));
            s += 8;
        }
        gather_line(&mut sino[s..s1], line, start, slope, s);
    }
    for v in sino.iter_mut() {
        *v *= p.weight;
    }
}

fn project_angle_dispatch(p: &AngleParams, plane: &[f32], n: usize, sino: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::fbp::avx2_available() {
        // SAFETY: the CPU has the features the function was compiled for.
        return unsafe { project_angle_avx2(p, plane, n, sino) };
    }
    project_angle(p, plane, n, sino)
}

/// The Radon transform over a geometry's angles: `T` for CT.
pub struct Radon {
    geometry: Geometry,
    params: Vec<AngleParams>,
}

impl Radon {
    pub fn new(geometry: Geometry) -> Result<Self> {
        geometry.validate()?;
        let params = geometry
            .angles_deg
            .iter()
            .map(|&a| AngleParams::new(a, geometry.image_size, geometry.n_det, geometry.pixel_size))
            .collect();
        Ok(Radon { geometry, params })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Check that `x` is a batch of images this operator takes.
    pub fn check_image(&self, x: &Tensor) -> Result<()> {
        let n = self.geometry.image_size as i64;
        let s = x.size();
        if s.len() != 4 || s[1] != 1 || s[2] != n || s[3] != n {
            bail!(
                "CT projector for {n}x{n} images: got a tensor of shape {s:?} (expected [B, 1, {n}, {n}]; \
                 the parallel-beam operator needs square images of the geometry's size)"
            );
        }
        Ok(())
    }

    /// Check that `y` is a batch of sinograms of this geometry.
    pub fn check_sinogram(&self, y: &Tensor) -> Result<()> {
        let (a, d) = (self.geometry.n_angles() as i64, self.geometry.n_det as i64);
        let s = y.size();
        if s.len() != 4 || s[1] != 1 || s[2] != a || s[3] != d {
            bail!(
                "CT sinogram: got shape {s:?}, expected [B, 1, {a}, {d}] (angles x detector bins)"
            );
        }
        Ok(())
    }

    /// Forward projection of host images (`b` images of `n * n`, row major) into sinograms.
    pub fn project(&self, images: &[f32], b: usize) -> Vec<f32> {
        let n = self.geometry.image_size;
        let n_det = self.geometry.n_det;
        let n_ang = self.params.len();
        assert_eq!(images.len(), b * n * n, "project: image buffer size");
        // Each image and its transpose, lines padded with a zero on each side: row-stepping
        // angles read the image, column-stepping angles its transpose, both along memory.
        let planes: Vec<(Vec<f32>, Vec<f32>)> = (0..b)
            .into_par_iter()
            .map(|bi| {
                let img = &images[bi * n * n..(bi + 1) * n * n];
                (padded_lines(img, n), padded_lines(&transpose(img, n), n))
            })
            .collect();
        let mut out = vec![0f32; b * n_ang * n_det];
        out.par_chunks_mut(n_det)
            .enumerate()
            .for_each(|(row, sino)| {
                let (bi, a) = (row / n_ang, row % n_ang);
                let p = &self.params[a];
                let plane = if p.transposed {
                    &planes[bi].1
                } else {
                    &planes[bi].0
                };
                project_angle_dispatch(p, plane, n, sino);
            });
        out
    }

    /// The exact transpose of [`Radon::project`]: scatter every sinogram bin back along its
    /// ray with the same weights. Angles are split between threads, each with its own image
    /// accumulator (one for row-stepping angles, one transposed for column-stepping angles).
    pub fn backproject(&self, sinograms: &[f32], b: usize) -> Vec<f32> {
        let n = self.geometry.image_size;
        let n_det = self.geometry.n_det;
        let n_ang = self.params.len();
        assert_eq!(
            sinograms.len(),
            b * n_ang * n_det,
            "backproject: sinogram buffer size"
        );
        let chunk = n_ang.div_ceil(2 * rayon::current_num_threads()).max(1);
        let mut out = vec![0f32; b * n * n];
        for (bi, image) in out.chunks_mut(n * n).enumerate() {
            let sino = &sinograms[bi * n_ang * n_det..(bi + 1) * n_ang * n_det];
            let (rows, cols) = (0..n_ang)
                .into_par_iter()
                .with_min_len(chunk)
                .fold(
                    || (vec![0f32; n * (n + 2)], vec![0f32; n * (n + 2)]),
                    |(mut rows, mut cols), a| {
                        let p = &self.params[a];
                        let plane = if p.transposed { &mut cols } else { &mut rows };
                        let y: Vec<f32> = sino[a * n_det..(a + 1) * n_det]
                            .iter()
                            .map(|v| v * p.weight)
                            .collect();
                        for k in 0..n {
                            let (start, slope, s0, s1) = p.span(n, n_det, k);
                            let line = &mut plane[k * (n + 2)..(k + 1) * (n + 2)];
                            scatter_line(line, &y[s0..s1], start, slope, s0);
                        }
                        (rows, cols)
                    },
                )
                .reduce(
                    || (vec![0f32; n * (n + 2)], vec![0f32; n * (n + 2)]),
                    |(mut r1, mut c1), (r2, c2)| {
                        add_assign(&mut r1, &r2);
                        add_assign(&mut c1, &c2);
                        (r1, c1)
                    },
                );
            // Drop the padding (it only ever meets the zeros around the image), then
            // transpose the column-stepping part back.
            let (rows, cols) = (
                unpadded_lines(&rows, n),
                transpose(&unpadded_lines(&cols, n), n),
            );
            for ((o, r), c) in image.iter_mut().zip(&rows).zip(&cols) {
                *o = r + c;
            }
        }
        out
    }

    /// Filtered back projection of sinograms `[B, 1, n_angles, n_det]` using only the angle
    /// rows `rows` (all of them for `T^-1`; the measured ones for sparse-view or limited-angle
    /// data), scikit-image's construction (see `fbp`).
    pub fn fbp(&self, sinogram: &Tensor, filter: Filter, rows: &[usize]) -> Result<Tensor> {
        self.check_sinogram(sinogram)?;
        let (host, b, device, kind) = to_host(sinogram);
        let img = fbp::fbp(&self.geometry, &host, b, filter, rows)?;
        let n = self.geometry.image_size as i64;
        Ok(from_host(&img, [b as i64, 1, n, n], device, kind))
    }
}

impl Transform for Radon {
    fn forward(&self, x: &Tensor) -> Tensor {
        if let Err(e) = self.check_image(x) {
            panic!("{e}");
        }
        let (host, b, device, kind) = to_host(x);
        let sino = self.project(&host, b);
        let (a, d) = (self.geometry.n_angles() as i64, self.geometry.n_det as i64);
        from_host(&sino, [b as i64, 1, a, d], device, kind)
    }

    fn adjoint(&self, y: &Tensor) -> Tensor {
        if let Err(e) = self.check_sinogram(y) {
            panic!("{e}");
        }
        let (host, b, device, kind) = to_host(y);
        let img = self.backproject(&host, b);
        let n = self.geometry.image_size as i64;
        from_host(&img, [b as i64, 1, n, n], device, kind)
    }

    /// FBP (ramp filter) over the full angle set.
    fn inverse(&self, y: &Tensor) -> Tensor {
        let rows: Vec<usize> = (0..self.geometry.n_angles()).collect();
        self.fbp(y, Filter::Ramp, &rows)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// FBP (ramp filter) over the angles with any measured bin, at their own `pi / (2 n)` scale.
    fn inverse_masked(&self, y: &Tensor, mask: &Tensor) -> Tensor {
        let measured = mask
            .sum_dim_intlist(&[0i64, 1, 3][..], false, Kind::Float)
            .gt(0.0);
        let measured = Vec::<bool>::try_from(measured.to_device(Device::Cpu)).unwrap_or_default();
        let rows: Vec<usize> = (0..measured.len()).filter(|&i| measured[i]).collect();
        self.fbp(&(y * mask), Filter::Ramp, &rows)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn image_shape(&self) -> [i64; 2] {
        let n = self.geometry.image_size as i64;
        [n, n]
    }

    fn measurement_shape(&self) -> [i64; 2] {
        [self.geometry.n_angles() as i64, self.geometry.n_det as i64]
    }

    fn describe(&self) -> String {
        let g = &self.geometry;
        format!(
            "parallel-beam Radon (Joseph), {0}x{0} image, {1} angles over [0, 180) deg, {2} detector bins",
            g.image_size,
            g.n_angles(),
            g.n_det
        )
    }
}

/// A real tensor as host f32 plus what is needed to send a result back where it came from.
fn to_host(t: &Tensor) -> (Vec<f32>, usize, Device, Kind) {
    let b = t.size()[0] as usize;
    let kind = t.kind();
    let device = t.device();
    let v = Vec::<f32>::try_from(
        t.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .flatten(0, -1),
    )
    .expect("a float tensor converts to Vec<f32>");
    (v, b, device, kind)
}

/// Host f32 back to a tensor of `shape` on `device`, in the input's floating kind.
fn from_host(v: &[f32], shape: [i64; 4], device: Device, kind: Kind) -> Tensor {
    let t = Tensor::from_slice(v).reshape(shape);
    let t = if kind == Kind::Double {
        t.to_kind(Kind::Double)
    } else {
        t
    };
    t.to_device(device)
}

fn transpose(a: &[f32], n: usize) -> Vec<f32> {
    let mut t = vec![0f32; n * n];
    const TILE: usize = 32;
    for j0 in (0..n).step_by(TILE) {
        for i0 in (0..n).step_by(TILE) {
            for j in j0..(j0 + TILE).min(n) {
                for i in i0..(i0 + TILE).min(n) {
                    t[i * n + j] = a[j * n + i];
                }
            }
        }
    }
    t
}

/// `n` lines of `n` as `n` lines of `n + 2` with a zero at each end.
fn padded_lines(a: &[f32], n: usize) -> Vec<f32> {
    let mut p = vec![0f32; n * (n + 2)];
    for (dst, src) in p.chunks_mut(n + 2).zip(a.chunks(n)) {
        dst[1..=n].copy_from_slice(src);
    }
    p
}

fn unpadded_lines(p: &[f32], n: usize) -> Vec<f32> {
    p.chunks(n + 2)
        .flat_map(|l| l[1..=n].iter().copied())
        .collect()
}

fn add_assign(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::inner;

    #[test]
    fn adjoint_matches_on_random_inputs() {
        tch::manual_seed(3);
        for (n, views) in [(16usize, 7usize), (33, 20), (64, 180)] {
            let r = Radon::new(Geometry::new(n, views).unwrap()).unwrap();
            let x = Tensor::randn([2, 1, n as i64, n as i64], (Kind::Float, Device::Cpu));
            let [a, d] = r.measurement_shape();
            let y = Tensor::randn([2, 1, a, d], (Kind::Float, Device::Cpu));
            let lhs = inner(&r.forward(&x), &y);
            let rhs = inner(&x, &r.adjoint(&y));
            assert!(
                (lhs - rhs).abs() / lhs.abs() < 1e-5,
                "n={n}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn constant_image_projects_to_its_chord_lengths() {
        // A disc of radius R has the chord 2 sqrt(R^2 - u^2) at every angle.
        let n = 128usize;
        let g = Geometry::new(n, 12).unwrap();
        let r = Radon::new(g.clone()).unwrap();
        let c = (n / 2) as f64;
        let rad = 40.0;
        let img: Vec<f32> = (0..n * n)
            .map(|p| {
                let (j, i) = ((p / n) as f64 - c, (p % n) as f64 - c);
                if i * i + j * j <= rad * rad {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let sino = r.project(&img, 1);
        let sc = (g.n_det / 2) as f64;
        for a in 0..12 {
            for s in [sc as usize, sc as usize + 20, sc as usize - 30] {
                let u = s as f64 - sc;
                let chord = 2.0 * (rad * rad - u * u).sqrt();
                let got = sino[a * g.n_det + s] as f64;
                assert!(
                    (got - chord).abs() < 1.5,
                    "angle {a} bin {s}: {got} vs {chord}"
                );
            }
        }
    }

    #[test]
    fn subsets_and_bad_parameters() {
        assert_eq!(&sparse_view_rows(180, 23).unwrap()[..4], &[0, 7, 15, 23]);
        assert!(sparse_view_rows(180, 0).is_err());
        assert!(sparse_view_rows(180, 181).is_err());
        assert_eq!(
            limited_angle_rows(&full_angles(180), 0.0, 90.0)
                .unwrap()
                .len(),
            90
        );
        assert!(limited_angle_rows(&full_angles(180), 0.0, 0.0).is_err());
        assert!(Geometry::new(64, 0).is_err());
        assert!(Geometry::new(64, 10)
            .unwrap()
            .with_pixel_size(-1.0)
            .is_err());
        let r = Radon::new(Geometry::new(8, 4).unwrap()).unwrap();
        let e = r.check_image(&Tensor::zeros([1, 1, 8, 9], (Kind::Float, Device::Cpu)));
        assert!(e.unwrap_err().to_string().contains("square"));
    }
}
