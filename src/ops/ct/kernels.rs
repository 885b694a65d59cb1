//! The host kernels of the Joseph projector (`Radon`): one shared description of an angle's rays
//! (`AngleParams`), the scalar gather/scatter along a padded image line, and the AVX2 forward
//! kernel; for fan beam, where every ray has its own direction, one description of a ray
//! (`RayParams`) and its gather/scatter over the same padded planes. `Radon` in radon.rs drives
//! them over angles and images.

/// One angle's rays, in the frame of the image axis they step along.
///
/// Ray `s` crosses step `k` (a row, or a column of the transposed image) at the position
/// `pos = base(k) + s * slope` along the interpolated axis, `base(k) = offset + k * shear`.
#[derive(Debug, Clone, Copy)]
pub(super) struct AngleParams {
    /// Step along columns: walk the transposed image.
    pub(super) transposed: bool,
    pub(super) offset: f64,
    pub(super) shear: f64,
    pub(super) slope: f64,
    /// `1 / slope` (`cos` or `-sin`), so `span` multiplies instead of dividing.
    pub(super) inv_slope: f64,
    /// Path length of one step, `1 / |cos|` of the angle to the stepped axis, times the pixel size.
    pub(super) weight: f32,
}

impl AngleParams {
    pub(super) fn new(theta_deg: f64, n: usize, n_det: usize, pixel_size: f64) -> Self {
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
            inv_slope: 1.0 / slope,
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
    pub(super) fn span(&self, n: usize, n_det: usize, k: usize) -> (f32, f32, usize, usize) {
        let base = self.offset + k as f64 * self.shear;
        let a = (-1.0 - base) * self.inv_slope;
        let b = (n as f64 - base) * self.inv_slope;
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
pub(super) fn gather_line(sino: &mut [f32], line: &[f32], start: f32, slope: f32, s0: usize) {
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
pub(super) fn scatter_line(line: &mut [f32], y: &[f32], start: f32, slope: f32, s0: usize) {
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
pub(super) fn project_angle(p: &AngleParams, plane: &[f32], n: usize, sino: &mut [f32]) {
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

/// [`project_angle`] 8 bins at a time with AVX2; same positions and weights.
///
/// Neighbouring bins are `|slope| <= sqrt(2)` pixels apart, so 8 bins read pixels within 12 of
/// the smallest: two 8-pixel loads from there and in-register permutes replace the gathers,
/// which are slow on many x86 cores. The plane ends with `WINDOW_PAD` zeros so the loads stay
/// inside it; lanes only ever select pixels of their own line.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn project_angle_avx2(
    p: &AngleParams,
    plane: &[f32],
    n: usize,
    sino: &mut [f32],
) {
    use std::arch::x86_64::*;
    debug_assert!(plane.len() >= n * (n + 2) + WINDOW_PAD);
    let n_det = sino.len();
    let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let (one, seven) = (_mm256_set1_epi32(1), _mm256_set1_epi32(7));
    for k in 0..n {
        let (start, slope, s0, s1) = p.span(n, n_det, k);
        let line = plane.as_ptr().add(k * (n + 2));
        let (vstart, vslope) = (_mm256_set1_ps(start), _mm256_set1_ps(slope));
        let mut s = s0;
        while s + 8 <= s1 {
            // t = start + s * slope, rounded as the scalar code rounds it.
            let idx = _mm256_add_ps(_mm256_set1_ps(s as f32), lanes);
            let t = _mm256_add_ps(vstart, _mm256_mul_ps(idx, vslope));
            let i = _mm256_cvttps_epi32(t);
            let f = _mm256_sub_ps(t, _mm256_cvtepi32_ps(i));
            // Positions are monotonic: the smallest pixel is in the first lane, or the last
            // when slope < 0.
            let imin = if slope > 0.0 {
                _mm256_cvtsi256_si32(i)
            } else {
                _mm256_extract_epi32::<7>(i)
            };
            let d = _mm256_sub_epi32(i, _mm256_set1_epi32(imin));
            let d1 = _mm256_add_epi32(d, one);
            // SAFETY: `span` keeps 0 < t < n + 1, so 0 <= imin <= n and the loads end by
            // imin + 16 <= n * (n + 2) + WINDOW_PAD from the plane's start.
            let w = line.add(imin as usize);
            let (lo, hi) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
            // permutevar uses the low 3 bits of each index: lanes with d > 7 take `hi`.
            let a = _mm256_blendv_ps(
                _mm256_permutevar8x32_ps(lo, d),
                _mm256_permutevar8x32_ps(hi, d),
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(d, seven)),
            );
            let b = _mm256_blendv_ps(
                _mm256_permutevar8x32_ps(lo, d1),
                _mm256_permutevar8x32_ps(hi, d1),
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(d1, seven)),
            );
            let v = _mm256_fmadd_ps(f, _mm256_sub_ps(b, a), a);
            let out = sino.as_mut_ptr().add(s);
            _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), v));
            s += 8;
        }
        let line = &plane[k * (n + 2)..(k + 1) * (n + 2)];
        gather_line(&mut sino[s..s1], line, start, slope, s);
    }
    for v in sino.iter_mut() {
        *v *= p.weight;
    }
}

/// One fan-beam ray, in the frame of the image axis it steps along (Joseph 1982, as
/// [`AngleParams`] for a whole parallel view): at step `k` (row `k`, or column `k` when
/// `transposed`) it crosses the other axis at `t(k) - 1` with `t(k) = start + k * shear`, for
/// `k` in `k0..k1`, the steps where `0 < t < n + 1` (inside the line padded with a zero on each
/// side); it reads pixels `floor(t) - 1` and `floor(t)` with weights `1 - frac(t)` and
/// `frac(t)`, times `weight`. This is the one definition of a fan-beam matrix entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct RayParams {
    pub(super) transposed: bool,
    pub(super) start: f32,
    pub(super) shear: f32,
    pub(super) k0: u32,
    pub(super) k1: u32,
    /// Path length of one step, `1 / |cos|` of the angle to the stepped axis, times the pixel size.
    pub(super) weight: f32,
}

impl RayParams {
    /// The ray through `source` (pixel coordinates `(i, j)`: column, row) along `dir` (unit) in an
    /// `n x n` image.
    pub(super) fn new(source: (f64, f64), dir: (f64, f64), n: usize, pixel_size: f64) -> Self {
        let (si, sj) = source;
        let (di, dj) = dir;
        // Step the axis the ray runs closest to, so each step moves at most one pixel across.
        let (transposed, s_step, s_other, d_step, d_other) = if dj.abs() >= di.abs() {
            (false, sj, si, dj, di)
        } else {
            (true, si, sj, di, dj)
        };
        let shear = d_other / d_step;
        let offset = s_other - s_step * shear;
        let (start, shear32) = ((offset + 1.0) as f32, shear as f32);
        // Steps with -1 < offset + k shear < n, then trimmed with the kernels' own expression.
        let (lo, hi) = if shear.abs() < 1e-12 {
            if offset > -1.0 && offset < n as f64 {
                (0.0, n as f64)
            } else {
                (0.0, 0.0)
            }
        } else {
            let a = (-1.0 - offset) / shear;
            let b = (n as f64 - offset) / shear;
            (a.min(b), a.max(b))
        };
        let mut k0 = (lo.floor().max(0.0) as usize).min(n);
        let mut k1 = ((hi.ceil() + 1.0).max(0.0) as usize).min(n);
        let inside = |k: usize| {
            let t = start + k as f32 * shear32;
            t > 0.0 && t < (n + 1) as f32
        };
        while k0 < k1 && !inside(k0) {
            k0 += 1;
        }
        while k1 > k0 && !inside(k1 - 1) {
            k1 -= 1;
        }
        RayParams {
            transposed,
            start,
            shear: shear32,
            k0: k0 as u32,
            k1: k1 as u32,
            weight: (pixel_size / d_step.abs()) as f32,
        }
    }
}

/// The line integral of one ray over a plane of padded lines (`n + 2` each): the image for a
/// row-stepping ray, its transpose for a column-stepping one.
#[inline(always)]
pub(super) fn gather_ray(r: &RayParams, plane: &[f32], n: usize) -> f32 {
    let mut acc = 0f32;
    for k in r.k0 as usize..r.k1 as usize {
        let t = r.start + k as f32 * r.shear;
        let i = t as usize; // t > 0: truncation is floor
        let f = t - i as f32;
        let line = &plane[k * (n + 2)..(k + 1) * (n + 2)];
        // SAFETY: `RayParams::new` keeps 0 < t < n + 1, so i + 1 <= n + 1 < line.len().
        let (a, b) = unsafe { (*line.get_unchecked(i), *line.get_unchecked(i + 1)) };
        acc += a + f * (b - a);
    }
    acc * r.weight
}

/// The transpose of [`gather_ray`]: spread `v` along the ray with the same weights.
#[inline(always)]
pub(super) fn scatter_ray(r: &RayParams, plane: &mut [f32], n: usize, v: f32) {
    let v = v * r.weight;
    for k in r.k0 as usize..r.k1 as usize {
        let t = r.start + k as f32 * r.shear;
        let i = t as usize;
        let f = t - i as f32;
        let line = &mut plane[k * (n + 2)..(k + 1) * (n + 2)];
        line[i] += v - f * v;
        line[i + 1] += f * v;
    }
}

/// Zeros after the last padded line of a plane, for the vector kernel's 16-pixel windows.
pub(super) const WINDOW_PAD: usize = 16;

pub(super) fn project_angle_dispatch(
    p: &AngleParams,
    plane: &[f32],
    n: usize,
    sino: &mut [f32],
    simd: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has the features the function was compiled for.
        return unsafe { project_angle_avx2(p, plane, n, sino) };
    }
    project_angle(p, plane, n, sino)
}
pub(super) fn transpose(a: &[f32], n: usize) -> Vec<f32> {
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

/// `n` lines of `n` as `n` lines of `n + 2` with a zero at each end, then `WINDOW_PAD` zeros.
pub(super) fn padded_lines(a: &[f32], n: usize) -> Vec<f32> {
    let mut p = vec![0f32; n * (n + 2) + WINDOW_PAD];
    for (dst, src) in p.chunks_mut(n + 2).zip(a.chunks(n)) {
        dst[1..=n].copy_from_slice(src);
    }
    p
}

pub(super) fn unpadded_lines(p: &[f32], n: usize) -> Vec<f32> {
    p.chunks(n + 2)
        .flat_map(|l| l[1..=n].iter().copied())
        .collect()
}

pub(super) fn add_assign(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
