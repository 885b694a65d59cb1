//! Filtered back projection, following scikit-image's `iradon(..., circle=False,
//! interpolation="linear")` step by step so the two can be compared array to array:
//!
//! 1. zero-pad each projection to `max(64, 2^ceil(log2(2 n_det)))` bins;
//! 2. multiply its FFT by the ramp built from the spatial Ram-Lak kernel (Kak & Slaney,
//!    ch. 3 eq. 61), optionally windowed (Shepp-Logan, cosine, Hamming, Hann);
//! 3. back-project pixel-driven: every pixel centre reads the filtered projection at its
//!    detector coordinate by linear interpolation (zero outside the detector);
//! 4. scale by `pi / (2 n_angles)`, divided by the pixel size when line integrals carry one.
//!
//! The back projection is pixel-driven (what iradon does) rather than the Joseph transpose: it
//! is the interpolation FBP's derivation asks for, it makes the comparison with scikit-image
//! exact up to float rounding, and it costs one interpolation per pixel and angle.

use super::radon::Geometry;
use anyhow::{ensure, Result};
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::num_complex::Complex;
use serde::{Deserialize, Serialize};

/// The frequency windows of scikit-image's `iradon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    Ramp,
    SheppLogan,
    Cosine,
    Hamming,
    Hann,
}

impl Filter {
    pub const ALL: [Filter; 5] = [
        Filter::Ramp,
        Filter::SheppLogan,
        Filter::Cosine,
        Filter::Hamming,
        Filter::Hann,
    ];

    /// scikit-image's name for the filter.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Ramp => "ramp",
            Filter::SheppLogan => "shepp-logan",
            Filter::Cosine => "cosine",
            Filter::Hamming => "hamming",
            Filter::Hann => "hann",
        }
    }
}

/// Length of the zero-padded projections: `max(64, 2^ceil(log2(2 n_det)))`.
pub fn padded_size(n_det: usize) -> usize {
    (2 * n_det).next_power_of_two().max(64)
}

/// The filter over the `size` FFT bins, as scikit-image's `_get_fourier_filter` builds it.
///
/// The ramp is `2 Re FFT(h)` of the spatial Ram-Lak kernel `h[0] = 1/4`, `h[n] = -1/(pi n)^2`
/// for odd `n` (Kak & Slaney eq. 61), which removes the DC bias of sampling `|f|` directly.
pub fn fourier_filter(size: usize, filter: Filter) -> Vec<f64> {
    use std::f64::consts::PI;
    let mut h = vec![Complex::new(0.0, 0.0); size];
    h[0].re = 0.25;
    for (k, hk) in h.iter_mut().enumerate().skip(1).step_by(2) {
        let n = if k <= size / 2 { k } else { size - k } as f64;
        hk.re = -1.0 / (PI * n).powi(2);
    }
    rustfft::FftPlanner::<f64>::new()
        .plan_fft_forward(size)
        .process(&mut h);
    let mut f: Vec<f64> = h.iter().map(|c| 2.0 * c.re).collect();
    // fftshift(w)[m] = w[(m + size/2) % size].
    let shifted = |w: &dyn Fn(usize) -> f64, m: usize| w((m + size / 2) % size);
    let m1 = (size - 1) as f64;
    match filter {
        Filter::Ramp => {}
        Filter::SheppLogan => {
            for (m, v) in f.iter_mut().enumerate().skip(1) {
                // omega = pi * fftfreq(size)[m]
                let freq = if m < size.div_ceil(2) {
                    m as f64
                } else {
                    m as f64 - size as f64
                };
                let omega = PI * freq / size as f64;
                *v *= omega.sin() / omega;
            }
        }
        Filter::Cosine => {
            let w = |n: usize| (PI * n as f64 / size as f64).sin();
            for (m, v) in f.iter_mut().enumerate() {
                *v *= shifted(&w, m);
            }
        }
        Filter::Hamming => {
            let w = |n: usize| 0.54 - 0.46 * (2.0 * PI * n as f64 / m1).cos();
            for (m, v) in f.iter_mut().enumerate() {
                *v *= shifted(&w, m);
            }
        }
        Filter::Hann => {
            let w = |n: usize| 0.5 - 0.5 * (2.0 * PI * n as f64 / m1).cos();
            for (m, v) in f.iter_mut().enumerate() {
                *v *= shifted(&w, m);
            }
        }
    }
    f
}

/// Filter sinogram rows (`n_rows x n_det`, row major) in place.
///
/// scikit-image keeps `Re ifft(fft(p) F)`; for a real projection that is the filtering by the
/// even part `(F[m] + F[-m]) / 2` (the fftshifted Hamming and Hann windows are not exactly
/// even), which a real-to-complex FFT applies directly.
pub fn filter_rows(rows: &mut [f32], n_det: usize, filter: Filter) {
    let size = padded_size(n_det);
    let f = fourier_filter(size, filter);
    let half: Vec<f32> = (0..=size / 2)
        .map(|m| ((f[m] + f[(size - m) % size]) / 2.0 / size as f64) as f32)
        .collect();
    let mut planner = RealFftPlanner::<f32>::new();
    let r2c = planner.plan_fft_forward(size);
    let c2r = planner.plan_fft_inverse(size);
    rows.par_chunks_mut(n_det).for_each_init(
        || {
            (
                r2c.make_input_vec(),
                r2c.make_output_vec(),
                c2r.make_output_vec(),
            )
        },
        |(input, spectrum, output), row| {
            input[..n_det].copy_from_slice(row);
            input[n_det..].fill(0.0);
            r2c.process(input, spectrum)
                .expect("FFT sizes match the plan");
            for (c, h) in spectrum.iter_mut().zip(&half) {
                *c *= *h;
            }
            // The DC and Nyquist bins of a real signal's spectrum are real; make it exact.
            spectrum[0].im = 0.0;
            spectrum[size / 2].im = 0.0;
            c2r.process(spectrum, output)
                .expect("FFT sizes match the plan");
            row.copy_from_slice(&output[..n_det]);
        },
    );
}

/// FBP of `b` host sinograms (`n_angles x n_det` each) of `geometry`, using the angle rows
/// `rows` only; returns `b` images of `N x N`.
pub fn fbp(
    geometry: &Geometry,
    sinograms: &[f32],
    b: usize,
    filter: Filter,
    rows: &[usize],
) -> Result<Vec<f32>> {
    let (n, n_det, n_ang) = (geometry.image_size, geometry.n_det, geometry.n_angles());
    ensure!(
        !rows.is_empty(),
        "FBP: zero views; give at least one projection angle"
    );
    ensure!(
        rows.iter().all(|&r| r < n_ang),
        "FBP: an angle index is out of range for {n_ang} angles"
    );
    ensure!(
        sinograms.len() == b * n_ang * n_det,
        "FBP: sinogram buffer size does not match the geometry"
    );
    // Gather the used rows, then filter them.
    let mut filtered = Vec::with_capacity(b * rows.len() * n_det);
    for bi in 0..b {
        for &r in rows {
            let start = (bi * n_ang + r) * n_det;
            filtered.extend_from_slice(&sinograms[start..start + n_det]);
        }
    }
    filter_rows(&mut filtered, n_det, filter);
    // Each projection followed by PAD zeros, so the vector kernel may load 16 bins from any
    // bin it interpolates at.
    let stride = n_det + PAD;
    let mut padded = vec![0f32; b * rows.len() * stride];
    for (dst, src) in padded.chunks_mut(stride).zip(filtered.chunks(n_det)) {
        dst[..n_det].copy_from_slice(src);
    }

    let trig: Vec<(f32, f32)> = rows
        .iter()
        .map(|&r| {
            let (s, c) = geometry.angles_deg[r].to_radians().sin_cos();
            (s as f32, c as f32)
        })
        .collect();
    let scale = (std::f64::consts::PI / (2.0 * rows.len() as f64) / geometry.pixel_size) as f32;
    let mut out = vec![0f32; b * n * n];
    let radius = (n / 2) as f32;
    let sc = (n_det / 2) as f32;
    let simd = avx2_available();
    // Blocks of rows: for each angle the block (a few KB) and the projection stay in L1.
    const BLOCK: usize = 16;
    for (image, projections) in out
        .chunks_mut(n * n)
        .zip(padded.chunks(rows.len() * stride))
    {
        image
            .par_chunks_mut(n * BLOCK)
            .enumerate()
            .for_each(|(bj, block)| {
                for (q_padded, &(sin, cos)) in projections.chunks_exact(stride).zip(&trig) {
                    let q = &q_padded[..n_det];
                    for (r, line) in block.chunks_mut(n).enumerate() {
                        // Pixel (j, i) sits at t = (i - N/2) cos - (j - N/2) sin on the detector,
                        // bin t + n_det/2.
                        let y = (bj * BLOCK + r) as f32 - radius;
                        let base = sc - radius * cos - y * sin;
                        let (i0, i1) = detector_run(n, n_det, base, cos);
                        if simd {
                            #[cfg(target_arch = "x86_64")]
                            // SAFETY: avx2_available() checked the CPU.
                            unsafe {
                                interp_run_avx2(line, q_padded, n_det, base, cos, i0, i1)
                            };
                        } else {
                            interp_run(line, q, base, cos, i0, i1);
                        }
                    }
                }
                for v in block.iter_mut() {
                    *v *= scale;
                }
            });
    }
    Ok(out)
}

/// Whether the AVX2 + FMA kernels can run on this CPU.
pub(crate) fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Zeros after each filtered projection (see `interp_run_avx2`).
const PAD: usize = 16;

/// [`interp_run`] 8 pixels at a time (AVX2), positions rounded as the scalar code rounds them.
///
/// `|step| = |cos| <= 1`, so 8 neighbouring pixels read bins `kmin..=kmin + 8` and their right
/// neighbours: two 8-bin loads from `kmin` and in-register permutes replace the gathers, which
/// are slow on many x86 cores. `q_padded` holds the `n_det` bins then `PAD` zeros.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn interp_run_avx2(
    line: &mut [f32],
    q_padded: &[f32],
    n_det: usize,
    base: f32,
    step: f32,
    i0: usize,
    i1: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(step.abs() <= 1.0 && q_padded.len() >= n_det + PAD);
    let top = n_det as i32 - 2;
    let vtop = _mm256_set1_epi32(top);
    let seven = _mm256_set1_epi32(7);
    let one = _mm256_set1_epi32(1);
    let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let (vbase, vstep) = (_mm256_set1_ps(base), _mm256_set1_ps(step));
    let q = q_padded.as_ptr();
    let mut i = i0;
    while i + 8 <= i1 {
        let idx = _mm256_add_ps(_mm256_set1_ps(i as f32), lanes);
        let p = _mm256_add_ps(vbase, _mm256_mul_ps(idx, vstep));
        let k = _mm256_min_epi32(_mm256_cvttps_epi32(p), vtop);
        let f = _mm256_sub_ps(p, _mm256_cvtepi32_ps(k));
        // The smallest bin is at the first or the last lane (positions are monotonic).
        let k_first = ((base + i as f32 * step) as i32).min(top);
        let k_last = ((base + (i + 7) as f32 * step) as i32).min(top);
        let kmin = k_first.min(k_last);
        // SAFETY: detector_run keeps 0 <= kmin <= n_det - 2; kmin + 16 <= n_det + PAD.
        let lo = _mm256_loadu_ps(q.add(kmin as usize));
        let hi = _mm256_loadu_ps(q.add(kmin as usize + 8));
        let d = _mm256_sub_epi32(k, _mm256_set1_epi32(kmin));
        let d1 = _mm256_add_epi32(d, one);
        // permutevar uses the low 3 bits of each index: lanes with d > 7 take `hi`.
        let qa = _mm256_blendv_ps(
            _mm256_permutevar8x32_ps(lo, d),
            _mm256_permutevar8x32_ps(hi, d),
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(d, seven)),
        );
        let qb = _mm256_blendv_ps(
            _mm256_permutevar8x32_ps(lo, d1),
            _mm256_permutevar8x32_ps(hi, d1),
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(d1, seven)),
        );
        let v = _mm256_fmadd_ps(f, _mm256_sub_ps(qb, qa), qa);
        let out = line.as_mut_ptr().add(i);
        _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), v));
        i += 8;
    }
    interp_run(line, &q_padded[..n_det], base, step, i, i1);
}

/// The run `i0..i1` of the `n` pixels whose detector position `base + i * step` lies in
/// `[0, n_det - 1]` (positions are monotonic in `i`, so it is one run), found with the same
/// expression the interpolation evaluates so no read falls outside the projection.
#[inline(always)]
fn detector_run(n: usize, n_det: usize, base: f32, step: f32) -> (usize, usize) {
    let last = (n_det - 1) as f32;
    let inside = |i: usize| {
        let p = base + i as f32 * step;
        p >= 0.0 && p <= last
    };
    let (lo, hi) = if step.abs() < 1e-12 {
        (0.0, n as f32)
    } else {
        let (a, b) = ((0.0 - base) / step, (last - base) / step);
        (a.min(b), a.max(b))
    };
    let mut i0 = (lo.floor().max(0.0) as usize).min(n);
    let mut i1 = ((hi.ceil() + 1.0).max(0.0) as usize).min(n);
    while i0 < i1 && !inside(i0) {
        i0 += 1;
    }
    while i1 > i0 && !inside(i1 - 1) {
        i1 -= 1;
    }
    (i0, i1)
}

/// `line[i] += interp(q, base + i * step)` for `i` in `i0..i1`, where `0 <= pos <= len(q) - 1`.
#[inline(always)]
fn interp_run(line: &mut [f32], q: &[f32], base: f32, step: f32, i0: usize, i1: usize) {
    let top = q.len() - 2;
    for (di, v) in line[i0..i1].iter_mut().enumerate() {
        let p = base + (i0 + di) as f32 * step;
        let k = (p as usize).min(top); // p >= 0: truncation is floor; p = last uses the last pair
        let f = p - k as f32;
        // SAFETY: k <= len(q) - 2.
        let (qa, qb) = unsafe { (*q.get_unchecked(k), *q.get_unchecked(k + 1)) };
        *v += qa + f * (qb - qa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_matches_its_closed_form_at_dc_and_nyquist() {
        // 2 FFT(h) at m = 0 is 2 (1/4 - 2 sum_odd 1/(pi n)^2) -> 0 as size grows; at Nyquist
        // it is 2 (1/4 + 2 sum_odd 1/(pi n)^2) -> 1 (sum_odd 1/n^2 = pi^2 / 8).
        let f = fourier_filter(1024, Filter::Ramp);
        assert!(f[0].abs() < 2e-3, "{}", f[0]);
        assert!((f[512] - 1.0).abs() < 2e-3, "{}", f[512]);
        assert!(f.iter().all(|v| *v >= 0.0));
    }

    #[test]
    fn padded_sizes() {
        assert_eq!(padded_size(10), 64);
        assert_eq!(padded_size(363), 1024);
        assert_eq!(padded_size(512), 1024);
    }
}
