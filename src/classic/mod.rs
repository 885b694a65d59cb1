//! Classical reconstructions on the same operators as the score-based sampler, the references
//! every report compares against (docs/baselines.md):
//!
//! | name          | task | what                                                        |
//! |---------------|------|-------------------------------------------------------------|
//! | `fbp`         | CT   | `T^-1` (FBP) of the zero-filled sparse sinogram             |
//! | `zero_filled` | MRI  | `T^-1` (inverse FFT) of the zero-filled k-space             |
//! | `fista_tv`    | CT   | FISTA-TV, `1/2 ||A x - y||^2 + w TV(x)`, `x >= 0`           |
//! | `tv`          | MRI  | TV-regularised compressed sensing: the same FISTA-TV        |
//! | `li`          | MAR  | linear interpolation across the metal trace, then FBP      |
//!
//! `fbp`/`zero_filled` and `fista_tv`/`tv` are one implementation each under the name each
//! field uses. The TV weight is chosen by [`tune_tv_weight`] on validation slices.

pub mod fista_tv;
pub mod li_mar;
pub mod tv;
pub mod zero_filled;

use crate::metrics;
use crate::ops::norm::PowerIteration;
use crate::ops::MeasurementOperator;
use anyhow::{bail, ensure, Context, Result};
use fista_tv::{fista_tv, FistaTv};
use tch::Tensor;

/// A classical reconstruction, by the name used in reports and `metrics.json`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Baseline {
    Fbp,
    ZeroFilled,
    FistaTv(FistaTv),
    Tv(FistaTv),
    Li,
}

impl Baseline {
    /// From a report name or its CLI spelling (`fista-tv`, `zero-filled`). TV methods start with
    /// no weight: tune it ([`Baseline::tune`]) or set it before reconstructing.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "fbp" => Baseline::Fbp,
            "zero_filled" | "zero-filled" => Baseline::ZeroFilled,
            "fista_tv" | "fista-tv" => Baseline::FistaTv(FistaTv::default()),
            "tv" => Baseline::Tv(FistaTv::default()),
            "li" => Baseline::Li,
            other => bail!("baseline {other}: expected fbp, zero-filled, fista-tv, tv or li"),
        })
    }

    /// The key in reports: `"fbp"`, `"zero_filled"`, `"fista_tv"`, `"tv"`, `"li"`.
    pub fn name(&self) -> &'static str {
        match self {
            Baseline::Fbp => "fbp",
            Baseline::ZeroFilled => "zero_filled",
            Baseline::FistaTv(_) => "fista_tv",
            Baseline::Tv(_) => "tv",
            Baseline::Li => "li",
        }
    }

    /// The FISTA-TV settings of the TV methods.
    pub fn tv_settings(&self) -> Option<&FistaTv> {
        match self {
            Baseline::FistaTv(o) | Baseline::Tv(o) => Some(o),
            _ => None,
        }
    }

    fn tv_settings_mut(&mut self) -> Option<&mut FistaTv> {
        match self {
            Baseline::FistaTv(o) | Baseline::Tv(o) => Some(o),
            _ => None,
        }
    }

    /// Reconstruct `[B, 1, H, W]` real images from the zero-filled measurement `y`.
    pub fn reconstruct(&self, op: &MeasurementOperator, y: &Tensor) -> Result<Tensor> {
        let x = match self {
            Baseline::Fbp | Baseline::ZeroFilled => zero_filled::zero_filled(op, y),
            Baseline::FistaTv(o) | Baseline::Tv(o) => {
                fista_tv(op, y, o).with_context(|| self.name())?.x
            }
            Baseline::Li => li_mar::li_mar(op, y),
        };
        // Complex images (an MRI operator in the complex domain) are reported by magnitude.
        Ok(if x.is_complex() { x.abs() } else { x })
    }

    /// Choose the regularisation weight on validation data (`y` measured from `reference`) by
    /// [`tune_tv_weight`] over [`RELATIVE_TV_GRID`]; a no-op for methods without a weight.
    /// Returns the tuning table when there was one.
    pub fn tune(
        &mut self,
        op: &MeasurementOperator,
        y: &Tensor,
        reference: &Tensor,
        data_range: f64,
    ) -> Result<Option<Tuning>> {
        let name = self.name();
        let Some(opts) = self.tv_settings_mut() else {
            return Ok(None);
        };
        let tuning = tune_tv_weight(op, y, reference, data_range, &RELATIVE_TV_GRID, opts)
            .with_context(|| format!("tuning the {name} weight"))?;
        opts.weight = Some(tuning.weight);
        opts.lipschitz = Some(tuning.lipschitz);
        Ok(Some(tuning))
    }
}

/// The TV weights tried, relative to `||A||^2 * data_range`: the objective
/// `1/2 ||A x - y||^2 + w TV(x)` is invariant under `x -> c x` when `w` scales with `c`, and
/// under `A -> a A` when `w` scales with `a^2`, so relative weights carry over between CT and
/// MRI and between intensity scales.
pub const RELATIVE_TV_GRID: [f64; 9] = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1];

/// One weight tried.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TuningRow {
    pub weight: f64,
    pub relative_weight: f64,
    /// Means over the validation images.
    pub psnr: f64,
    pub ssim: f64,
}

/// The result of tuning: the chosen weight and everything tried.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tuning {
    pub weight: f64,
    pub lipschitz: f64,
    pub rows: Vec<TuningRow>,
}

/// The validation rule: run FISTA-TV with `w = rel * ||A||^2 * data_range` for every `rel` of
/// `relative_grid`, then at the two geometric midpoints around the best, and keep the weight
/// with the highest mean SSIM over the validation images (ties: higher PSNR). The same rule
/// (maximise validation SSIM) that tunes the sampler's lambda and snr.
pub fn tune_tv_weight(
    op: &MeasurementOperator,
    y: &Tensor,
    reference: &Tensor,
    data_range: f64,
    relative_grid: &[f64],
    base: &FistaTv,
) -> Result<Tuning> {
    ensure!(!relative_grid.is_empty(), "TV weight grid is empty");
    ensure!(
        relative_grid.iter().all(|r| r.is_finite() && *r >= 0.0),
        "TV weight grid {relative_grid:?}: weights must be finite and >= 0"
    );
    let lipschitz = match base.lipschitz {
        Some(l) => l,
        None => 1.01 * op.norm_squared(&PowerIteration::default()).norm_squared,
    };
    let mut rows: Vec<TuningRow> = Vec::new();
    let run = |rel: f64, rows: &mut Vec<TuningRow>| -> Result<()> {
        let weight = rel * lipschitz * data_range;
        let opts = FistaTv {
            weight: Some(weight),
            lipschitz: Some(lipschitz),
            ..*base
        };
        let x = fista_tv(op, y, &opts)?.x;
        let s = metrics::assess(&x, reference, data_range, None)?;
        let n = s.len() as f64;
        rows.push(TuningRow {
            weight,
            relative_weight: rel,
            psnr: s.iter().map(|v| v.psnr).sum::<f64>() / n,
            ssim: s.iter().map(|v| v.ssim).sum::<f64>() / n,
        });
        Ok(())
    };
    let mut grid: Vec<f64> = relative_grid.to_vec();
    grid.sort_by(f64::total_cmp);
    for &rel in &grid {
        run(rel, &mut rows)?;
    }
    let best_index = |rows: &[TuningRow]| {
        (0..rows.len())
            .max_by(|&a, &b| {
                rows[a]
                    .ssim
                    .total_cmp(&rows[b].ssim)
                    .then(rows[a].psnr.total_cmp(&rows[b].psnr))
            })
            .unwrap()
    };
    // Refine once between the best grid weight and its neighbours.
    let i = best_index(&rows);
    for j in [i.wrapping_sub(1), i + 1] {
        if j < grid.len() && grid[i] > 0.0 && grid[j] > 0.0 {
            run((grid[i] * grid[j]).sqrt(), &mut rows)?;
        }
    }
    let best = rows[best_index(&rows)];
    Ok(Tuning {
        weight: best.weight,
        lipschitz,
        rows,
    })
}
