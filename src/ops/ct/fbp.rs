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

use super::geometry::Geometry;
use anyhow::{ensure, Result};
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::num_complex::Complex;
use serde::{Deserialize, Serialize};

/// The frequency windows of scikit-image's `iradon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    Ramp,
    SheppLogan,
    Cosine,
    Hamming,
    Hann,
}

// scikit-image's names for the filters.
crate::names::named!(Filter, "--filter", {
    Ramp => "ramp",
    SheppLogan => "shepp-logan",
    Cosine => "cosine",
    Hamming => "hamming",
    Hann => "hann",
});

/// Length of the zero-padded projections: `max(64, 2^ceil(log2(2 n_det)))`.
pub fn padded_size(n_det: usize) -> usize {
    (2 * n_det).next_power_of_two().max(64)
}

/// The filter over the `size` FFT bins, as scikit-image's `_get_fourier_filter` builds it.
///
/// The ramp is `2 Re FFT(h)` of the spatial Ram-Lak kernel `h[0] = 1/4`, `h[n] = -1/(pi n)^2`
/// for odd `n` (Kak & Slaney eq. 61), which removes the DC bias of sampling `|f|` directly.
pub fn fourier_filter(size: usize, filter: Filter) -> Vec<f64> {
    fourier_filter_taps(size, filter, &|_| 1.0)
}

/// [`fourier_filter`] with the Ram-Lak tap `n` (in bins, `0..=size/2`) multiplied by `taps(n)`
/// before the transform: `(n alpha / sin n alpha)^2` gives the equiangular fan-beam kernel
/// (Kak & Slaney eq. 3.100), 1 the parallel-beam one.
pub fn fourier_filter_taps(size: usize, filter: Filter, taps: &dyn Fn(usize) -> f64) -> Vec<f64> {
    use std::f64::consts::PI;
    let mut h = vec![Complex::new(0.0, 0.0); size];
    h[0].re = 0.25 * taps(0);
    for (k, hk) in h.iter_mut().enumerate().skip(1).step_by(2) {
        let n = if k <= size / 2 { k } else { size - k };
        hk.re = -taps(n) / (PI * n as f64).powi(2);
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
    filter_rows_taps(rows, n_det, filter, &|_| 1.0)
}

/// [`filter_rows`] with the kernel of [`fourier_filter_taps`].
pub fn filter_rows_taps(
    rows: &mut [f32],
    n_det: usize,
    filter: Filter,
    taps: &dyn Fn(usize) -> f64,
) {
    let size = padded_size(n_det);
    let f = fourier_filter_taps(size, filter, taps);
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
/// `rows` only; returns `b` images of `N x N`. A fan-beam geometry takes fan-beam FBP
/// (`fan::fan_fbp`).
pub fn fbp(
    geometry: &Geometry,
    sinograms: &[f32],
    b: usize,
    filter: Filter,
    rows: &[usize],
) -> Result<Vec<f32>> {
    if let Some(fan) = &geometry.fan {
        return super::fan::fan_fbp(geometry, fan, sinograms, b, filter, rows);
    }
    fbp_with(geometry, sinograms, b, filter, rows, avx2_available())
}

/// [`fbp`] with the vector kernels on or off (tests compare the two).
fn fbp_with(
    geometry: &Geometry,
    sinograms: &[f32],
    b: usize,
    filter: Filter,
    rows: &[usize],
    simd: bool,
) -> Result<Vec<f32>> {
    let (n, n_det, n_ang) = (geometry.image_size, geometry.n_det, geometry.n_angles());
    check_input(geometry, sinograms.len(), b, rows)?;
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
    let (pairs, singles) = mirror_pairs(
        &rows
            .iter()
            .map(|&r| geometry.angles_deg[r])
            .collect::<Vec<_>>(),
    );
    let scale = (std::f64::consts::PI / (2.0 * rows.len() as f64) / geometry.pixel_size) as f32;
    let mut out = vec![0f32; b * n * n];
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
                if simd {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: avx2_available() checked the CPU.
                    unsafe {
                        let view = Projections {
                            data: projections,
                            stride,
                            n_det,
                            trig: &trig,
                        };
                        backproject_block_avx2(block, n, bj * BLOCK, &view, &singles);
                        backproject_pairs_avx2(block, n, bj * BLOCK, &view, &pairs);
                    };
                } else {
                    for (q_padded, &(sin, cos)) in projections.chunks_exact(stride).zip(&trig) {
                        let q = &q_padded[..n_det];
                        for (r, line) in block.chunks_mut(n).enumerate() {
                            let base = detector_base(bj * BLOCK + r, n, n_det, sin, cos);
                            let (i0, i1) = detector_run(n, n_det, base, cos);
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

/// Detector position (in bins) of pixel `(row, 0)`: pixel `(j, i)` sits at
/// `t = (i - N/2) cos - (j - N/2) sin`, bin `t + n_det/2`; along the row it moves by `cos`.
#[inline(always)]
fn detector_base(row: usize, n: usize, n_det: usize, sin: f32, cos: f32) -> f32 {
    let radius = (n / 2) as f32;
    (n_det / 2) as f32 - radius * cos - (row as f32 - radius) * sin
}

/// Back projection of a block of rows with AVX2: for each run of 8 pixels the sum over a chunk
/// of angles stays in a register. Pixels whose detector position leaves `[0, n_det - 1]` for
/// some angle (the corners) take the scalar path for that angle.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backproject_block_avx2(
    block: &mut [f32],
    n: usize,
    row0: usize,
    view: &Projections,
    angle_ids: &[usize],
) {
    use std::arch::x86_64::*;
    const CHUNK: usize = 16;
    let (projections, stride, n_det, trig) = (view.data, view.stride, view.n_det, view.trig);
    let eight = _mm256_set1_ps(8.0);
    let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let n_rows = block.len() / n;
    for angles in angle_ids.chunks(CHUNK) {
        let m = angles.len();
        // Per row of the block and angle of the chunk: detector position of the row's first
        // pixel, and the run of pixels inside the detector.
        let row_params = |r: usize| {
            let mut bases = [0f32; CHUNK];
            let mut runs = [(0usize, 0usize); CHUNK];
            for (c, &a) in angles.iter().enumerate() {
                let (sin, cos) = trig[a];
                bases[c] = detector_base(row0 + r, n, n_det, sin, cos);
                runs[c] = detector_run(n, n_det, bases[c], cos);
            }
            let whole = runs[..m].iter().all(|&run| run == (0, n));
            (bases, runs, whole)
        };
        let mut r = 0;
        while r < n_rows {
            let (bases, runs, whole) = row_params(r);
            if whole && r + 1 < n_rows {
                let (bases1, _, whole1) = row_params(r + 1);
                if whole1 {
                    // Two rows seen whole at every angle of the chunk (all but the corners):
                    // they share the pixel offsets `i * step` and the angle loop.
                    let (line0, line1) = block[r * n..(r + 2) * n].split_at_mut(n);
                    let mut idx = lanes;
                    let mut g = 0;
                    while g + 8 <= n {
                        let (out0, out1) = (line0.as_mut_ptr().add(g), line1.as_mut_ptr().add(g));
                        let (mut acc0, mut acc1) = (_mm256_loadu_ps(out0), _mm256_loadu_ps(out1));
                        for (c, &a) in angles.iter().enumerate() {
                            let step = trig[a].1;
                            let offsets = _mm256_mul_ps(idx, _mm256_set1_ps(step));
                            // SAFETY: projection `a` lies in `projections` with its PAD zeros,
                            // and both rows are inside the detector.
                            let q = projections.as_ptr().add(a * stride);
                            let p0 = _mm256_add_ps(_mm256_set1_ps(bases[c]), offsets);
                            let p1 = _mm256_add_ps(_mm256_set1_ps(bases1[c]), offsets);
                            acc0 = _mm256_add_ps(acc0, interp8_avx2(q, p0, step));
                            acc1 = _mm256_add_ps(acc1, interp8_avx2(q, p1, step));
                        }
                        _mm256_storeu_ps(out0, acc0);
                        _mm256_storeu_ps(out1, acc1);
                        idx = _mm256_add_ps(idx, eight);
                        g += 8;
                    }
                    for (c, &a) in angles.iter().enumerate() {
                        let q = &projections[a * stride..a * stride + n_det];
                        let step = trig[a].1;
                        interp_run(line0, q, bases[c], step, g, n);
                        interp_run(line1, q, bases1[c], step, g, n);
                    }
                    r += 2;
                    continue;
                }
            }
            let line = &mut block[r * n..(r + 1) * n];
            let mut idx = lanes;
            let mut g = 0;
            while g + 8 <= n {
                let out = line.as_mut_ptr().add(g);
                let mut acc = _mm256_loadu_ps(out);
                for (c, &a) in angles.iter().enumerate() {
                    let (i0, i1) = runs[c];
                    let step = trig[a].1;
                    if whole || (g >= i0 && g + 8 <= i1) {
                        // SAFETY: projection `a` lies in `projections` with its PAD zeros.
                        let q = projections.as_ptr().add(a * stride);
                        let p = _mm256_add_ps(
                            _mm256_set1_ps(bases[c]),
                            _mm256_mul_ps(idx, _mm256_set1_ps(step)),
                        );
                        acc = _mm256_add_ps(acc, interp8_avx2(q, p, step));
                    } else if g + 8 > i0 && g < i1 {
                        let q = &projections[a * stride..a * stride + n_det];
                        let mut part = [0f32; 8];
                        for i in i0.max(g)..i1.min(g + 8) {
                            part[i - g] = interp_at(q, bases[c] + i as f32 * step);
                        }
                        acc = _mm256_add_ps(acc, _mm256_loadu_ps(part.as_ptr()));
                    }
                }
                _mm256_storeu_ps(out, acc);
                idx = _mm256_add_ps(idx, eight);
                g += 8;
            }
            for (c, &a) in angles.iter().enumerate() {
                let q = &projections[a * stride..a * stride + n_det];
                let (i0, i1) = runs[c];
                interp_run(line, q, bases[c], trig[a].1, i0.max(g), i1.max(g));
            }
            r += 1;
        }
    }
}

/// The filtered projections as the back projection reads them: projection `a` at
/// `data[a * stride..]`, `n_det` bins then `PAD` zeros, at the angle with `trig[a] = (sin, cos)`.
struct Projections<'a> {
    data: &'a [f32],
    stride: usize,
    n_det: usize,
    trig: &'a [(f32, f32)],
}

/// Angles `theta` in (0, 90) paired with `180 - theta` when both are used (indices into
/// `angles_deg`), and the angles left single. Pixel `(j, i)` reads the projection at `180 -
/// theta` where pixel `(j, 2 (N/2) - i)` reads the one at `theta`, so a pair shares the
/// position arithmetic.
fn mirror_pairs(angles_deg: &[f64]) -> (Vec<(usize, usize)>, Vec<usize>) {
    let reduced: Vec<f64> = angles_deg.iter().map(|a| a.rem_euclid(180.0)).collect();
    let mut used = vec![false; reduced.len()];
    let mut pairs = Vec::new();
    for a in 0..reduced.len() {
        if used[a] || !(reduced[a] > 0.0 && reduced[a] < 90.0) {
            continue;
        }
        let partner = (0..reduced.len())
            .find(|&b| !used[b] && b != a && (reduced[b] - (180.0 - reduced[a])).abs() < 1e-9);
        if let Some(b) = partner {
            used[a] = true;
            used[b] = true;
            pairs.push((a, b));
        }
    }
    let singles = (0..reduced.len()).filter(|&a| !used[a]).collect();
    (pairs, singles)
}

/// Back projection of mirror pairs of angles `(theta, 180 - theta)` over a block of rows with
/// AVX2: the 8 positions computed for `theta` serve the mirrored pixels at `180 - theta`.
/// Rows not seen whole at both angles go through the scalar path.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backproject_pairs_avx2(
    block: &mut [f32],
    n: usize,
    row0: usize,
    view: &Projections,
    pairs: &[(usize, usize)],
) {
    use std::arch::x86_64::*;
    const CHUNK: usize = 8;
    let (projections, stride, n_det, trig) = (view.data, view.stride, view.n_det, view.trig);
    let eight = _mm256_set1_ps(8.0);
    let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let reverse = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    // Pixel i at theta and column c = 2 (N/2) - i at 180 - theta read the same position.
    let mirror_of = 2 * (n / 2);
    let groups = n / 8 * 8;
    // Mirrored sums, column c at index c + 7 (a group of i = g..g+8 lands at mirror_of - g).
    let mut mirror = vec![0f32; mirror_of + 16];
    let mut mirror1 = vec![0f32; mirror_of + 16];
    let n_rows = block.len() / n;
    for chunk in pairs.chunks(CHUNK) {
        // Per row: whether both angles of every pair see it whole, and the detector positions
        // of its first pixel (base, step at theta; base, step at 180 - theta).
        let row_params = |row: usize| {
            let mut whole = true;
            let mut params = [(0f32, 0f32, 0f32, 0f32); CHUNK];
            for (c, &(a, b)) in chunk.iter().enumerate() {
                let (sa, ca) = trig[a];
                let (sb, cb) = trig[b];
                let base_a = detector_base(row, n, n_det, sa, ca);
                let base_b = detector_base(row, n, n_det, sb, cb);
                whole &= detector_run(n, n_det, base_a, ca) == (0, n)
                    && detector_run(n, n_det, base_b, cb) == (0, n);
                params[c] = (base_a, ca, base_b, cb);
            }
            (whole, params)
        };
        // The pixels the vector loop leaves, scalar: i >= groups at theta, columns
        // c <= mirror_of - groups at 180 - theta; and the mirrored sums added back.
        let finish_row = |line: &mut [f32], mirror: &[f32], params: &[(f32, f32, f32, f32)]| {
            let first = (mirror_of + 1).saturating_sub(groups);
            for (v, m) in line[first..].iter_mut().zip(&mirror[first + 7..]) {
                *v += m;
            }
            for (c, &(a, b)) in chunk.iter().enumerate() {
                let (base_a, step_a, base_b, step_b) = params[c];
                let qa = &projections[a * stride..a * stride + n_det];
                let qb = &projections[b * stride..b * stride + n_det];
                interp_run(line, qa, base_a, step_a, groups, n);
                interp_run(line, qb, base_b, step_b, 0, first.min(n));
            }
        };
        let mut r = 0;
        while r < n_rows {
            let row = row0 + r;
            let (whole, params) = row_params(row);
            if !whole {
                let line = &mut block[r * n..(r + 1) * n];
                for &(a, b) in chunk {
                    for a in [a, b] {
                        let (sin, cos) = trig[a];
                        let q = &projections[a * stride..a * stride + n_det];
                        let base = detector_base(row, n, n_det, sin, cos);
                        let (i0, i1) = detector_run(n, n_det, base, cos);
                        interp_run(line, q, base, cos, i0, i1);
                    }
                }
                r += 1;
                continue;
            }
            let (whole1, params1) = if r + 1 < n_rows {
                row_params(row + 1)
            } else {
                (false, params)
            };
            if whole1 {
                // Two rows at once: they share the pixel offsets `i * step` and the loops.
                let (line0, line1) = block[r * n..(r + 2) * n].split_at_mut(n);
                mirror.fill(0.0);
                mirror1.fill(0.0);
                let mut idx = lanes;
                let mut g = 0;
                while g < groups {
                    let (out0, out1) = (line0.as_mut_ptr().add(g), line1.as_mut_ptr().add(g));
                    let (m0, m1) = (
                        mirror.as_mut_ptr().add(mirror_of - g),
                        mirror1.as_mut_ptr().add(mirror_of - g),
                    );
                    let (mut acc0, mut acc1) = (_mm256_loadu_ps(out0), _mm256_loadu_ps(out1));
                    let (mut accm0, mut accm1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    for (c, &(a, b)) in chunk.iter().enumerate() {
                        let step = params[c].1;
                        let offsets = _mm256_mul_ps(idx, _mm256_set1_ps(step));
                        let p0 = _mm256_add_ps(_mm256_set1_ps(params[c].0), offsets);
                        let p1 = _mm256_add_ps(_mm256_set1_ps(params1[c].0), offsets);
                        // SAFETY: both projections lie in `projections` with their PAD zeros;
                        // both rows are inside the detector at theta, so every p is.
                        let (qa, qb) = (
                            projections.as_ptr().add(a * stride),
                            projections.as_ptr().add(b * stride),
                        );
                        let (v0, vm0) = interp8_pair_avx2(qa, qb, p0, step);
                        let (v1, vm1) = interp8_pair_avx2(qa, qb, p1, step);
                        acc0 = _mm256_add_ps(acc0, v0);
                        acc1 = _mm256_add_ps(acc1, v1);
                        accm0 = _mm256_add_ps(accm0, _mm256_permutevar8x32_ps(vm0, reverse));
                        accm1 = _mm256_add_ps(accm1, _mm256_permutevar8x32_ps(vm1, reverse));
                    }
                    _mm256_storeu_ps(out0, acc0);
                    _mm256_storeu_ps(out1, acc1);
                    _mm256_storeu_ps(m0, accm0);
                    _mm256_storeu_ps(m1, accm1);
                    idx = _mm256_add_ps(idx, eight);
                    g += 8;
                }
                finish_row(line0, &mirror, &params[..chunk.len()]);
                finish_row(line1, &mirror1, &params1[..chunk.len()]);
                r += 2;
                continue;
            }
            let line = &mut block[r * n..(r + 1) * n];
            mirror.fill(0.0);
            let mut idx = lanes;
            let mut g = 0;
            while g < groups {
                let out = line.as_mut_ptr().add(g);
                let out_m = mirror.as_mut_ptr().add(mirror_of - g);
                let mut acc = _mm256_loadu_ps(out);
                let mut acc_m = _mm256_setzero_ps();
                for (c, &(a, b)) in chunk.iter().enumerate() {
                    let (base_a, step) = (params[c].0, params[c].1);
                    let p = _mm256_add_ps(
                        _mm256_set1_ps(base_a),
                        _mm256_mul_ps(idx, _mm256_set1_ps(step)),
                    );
                    // SAFETY: both projections lie in `projections` with their PAD zeros; the
                    // row is inside the detector at theta, so every p is.
                    let (v, v_m) = interp8_pair_avx2(
                        projections.as_ptr().add(a * stride),
                        projections.as_ptr().add(b * stride),
                        p,
                        step,
                    );
                    acc = _mm256_add_ps(acc, v);
                    acc_m = _mm256_add_ps(acc_m, _mm256_permutevar8x32_ps(v_m, reverse));
                }
                _mm256_storeu_ps(out, acc);
                _mm256_storeu_ps(out_m, acc_m);
                idx = _mm256_add_ps(idx, eight);
                g += 8;
            }
            finish_row(line, &mirror, &params[..chunk.len()]);
            r += 1;
        }
    }
}

/// [`interp8_avx2`] at the same positions in two projections.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn interp8_pair_avx2(
    qa: *const f32,
    qb: *const f32,
    p: std::arch::x86_64::__m256,
    step: f32,
) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    let k = _mm256_cvttps_epi32(p);
    let f = _mm256_sub_ps(p, _mm256_cvtepi32_ps(k));
    let kmin = if step >= 0.0 {
        _mm256_cvtsi256_si32(k)
    } else {
        _mm256_extract_epi32::<7>(k)
    };
    if 7.0 * step.abs() >= 6.999 {
        return (interp8_avx2(qa, p, step), interp8_avx2(qb, p, step));
    }
    let d = _mm256_sub_epi32(k, _mm256_set1_epi32(kmin));
    // SAFETY: as in interp8_avx2, the windows at kmin stay within the bins and their PAD.
    let (wa, wb) = (qa.add(kmin as usize), qb.add(kmin as usize));
    let (la, ra) = (
        _mm256_permutevar8x32_ps(_mm256_loadu_ps(wa), d),
        _mm256_permutevar8x32_ps(_mm256_loadu_ps(wa.add(1)), d),
    );
    let (lb, rb) = (
        _mm256_permutevar8x32_ps(_mm256_loadu_ps(wb), d),
        _mm256_permutevar8x32_ps(_mm256_loadu_ps(wb.add(1)), d),
    );
    (
        _mm256_fmadd_ps(f, _mm256_sub_ps(ra, la), la),
        _mm256_fmadd_ps(f, _mm256_sub_ps(rb, lb), lb),
    )
}

/// `interp(q, pos)` for `0 <= pos <= len(q) - 1`, as [`interp_run`] computes it.
#[inline(always)]
fn interp_at(q: &[f32], p: f32) -> f32 {
    let k = (p as usize).min(q.len() - 2);
    let f = p - k as f32;
    q[k] + f * (q[k + 1] - q[k])
}

/// Zeros after each filtered projection (see `interp8_avx2`).
const PAD: usize = 16;

/// `interp(q, p)` at the detector positions `p = base + i * step` of 8 consecutive pixels, all
/// inside the detector (computed as the scalar code computes them: `base + (i * step)`).
///
/// `|step| = |cos| <= 1`, so 8 neighbouring pixels read at most 9 consecutive bins: 8-bin
/// loads from the smallest bin and in-register permutes replace the gathers, which are slow on
/// many x86 cores. `q` points at the `n_det` bins followed by `PAD` zeros.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn interp8_avx2(
    q: *const f32,
    p: std::arch::x86_64::__m256,
    step: f32,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    debug_assert!(step.abs() <= 1.0);
    // Inside the detector p <= n_det - 1: k <= n_det - 1 and k + 1 reads a PAD zero with f = 0.
    let k = _mm256_cvttps_epi32(p);
    let f = _mm256_sub_ps(p, _mm256_cvtepi32_ps(k));
    // Positions are monotonic: the smallest bin is in the first lane, or the last when step < 0.
    let kmin = if step >= 0.0 {
        _mm256_cvtsi256_si32(k)
    } else {
        _mm256_extract_epi32::<7>(k)
    };
    let d = _mm256_sub_epi32(k, _mm256_set1_epi32(kmin));
    // SAFETY: 0 <= kmin <= n_det - 1, and the widest read ends at kmin + 16 <= n_det + PAD.
    let w = q.add(kmin as usize);
    let (qa, qb) = if 7.0 * step.abs() < 6.999 {
        // The 8 pixels span at most 8 bins: the left neighbours lie in one 8-bin window, the
        // right ones in the window one bin further.
        (
            _mm256_permutevar8x32_ps(_mm256_loadu_ps(w), d),
            _mm256_permutevar8x32_ps(_mm256_loadu_ps(w.add(1)), d),
        )
    } else {
        // |step| about 1: the bins may span 9; two windows and a blend. permutevar uses the
        // low 3 bits of each index, so lanes with d > 7 take `hi`.
        let seven = _mm256_set1_epi32(7);
        let lo = _mm256_loadu_ps(w);
        let hi = _mm256_loadu_ps(w.add(8));
        let d1 = _mm256_add_epi32(d, _mm256_set1_epi32(1));
        (
            _mm256_blendv_ps(
                _mm256_permutevar8x32_ps(lo, d),
                _mm256_permutevar8x32_ps(hi, d),
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(d, seven)),
            ),
            _mm256_blendv_ps(
                _mm256_permutevar8x32_ps(lo, d1),
                _mm256_permutevar8x32_ps(hi, d1),
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(d1, seven)),
            ),
        )
    };
    _mm256_fmadd_ps(f, _mm256_sub_ps(qb, qa), qa)
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
    if n == 0 || (inside(0) && inside(n - 1)) {
        return (0, n); // the usual case: the whole row is seen
    }
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

/// What every FBP (parallel or fan) needs of its input: some views, every one of the
/// geometry's, and `b` whole sinograms.
pub(crate) fn check_input(geometry: &Geometry, len: usize, b: usize, rows: &[usize]) -> Result<()> {
    let (n_det, n_ang) = (geometry.n_det, geometry.n_angles());
    ensure!(
        !rows.is_empty(),
        "FBP: zero views; give at least one projection angle"
    );
    ensure!(
        rows.iter().all(|&r| r < n_ang),
        "FBP: an angle index is out of range for {n_ang} angles"
    );
    ensure!(
        len == b * n_ang * n_det,
        "FBP: sinogram buffer size does not match the geometry"
    );
    Ok(())
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
    fn vector_and_scalar_back_projections_agree() {
        if !avx2_available() {
            return; // nothing to compare on this CPU: the scalar path is the only one
        }
        // Odd sizes and a few angles near 0 and 90 degrees exercise the corners and both
        // windows of the vector kernel.
        // Mirror pairs (theta, 180 - theta) take their own path: odd and even sizes.
        for (n, angles) in [
            (37, vec![0.0, 0.05, 1.0, 45.0, 89.99, 90.0, 135.0]),
            (
                40,
                vec![10.0, 170.0, 30.0, 150.0, 0.0, 90.0, 60.0, 120.0, 5.0],
            ),
        ] {
            let g = Geometry::new(n, 1).unwrap().with_angles(angles).unwrap();
            let sino: Vec<f32> = (0..g.n_angles() * g.n_det)
                .map(|k| ((k * 7919) % 101) as f32 / 101.0)
                .collect();
            let rows: Vec<usize> = (0..g.n_angles()).collect();
            let a = fbp_with(&g, &sino, 1, Filter::Hann, &rows, true).unwrap();
            let b = fbp_with(&g, &sino, 1, Filter::Hann, &rows, false).unwrap();
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (k, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-5 * scale,
                    "n {n}, pixel {k}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn mirror_pairs_of_the_full_set() {
        let (pairs, singles) = mirror_pairs(&crate::ops::ct::full_angles(180));
        assert_eq!(pairs.len(), 89);
        assert_eq!(singles, vec![0, 90]);
        assert!(pairs.iter().all(|&(a, b)| a + b == 180));
    }

    #[test]
    fn padded_sizes() {
        assert_eq!(padded_size(10), 64);
        assert_eq!(padded_size(363), 1024);
        assert_eq!(padded_size(512), 1024);
    }
}
