//! Fan beam: the rays of a [`FanBeam`] geometry for the Joseph projector (`Radon` walks them
//! with the kernels of kernels.rs), and fan-beam filtered back projection.
//!
//! Conventions (docs/operators.md), ASTRA's `fanflat` ones so arrays compare directly: pixel
//! `(row j, column i)`, the grid centre `c = (N - 1) / 2` at the isocentre, `x = i - c` to the
//! right and `y = c - j` up. At source angle `beta` the source sits at
//! `D (sin beta, -cos beta)` in `(x, y)` (`D` the source-to-isocentre distance), the central ray
//! points at the isocentre and the detector axis is `(cos beta, sin beta)`; bin `s` is
//! `s - (n_det - 1) / 2 + offset` bins along it. On a curved detector that position is an arc
//! length, the fan angle `gamma = position / SDD`; on a flat one `gamma = atan(position / SDD)`.

use super::fbp::{check_input, filter_rows_taps, Filter};
use super::geometry::{Detector, FanBeam, Geometry, Scan};
use super::kernels::RayParams;
use anyhow::{ensure, Result};
use rayon::prelude::*;
use std::f64::consts::{FRAC_PI_4, PI};

/// The source position and the central-ray and detector axes at `beta` (radians), in pixel
/// coordinates `(i, j)` (column, row; rows grow downwards, so `y = c - j`).
struct View {
    source: (f64, f64),
    /// Unit vector from the source towards the isocentre.
    e_v: (f64, f64),
    /// Unit vector along the detector, in the direction bins grow.
    e_u: (f64, f64),
}

fn view(beta: f64, fan: &FanBeam, n: usize) -> View {
    let c = (n as f64 - 1.0) / 2.0;
    let (sin, cos) = beta.sin_cos();
    let d = fan.sid();
    // (x, y) = D (sin, -cos)  ->  (i, j) = (c + x, c - y).
    View {
        source: (c + d * sin, c + d * cos),
        e_v: (-sin, -cos),
        e_u: (cos, -sin),
    }
}

/// Every ray of `geometry` (`n_angles * n_det`, angle major), for the Joseph kernels.
pub(super) fn fan_rays(geometry: &Geometry, fan: &FanBeam) -> Vec<RayParams> {
    let (n, n_det) = (geometry.image_size, geometry.n_det);
    geometry
        .angles_deg
        .iter()
        .flat_map(|&a| {
            let v = view(a.to_radians(), fan, n);
            (0..n_det).map(move |s| {
                let (sg, cg) = fan.gamma(s as f64, n_det).sin_cos();
                let dir = (cg * v.e_v.0 + sg * v.e_u.0, cg * v.e_v.1 + sg * v.e_u.1);
                RayParams::new(v.source, dir, n, geometry.pixel_size)
            })
        })
        .collect()
}

/// Parker's weight (Parker 1982, eq. 12) of the ray at fan angle `gamma` from source angle
/// `beta` (both radians, `beta` from the start of a short scan over `pi + 2 delta`): it ramps
/// the doubly measured rays at either end of the scan so each line is counted once in all.
/// The conjugate of `(beta, gamma)` here is `(beta + pi - 2 gamma, -gamma)` (our detector axis
/// runs against Parker's), hence `-gamma` in his formula.
pub fn parker_weight(beta: f64, gamma: f64, delta: f64) -> f64 {
    let g = -gamma;
    if beta < 0.0 || beta > PI + 2.0 * delta {
        0.0
    } else if beta < 2.0 * (delta - g) {
        (FRAC_PI_4 * beta / (delta - g)).sin().powi(2)
    } else if beta <= PI - 2.0 * g {
        1.0
    } else {
        (FRAC_PI_4 * (PI + 2.0 * delta - beta) / (delta + g))
            .sin()
            .powi(2)
    }
}

/// Fan-beam FBP of `b` host sinograms of `geometry`, from the angle rows `rows` only (Kak &
/// Slaney, ch. 3.4: eqs. 3.95-3.101 for the curved detector, 3.113-3.119 for the flat one):
///
/// 1. weight each projection by `cos gamma` (times `D` on the curved detector), and on a short
///    scan by twice Parker's weight;
/// 2. filter with the ramp family of the parallel case (`fbp::filter_rows_taps`): the same
///    Ram-Lak kernel, its taps times `(n alpha / sin n alpha)^2` on the curved detector (eq.
///    3.100), in the bins of a virtual detector through the isocentre on the flat one;
/// 3. back-project pixel-driven with the distance weight `1 / L^2` (curved; `L` from the source
///    to the pixel) or `1 / U^2` (flat; `U` that distance along the central ray over `D`), summed
///    over the views times the angular step `arc / n_views`.
pub fn fan_fbp(
    geometry: &Geometry,
    fan: &FanBeam,
    sinograms: &[f32],
    b: usize,
    filter: Filter,
    rows: &[usize],
) -> Result<Vec<f32>> {
    let (n, n_det, n_ang) = (geometry.image_size, geometry.n_det, geometry.n_angles());
    check_input(geometry, sinograms.len(), b, rows)?;
    let d = fan.sid();
    let gammas: Vec<f64> = (0..n_det).map(|s| fan.gamma(s as f64, n_det)).collect();
    let delta = fan.half_fan(n_det);
    let beta0 = geometry.angles_deg[0].to_radians();
    // 1. Pre-weights.
    let mut filtered = Vec::with_capacity(b * rows.len() * n_det);
    for bi in 0..b {
        for &r in rows {
            let start = (bi * n_ang + r) * n_det;
            let beta = geometry.angles_deg[r].to_radians() - beta0;
            for (s, &v) in sinograms[start..start + n_det].iter().enumerate() {
                let g = gammas[s];
                let mut w = g.cos();
                if fan.detector == Detector::Curved {
                    w *= d;
                }
                if fan.scan == Scan::Short {
                    w *= 2.0 * parker_weight(beta, g, delta);
                }
                filtered.push((f64::from(v) * w) as f32);
            }
        }
    }
    // 2. Filter. The Ram-Lak taps are for unit spacing; Q = (1 / (2 spacing)) (h * R'), and
    // the filter applies 2 (h * R'), hence the 1 / (4 spacing) below.
    let spacing = match fan.detector {
        Detector::Curved => fan.detector_spacing_mm / fan.source_to_detector_mm,
        Detector::Flat => {
            fan.detector_spacing_mm * fan.source_to_isocentre_mm
                / fan.source_to_detector_mm
                / fan.pixel_mm
        }
    };
    match fan.detector {
        Detector::Curved => filter_rows_taps(&mut filtered, n_det, filter, &|k| {
            let a = k as f64 * spacing;
            if k == 0 {
                1.0
            } else {
                (a / a.sin()).powi(2)
            }
        }),
        Detector::Flat => filter_rows_taps(&mut filtered, n_det, filter, &|_| 1.0),
    }
    // 3. Back projection.
    let d_beta = fan.scan_deg(n_det).to_radians() / rows.len() as f64;
    let scale = (d_beta / (4.0 * spacing) / geometry.pixel_size) as f32;
    let views: Vec<View> = rows
        .iter()
        .map(|&r| view(geometry.angles_deg[r].to_radians(), fan, n))
        .collect();
    let sdd_over_bins = fan.source_to_detector_mm / fan.detector_spacing_mm;
    let centre_bin = (n_det as f64 - 1.0) / 2.0 - fan.detector_offset;
    let mut out = vec![0f32; b * n * n];
    for (image, projections) in out
        .chunks_mut(n * n)
        .zip(filtered.chunks(rows.len() * n_det))
    {
        image.par_chunks_mut(n).enumerate().for_each(|(j, line)| {
            for (q, v) in projections.chunks_exact(n_det).zip(&views) {
                for (i, out) in line.iter_mut().enumerate() {
                    // The pixel from the source: `dv` along the central ray, `du` across.
                    let (pi, pj) = (i as f64 - v.source.0, j as f64 - v.source.1);
                    let dv = pi * v.e_v.0 + pj * v.e_v.1;
                    let du = pi * v.e_u.0 + pj * v.e_u.1;
                    let (bin, w) = match fan.detector {
                        Detector::Curved => (
                            du.atan2(dv) * sdd_over_bins + centre_bin,
                            1.0 / (du * du + dv * dv),
                        ),
                        Detector::Flat => (du / dv * sdd_over_bins + centre_bin, (d / dv).powi(2)),
                    };
                    if bin >= 0.0 && bin <= (n_det - 1) as f64 {
                        let k = (bin as usize).min(n_det - 2);
                        let f = (bin - k as f64) as f32;
                        let val = q[k] + f * (q[k + 1] - q[k]);
                        *out += val * w as f32;
                    }
                }
            }
            for v in line.iter_mut() {
                *v *= scale;
            }
        });
    }
    Ok(out)
}

/// Rebin full-scan or short-scan fan-beam sinograms (`b` of `geometry`, its angles equally
/// spaced) to the parallel beam of `Geometry::new(N, n_parallel)` (angles over [0, 180), the
/// scikit-image conventions of docs/operators.md), so parallel-beam code can take fan-beam data.
///
/// The parallel ray at angle `theta` and detector coordinate `u` (from the fan grid's centre) is
/// the fan ray with `gamma = asin(u / D)` from `beta = theta + gamma`, or its conjugate
/// `(theta + 180 - gamma, -gamma)` when that one lies in the scan (short scans); the fan
/// sinogram is interpolated linearly in `beta` and with Keys' cubic (`a = -1/2`) in the bin
/// (linear in the two bins at either end), which keeps the edges a linear interpolation would
/// blur. Bins no fan ray reaches are zero.
pub fn rebin_to_parallel(
    geometry: &Geometry,
    sinograms: &[f32],
    b: usize,
    n_parallel: usize,
) -> Result<(Geometry, Vec<f32>)> {
    rebin_to_parallel_masked(geometry, sinograms, None, b, n_parallel).map(|(g, s, _)| (g, s))
}

/// [`rebin_to_parallel`] of measured data: `mask` (`n_angles x n_det`, 0/1, shared by the `b`
/// sinograms; None: all measured) says which fan samples were measured, and the parallel mask
/// comes back with the sinograms. A parallel bin is measured when every fan sample it is
/// interpolated from (with a non-zero weight) is: linear between the two views around `beta`
/// when both are measured; else from the nearer view alone when that one is (linear in the
/// bin only, `beta` off by at most half a view step), so sparse views still give a band of
/// measured bins per parallel angle rather than nothing; else the ray's conjugate is tried.
/// Unmeasured bins are zero (the zero-filled convention of `ops::MeasurementOperator`).
pub fn rebin_to_parallel_masked(
    geometry: &Geometry,
    sinograms: &[f32],
    mask: Option<&[f32]>,
    b: usize,
    n_parallel: usize,
) -> Result<(Geometry, Vec<f32>, Vec<f32>)> {
    let fan = geometry
        .fan
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("rebinning: the geometry is not fan beam"))?;
    let (n, n_det, n_ang) = (geometry.image_size, geometry.n_det, geometry.n_angles());
    ensure!(
        sinograms.len() == b * n_ang * n_det,
        "rebinning: sinogram buffer size does not match the geometry"
    );
    ensure!(
        mask.is_none_or(|m| m.len() == n_ang * n_det),
        "rebinning: mask size does not match the geometry"
    );
    ensure!(n_ang >= 2, "rebinning: needs at least 2 fan-beam views");
    let beta0 = geometry.angles_deg[0];
    let step = geometry.angles_deg[1] - beta0;
    ensure!(
        geometry
            .angles_deg
            .iter()
            .enumerate()
            .all(|(k, a)| (a - beta0 - k as f64 * step).abs() < 1e-6 * step.abs().max(1.0)),
        "rebinning: the fan-beam angles must be equally spaced"
    );
    let arc = fan.scan_deg(n_det);
    let par = Geometry::new(n, n_parallel)?.with_pixel_size(geometry.pixel_size)?;
    let (np_det, d) = (par.n_det, fan.sid());
    let full = fan.scan == Scan::Full;
    let measured = |k: usize, j: usize| mask.is_none_or(|m| m[k * n_det + j] > 0.5);
    // Per parallel bin of one sinogram: the fan samples (view, bin) and weights it takes, or
    // None when it is not measured. The same for every sinogram of the batch.
    type Taps = Vec<(usize, usize, f64)>;
    let taps: Vec<Option<Taps>> = (0..n_parallel * np_det)
        .into_par_iter()
        .map(|idx| {
            let (a, s) = (idx / np_det, idx % np_det);
            let theta = par.angles_deg[a];
            let (st, ct) = theta.to_radians().sin_cos();
            // From the parallel centre N/2 to the fan grid's centre (N - 1)/2.
            let u = s as f64 - (np_det / 2) as f64 + 0.5 * ct - 0.5 * st;
            if u.abs() >= d {
                return None;
            }
            let gamma = (u / d).asin();
            let candidates = [
                (theta + gamma.to_degrees(), gamma),
                (theta + 180.0 - gamma.to_degrees(), -gamma),
            ];
            let (mut taps, mut found) = (Vec::new(), 0u32);
            for (beta, g) in candidates {
                let mut rel = beta - beta0;
                if full {
                    rel = rel.rem_euclid(360.0);
                }
                if !(0.0..=arc).contains(&rel) {
                    continue;
                }
                let fa = rel / step;
                let fb = fan.bin_of_gamma(g, n_det);
                if fb < 0.0 || fb > (n_det - 1) as f64 {
                    continue;
                }
                let (k0, wk) = (fa.floor() as usize, fa - fa.floor());
                // The next view wraps around on a full scan and stops at the last otherwise.
                let (ka, kb) = if full {
                    (k0 % n_ang, (k0 + 1) % n_ang)
                } else {
                    (k0.min(n_ang - 1), (k0 + 1).min(n_ang - 1))
                };
                let bins = bin_taps(fb, n_det);
                let view_ok = |k: usize| bins.iter().all(|&(j, w)| w == 0.0 || measured(k, j));
                // The four views around `beta` for the cubic, when the scan has them all.
                let cubic_rows: Option<[usize; 4]> = if full {
                    Some([0, 1, 2, 3].map(|i| (k0 + n_ang + i - 1) % n_ang))
                } else {
                    (k0 >= 1 && k0 + 2 < n_ang).then(|| [k0 - 1, k0, k0 + 1, k0 + 2])
                };
                let rows: Vec<(usize, f64)> = match cubic_rows {
                    Some(r) if r.iter().all(|&k| view_ok(k)) => {
                        r.into_iter().zip(keys_weights(wk)).collect()
                    }
                    _ => match (view_ok(ka), view_ok(kb) || wk == 0.0) {
                        (true, true) => vec![(ka, 1.0 - wk), (kb, wk)],
                        (true, false) if wk <= 0.5 => vec![(ka, 1.0)],
                        (false, true) if wk >= 0.5 => vec![(kb, 1.0)],
                        _ => continue,
                    },
                };
                found += 1;
                taps.extend(
                    rows.iter()
                        .filter(|&&(_, w)| w != 0.0)
                        .flat_map(|&(k, wr)| bins.iter().map(move |&(j, w)| (k, j, wr * w))),
                );
            }
            // A line measured twice (a full scan, a short scan's ends): the mean of the two.
            for t in taps.iter_mut() {
                t.2 /= f64::from(found.max(1));
            }
            (found > 0).then_some(taps)
        })
        .collect();
    let mut out = vec![0f32; b * n_parallel * np_det];
    out.par_chunks_mut(n_parallel * np_det)
        .enumerate()
        .for_each(|(bi, par_sino)| {
            let sino = &sinograms[bi * n_ang * n_det..(bi + 1) * n_ang * n_det];
            for (v, t) in par_sino.iter_mut().zip(&taps) {
                if let Some(t) = t {
                    *v = t
                        .iter()
                        .map(|&(k, j, w)| f64::from(sino[k * n_det + j]) * w)
                        .sum::<f64>() as f32;
                }
            }
        });
    let par_mask = taps
        .iter()
        .map(|t| f32::from(u8::from(t.is_some())))
        .collect();
    Ok((par, out, par_mask))
}

/// The fan-beam bins and weights that interpolate fractional bin `fb` (in `[0, n_det - 1]`):
/// Keys' cubic convolution over four bins, or linear where the four would leave the detector.
fn bin_taps(fb: f64, n_det: usize) -> Vec<(usize, f64)> {
    let j0 = (fb as usize).min(n_det - 2);
    let t = fb - j0 as f64;
    if j0 == 0 || j0 + 2 >= n_det {
        return vec![(j0, 1.0 - t), (j0 + 1, t)];
    }
    [j0 - 1, j0, j0 + 1, j0 + 2]
        .into_iter()
        .zip(keys_weights(t))
        .collect()
}

/// Keys' cubic convolution weights (`a = -1/2`, Keys 1981, eq. 15) of the samples at
/// `-1, 0, 1, 2` for a point `t` in `[0, 1)` past sample 0; they sum to 1.
fn keys_weights(t: f64) -> [f64; 4] {
    let (t2, t3) = (t * t, t * t * t);
    [
        -0.5 * t3 + t2 - 0.5 * t,
        1.5 * t3 - 2.5 * t2 + 1.0,
        -1.5 * t3 + 2.0 * t2 + 0.5 * t,
        0.5 * t3 - 0.5 * t2,
    ]
}

/// The parallel angles [`rebin_to_parallel`] gets from a fan-beam geometry under `--rebin`:
/// the fan scan's angular step over [0, 180) (180 from 360 views of a full scan).
pub fn rebin_views(geometry: &Geometry) -> usize {
    let arc = geometry.arc_deg();
    ((geometry.n_angles() as f64 * 180.0 / arc).round() as usize).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parker's weights count every line once: a ray and its conjugate `(beta + pi - 2 gamma,
    /// -gamma)` add up to 1 wherever both lie in the short scan.
    #[test]
    fn parker_weights_of_conjugate_rays_sum_to_one() {
        let delta = 0.4;
        for k in 0..200 {
            let beta = (k as f64 + 0.5) / 200.0 * (PI + 2.0 * delta);
            for m in 0..21 {
                let gamma = (m as f64 / 10.0 - 1.0) * delta * 0.999;
                let conj = beta + PI - 2.0 * gamma;
                let (b2, g2) = if conj <= PI + 2.0 * delta {
                    (conj, -gamma)
                } else {
                    (beta - PI - 2.0 * gamma, -gamma)
                };
                if !(0.0..=PI + 2.0 * delta).contains(&b2) {
                    continue;
                }
                let sum = parker_weight(beta, gamma, delta) + parker_weight(b2, g2, delta);
                assert!((sum - 1.0).abs() < 1e-9, "beta {beta} gamma {gamma}: {sum}");
            }
        }
    }
}
