//! Cartesian k-space sampling masks `Lambda` for MRI, seeded and reproducible (ChaCha8).
//!
//! **Phase-encoding axis:** the last image axis (columns, `W` of `[B, 1, H, W]`), as in fastMRI,
//! whose masks select columns: a 1-D mask picks columns `j` and keeps every row of them. The
//! readout runs along `H`. The 2-D Poisson-disc mask samples both axes (two phase-encoding
//! directions of a 3-D acquisition, each image a slice across them).
//!
//! The three fastMRI masks follow `fastmri/data/subsample.py` exactly (the centre block, the
//! rounding, the offsets); only the random stream differs (ChaCha8 instead of NumPy's Mersenne
//! Twister), so the same seed does not give fastMRI's lines, but the same formulas do.
//! Python's `round` and NumPy's `around` round half to even: [`f64::round_ties_even`].

use anyhow::{bail, ensure, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// The kinds of mask, by their CLI names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaskKind {
    /// fastMRI `EquiSpacedMaskFunc`: every `R`-th column from a random offset, plus the centre.
    Equispaced,
    /// fastMRI `EquispacedMaskFractionFunc`: spacing adjusted for the centre so the total is
    /// close to `N / R`.
    #[serde(alias = "equispaced_fraction")]
    EquispacedFraction,
    /// fastMRI `RandomMaskFunc`: each outer column with probability
    /// `(N / R - N_low) / (N - N_low)`, plus the centre.
    Random,
    /// 1-D Gaussian variable density: exactly `round(N / R)` columns, the centre plus outer
    /// columns drawn without replacement with weights `exp(-(j - N/2)^2 / (2 (0.15 N)^2))`.
    Gaussian,
    /// 2-D variable-density Poisson disc over the whole `H x W` plane, with a fully sampled
    /// central block.
    Poisson,
}

crate::names::named!(MaskKind, "--mask", {
    Equispaced => "equispaced",
    EquispacedFraction => "equispaced-fraction",
    Random => "random",
    Gaussian => "gaussian",
    Poisson => "poisson",
});

impl MaskKind {
    /// [`MaskKind`] from its name (`FromStr`).
    pub fn parse(name: &str) -> Result<Self> {
        name.parse()
    }
}

/// Everything that defines a mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskSpec {
    pub kind: MaskKind,
    /// `R >= 1`: the nominal undersampling factor.
    pub acceleration: f64,
    /// Fraction of the central (low-frequency) lines sampled fully, in (0, 1).
    pub center_fraction: f64,
    pub seed: u64,
}

/// Standard deviation of the 1-D Gaussian density, as a fraction of the number of lines.
pub const GAUSSIAN_SIGMA_FRACTION: f64 = 0.15;

impl MaskSpec {
    /// The rules that need no image size (acceleration, centre fraction and their product),
    /// checked by the job settings before any work.
    pub fn validate(&self) -> Result<()> {
        let (r, cf) = (self.acceleration, self.center_fraction);
        ensure!(
            r.is_finite() && r >= 1.0,
            "acceleration {r}: must be a number >= 1"
        );
        ensure!(
            cf.is_finite() && cf > 0.0 && cf < 1.0,
            "center fraction {cf}: must lie strictly between 0 and 1"
        );
        ensure!(
            cf * r < 1.0,
            "center fraction {cf} with acceleration {r}: the centre alone ({cf} of the lines) \
             exceeds the 1/{r} budget; lower --center-fraction below {:.4}",
            1.0 / r
        );
        Ok(())
    }

    /// The mask as a `[1, 1, H, W]` f32 tensor on the CPU (move it with `.to_device`).
    pub fn build(&self, h: i64, w: i64) -> Result<Tensor> {
        self.build_at(h, w, None)
    }

    /// An equispaced mask with a given offset of its first outer line instead of a random one
    /// (fastMRI's `offset` argument; e.g. to match the lines of a prospective acquisition).
    /// The offset must lie in `[0, round(R))` (`[0, round(R'))` for `equispaced-fraction`).
    pub fn build_with_offset(&self, h: i64, w: i64, offset: usize) -> Result<Tensor> {
        ensure!(
            matches!(
                self.kind,
                MaskKind::Equispaced | MaskKind::EquispacedFraction
            ),
            "mask offset {offset}: only the equispaced masks have an offset, not {}",
            self.kind.name()
        );
        self.build_at(h, w, Some(offset))
    }

    fn build_at(&self, h: i64, w: i64, offset: Option<usize>) -> Result<Tensor> {
        ensure!(
            h >= 1 && w >= 1,
            "mask size {h}x{w}: both sides must be at least 1"
        );
        self.validate()?;
        let (h_us, w_us) = (h as usize, w as usize);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let plane: Vec<f32> = match self.kind {
            MaskKind::Poisson => poisson_disc(
                h_us,
                w_us,
                self.acceleration,
                self.center_fraction,
                &mut rng,
            )?
            .into_iter()
            .map(|b| b as u8 as f32)
            .collect(),
            _ => {
                let line = self.lines_at(w_us, &mut rng, offset)?;
                (0..h_us)
                    .flat_map(|_| line.iter().map(|b| *b as u8 as f32))
                    .collect()
            }
        };
        Ok(Tensor::from_slice(&plane).reshape([1, 1, h, w]))
    }

    /// The 1-D column selection of the line masks (`n` = number of phase-encoding lines).
    pub fn lines(&self, n: usize, rng: &mut ChaCha8Rng) -> Result<Vec<bool>> {
        self.lines_at(n, rng, None)
    }

    fn lines_at(&self, n: usize, rng: &mut ChaCha8Rng, offset: Option<usize>) -> Result<Vec<bool>> {
        self.validate()?;
        ensure!(
            n >= 1,
            "mask with {n} phase-encoding lines: need at least 1"
        );
        let nf = n as f64;
        let r = self.acceleration;
        let n_low = num_low_frequencies(n, self.center_fraction);
        let mut mask = center_lines(n, n_low);
        match self.kind {
            MaskKind::Equispaced => {
                ensure!(
                    r.fract() == 0.0,
                    "acceleration {r}: the equispaced mask steps by whole lines; use an integer \
                     or --mask equispaced-fraction"
                );
                let offset = pick_offset(offset, r.round_ties_even() as usize, rng)?;
                for j in equispaced_lines(n, r as usize, offset) {
                    mask[j] = true;
                }
            }
            MaskKind::EquispacedFraction => {
                let adjusted = adjusted_acceleration(n, r, n_low);
                let offset =
                    pick_offset(offset, (adjusted.round_ties_even() as usize).max(1), rng)?;
                for j in equispaced_fraction_lines(n, adjusted, offset) {
                    mask[j] = true;
                }
            }
            MaskKind::Random => {
                let prob = (nf / r - n_low as f64) / (nf - n_low as f64);
                for m in mask.iter_mut() {
                    // fastMRI draws one uniform per column, centre included, then ORs the centre.
                    let u: f64 = rng.random();
                    *m |= u < prob;
                }
            }
            MaskKind::Gaussian => {
                let total = ((nf / r).round_ties_even() as usize).max(n_low);
                let c = (n / 2) as f64;
                let s = GAUSSIAN_SIGMA_FRACTION * nf;
                // Weighted sampling without replacement (Efraimidis-Spirakis): the `k` largest
                // keys u^(1/w_j) are a draw of `k` distinct lines with probabilities ~ w_j.
                let mut keyed: Vec<(f64, usize)> = (0..n)
                    .filter(|j| !mask[*j])
                    .map(|j| {
                        let wj = (-(j as f64 - c).powi(2) / (2.0 * s * s)).exp().max(1e-300);
                        let u: f64 = 1.0 - rng.random::<f64>();
                        (u.ln() / wj, j)
                    })
                    .collect();
                keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
                for (_, j) in keyed.into_iter().take(total - n_low) {
                    mask[j] = true;
                }
            }
            MaskKind::Poisson => {
                bail!("the Poisson-disc mask is 2-D: build it with MaskSpec::build")
            }
        }
        Ok(mask)
    }
}

/// The given offset (checked against the `count` possible ones) or one drawn uniformly, as
/// fastMRI's `rng.randint(0, high=count)`.
fn pick_offset(given: Option<usize>, count: usize, rng: &mut ChaCha8Rng) -> Result<usize> {
    match given {
        Some(o) => {
            ensure!(
                o < count,
                "mask offset {o}: must be below {count} for this acceleration"
            );
            Ok(o)
        }
        None => Ok(rng.random_range(0..count)),
    }
}

/// `round(N * center_fraction)` (fastMRI `sample_mask`, Python's half-to-even `round`).
pub fn num_low_frequencies(n: usize, center_fraction: f64) -> usize {
    (n as f64 * center_fraction).round_ties_even() as usize
}

/// The fully sampled centre: `N_low` lines from `pad = (N - N_low + 1) // 2` (fastMRI
/// `calculate_center_mask`).
pub fn center_lines(n: usize, n_low: usize) -> Vec<bool> {
    let pad = (n - n_low).div_ceil(2);
    (0..n).map(|j| j >= pad && j < pad + n_low).collect()
}

/// `offset, offset + R, offset + 2R, ...` below `N` (fastMRI `EquiSpacedMaskFunc`:
/// `mask[offset::acceleration] = 1`).
pub fn equispaced_lines(n: usize, acceleration: usize, offset: usize) -> Vec<usize> {
    (offset..n).step_by(acceleration.max(1)).collect()
}

/// `R (N_low - N) / (N_low R - N)`: the spacing of the outer lines that makes the total
/// `N_low + (N - N_low) / adjusted` equal `N / R` (fastMRI `EquispacedMaskFractionFunc`).
pub fn adjusted_acceleration(n: usize, acceleration: f64, n_low: usize) -> f64 {
    let (nf, lf) = (n as f64, n_low as f64);
    acceleration * (lf - nf) / (lf * acceleration - nf)
}

/// `np.around(np.arange(offset, N - 1, adjusted))` (fastMRI `EquispacedMaskFractionFunc`).
pub fn equispaced_fraction_lines(n: usize, adjusted: f64, offset: usize) -> Vec<usize> {
    let start = offset as f64;
    let stop = n as f64 - 1.0;
    if stop <= start {
        return Vec::new();
    }
    // NumPy's arange: length ceil((stop - start) / step), values start + i * delta with
    // delta = (start + step) - start.
    let len = ((stop - start) / adjusted).ceil() as usize;
    let delta = (start + adjusted) - start;
    (0..len)
        .map(|i| (start + i as f64 * delta).round_ties_even() as usize)
        .filter(|j| *j < n)
        .collect()
}

/// Growth of the Poisson-disc radius from the centre to the edge of k-space: `r(rho) =
/// r0 (1 + POISSON_DENSITY_SLOPE rho)`, so the density falls by `(1 + slope)^2 = 9` at the edge.
pub const POISSON_DENSITY_SLOPE: f64 = 2.0;

/// 2-D variable-density Poisson disc on the `h x w` grid: a fully sampled central block of
/// `round(h cf) x round(w cf)` points plus outer points no closer to each other than
/// `r(rho) = r0 (1 + 2 rho)` (`rho` = elliptical radius, 0 at the centre, 1 at the edge
/// midpoints), accepted by dart throwing over the grid points in random order. `r0` is found by
/// bisection so that the total is as close as the grid allows to `h w / R`.
fn poisson_disc(
    h: usize,
    w: usize,
    acceleration: f64,
    center_fraction: f64,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<bool>> {
    let target = ((h * w) as f64 / acceleration).round() as usize;
    let (ch, cw) = (
        num_low_frequencies(h, center_fraction),
        num_low_frequencies(w, center_fraction),
    );
    let rows = center_lines(h, ch);
    let cols = center_lines(w, cw);
    let centre: Vec<bool> = (0..h * w).map(|p| rows[p / w] && cols[p % w]).collect();
    let n_centre = centre.iter().filter(|b| **b).count();
    if target <= n_centre {
        return Ok(centre);
    }
    if acceleration == 1.0 {
        return Ok(vec![true; h * w]);
    }
    // One random order of the candidates, shared by every radius tried: the count then falls
    // monotonically with r0 and bisection converges.
    let mut order: Vec<usize> = (0..h * w).filter(|p| !centre[*p]).collect();
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let (cy, cx) = ((h / 2) as f64, (w / 2) as f64);
    let rho: Vec<f64> = (0..h * w)
        .map(|p| {
            let dy = (p / w) as f64 - cy;
            let dx = (p % w) as f64 - cx;
            ((dy / (h as f64 / 2.0)).powi(2) + (dx / (w as f64 / 2.0)).powi(2)).sqrt()
        })
        .collect();
    let throw = |r0: f64| -> Vec<bool> {
        let mut taken = centre.clone();
        let mut outer = vec![false; h * w];
        for &p in &order {
            let r = r0 * (1.0 + POISSON_DENSITY_SLOPE * rho[p]);
            let k = r.ceil() as isize;
            let (py, px) = ((p / w) as isize, (p % w) as isize);
            let mut free = true;
            'scan: for dy in -k..=k {
                let y = py + dy;
                if y < 0 || y >= h as isize {
                    continue;
                }
                for dx in -k..=k {
                    let x = px + dx;
                    if x < 0 || x >= w as isize || (dx == 0 && dy == 0) {
                        continue;
                    }
                    if outer[y as usize * w + x as usize] && ((dy * dy + dx * dx) as f64) < r * r {
                        free = false;
                        break 'scan;
                    }
                }
            }
            if free {
                outer[p] = true;
                taken[p] = true;
            }
        }
        taken
    };
    let count = |m: &[bool]| m.iter().filter(|b| **b).count();
    // Radii below 1 accept every outer point (grid neighbours are 1 apart and the test is
    // strict): the bracket starts where even the farthest point has r < 1.
    let rho_max = rho.iter().cloned().fold(0.0, f64::max);
    let mut lo = 0.99 / (1.0 + POISSON_DENSITY_SLOPE * rho_max);
    let mut best = throw(lo);
    let mut best_err = count(&best).abs_diff(target);
    // Points at least r0 apart have a density of at most 2 / (sqrt(3) r0^2) (hexagonal
    // packing), below 1/R once r0 >= 1.07 sqrt(R): start above that and widen if needed.
    let mut hi = 2.0 * acceleration.sqrt() + 1.0;
    while count(&throw(hi)) > target && hi < (h.max(w)) as f64 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..30 {
        let mid = 0.5 * (lo + hi);
        let m = throw(mid);
        let c = count(&m);
        let err = c.abs_diff(target);
        if err < best_err {
            best = m;
            best_err = err;
        }
        if c > target {
            lo = mid;
        } else {
            hi = mid;
        }
        if best_err == 0 || hi - lo < 1e-4 {
            break;
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_to_even_like_python() {
        assert_eq!(num_low_frequencies(368, 0.08), 29); // 29.44
        assert_eq!(num_low_frequencies(256, 0.04), 10); // 10.24
        assert_eq!(num_low_frequencies(50, 0.25), 12); // 12.5 -> 12, as Python's round
    }
}
