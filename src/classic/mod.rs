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
//! | `rss`         | multi-coil MRI | zero-filled root sum of squares over the coils    |
//! | `sense`       | multi-coil MRI | SENSE, CG on `(A^H A + lambda I) x = A^H y`       |
//!
//! `fbp`/`zero_filled` and `fista_tv`/`tv` are one implementation each under the name each
//! field uses. The TV weight is chosen by [`tv_weight`] ([`tune_tv_weight`] on validation slices).

pub mod fista_tv;
pub mod li_mar;
pub mod rss;
pub mod sense;
pub mod tv;
pub mod zero_filled;

use crate::metrics;
use crate::ops::norm::PowerIteration;
use crate::ops::MeasurementOperator;
use anyhow::{ensure, Context, Result};
use fista_tv::{fista_tv, FistaTv};
use sense::SenseCg;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Which classical reconstruction, by the name used in settings, reports and `metrics.json`
/// (`fista-tv` and `zero-filled` are accepted too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    Fbp,
    #[serde(alias = "zero-filled")]
    ZeroFilled,
    #[serde(alias = "fista-tv")]
    FistaTv,
    Tv,
    Li,
    Rss,
    Sense,
}

crate::names::named!(BaselineKind, "baseline", {
    Fbp => "fbp",
    ZeroFilled => "zero_filled",
    FistaTv => "fista_tv",
    Tv => "tv",
    Li => "li",
    Rss => "rss",
    Sense => "sense",
});

/// The baselines that make sense for multi-coil Cartesian MRI (the list a multi-coil task's
/// `baselines()` would return): the direct reconstruction, parallel imaging, and compressed
/// sensing (FISTA-TV, on the phase-folded real SENSE operator).
pub const MULTI_COIL_MRI: &[BaselineKind] =
    &[BaselineKind::Rss, BaselineKind::Sense, BaselineKind::Tv];

impl BaselineKind {
    /// Whether the method has a TV weight to choose.
    pub fn is_tv(self) -> bool {
        matches!(self, BaselineKind::FistaTv | BaselineKind::Tv)
    }
}

/// A classical reconstruction with its settings (the TV methods carry FISTA-TV's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Baseline {
    Fbp,
    ZeroFilled,
    FistaTv(FistaTv),
    Tv(FistaTv),
    Li,
    Rss,
    Sense(SenseCg),
}

impl Baseline {
    /// The method of `kind` with default settings; TV methods start with no weight (choose it
    /// with [`tv_weight`], or set it, before reconstructing).
    pub fn of(kind: BaselineKind) -> Self {
        match kind {
            BaselineKind::Fbp => Baseline::Fbp,
            BaselineKind::ZeroFilled => Baseline::ZeroFilled,
            BaselineKind::FistaTv => Baseline::FistaTv(FistaTv::default()),
            BaselineKind::Tv => Baseline::Tv(FistaTv::default()),
            BaselineKind::Li => Baseline::Li,
            BaselineKind::Rss => Baseline::Rss,
            BaselineKind::Sense => Baseline::Sense(SenseCg::default()),
        }
    }

    /// [`Baseline::of`] a name ([`BaselineKind`]'s spellings).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(Self::of(name.parse()?))
    }

    pub fn kind(&self) -> BaselineKind {
        match self {
            Baseline::Fbp => BaselineKind::Fbp,
            Baseline::ZeroFilled => BaselineKind::ZeroFilled,
            Baseline::FistaTv(_) => BaselineKind::FistaTv,
            Baseline::Tv(_) => BaselineKind::Tv,
            Baseline::Li => BaselineKind::Li,
            Baseline::Rss => BaselineKind::Rss,
            Baseline::Sense(_) => BaselineKind::Sense,
        }
    }

    /// The key in reports.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Reconstruct `[B, 1, H, W]` real images from the zero-filled measurement `y`.
    pub fn reconstruct(&self, op: &MeasurementOperator, y: &Tensor) -> Result<Tensor> {
        let x = match self {
            Baseline::Fbp | Baseline::ZeroFilled => zero_filled::zero_filled(op, y),
            Baseline::FistaTv(o) | Baseline::Tv(o) => {
                fista_tv(op, y, o).with_context(|| self.name())?.x
            }
            Baseline::Li => li_mar::li_mar(op, y),
            Baseline::Rss => rss::rss(op, y),
            Baseline::Sense(o) => sense::sense(op, y, o).with_context(|| self.name())?,
        };
        // Complex images (an MRI operator in the complex domain) are reported by magnitude.
        Ok(if x.is_complex() { x.abs() } else { x })
    }
}

/// Where a TV weight comes from (docs/baselines.md): given relative to `||A||^2 * data range`,
/// tuned on a validation measurement that is not reconstructed, or the default.
pub enum TvWeightSource<'a> {
    Given(f64),
    Tuned {
        op: &'a MeasurementOperator,
        y: &'a Tensor,
        reference: &'a Tensor,
    },
    /// Tuned on the very measurement it reconstructs (when there is no other slice): favours
    /// the baseline.
    Oracle {
        op: &'a MeasurementOperator,
        y: &'a Tensor,
        reference: &'a Tensor,
    },
    Default,
}

/// The TV weight chosen for an operator and its data range.
#[derive(Clone, Debug)]
pub struct TvWeight {
    /// `relative * ||A||^2 * data_range`.
    pub weight: f64,
    /// FISTA's step constant `1.01 ||A||^2`.
    pub lipschitz: f64,
    /// What decided the weight, for the report (None when it was given).
    pub note: Option<String>,
}

/// Relative TV weight when nothing else decides it (the middle of [`RELATIVE_TV_GRID`]).
pub const DEFAULT_RELATIVE_TV: f64 = 1e-3;

/// The TV weight for the operator `target`: `relative * ||A||^2 * range`, the relative weight
/// either given, tuned on a measurement with its reference by maximising SSIM
/// ([`tune_tv_weight`], the rule that tuned the sampler's lambda and snr), or
/// [`DEFAULT_RELATIVE_TV`].
pub fn tv_weight(
    target: &MeasurementOperator,
    range: f64,
    source: TvWeightSource,
    quiet: bool,
) -> Result<TvWeight> {
    let lipschitz = 1.01 * crate::ops::norm::lipschitz(target);
    let (rel, note) = match &source {
        TvWeightSource::Given(rel) => (*rel, None),
        TvWeightSource::Tuned { op, y, reference }
        | TvWeightSource::Oracle { op, y, reference } => {
            let vr = metrics::value_range(reference);
            let base = FistaTv {
                lipschitz: Some(lipschitz),
                ..Default::default()
            };
            let t = tune_tv_weight(op, y, reference, vr, &RELATIVE_TV_GRID, &base, quiet)?;
            let rel = t.weight / (lipschitz * vr);
            let note = if matches!(source, TvWeightSource::Oracle { .. }) {
                format!("TV weight tuned on the reconstructed slice itself by maximising SSIM (no other slice of the input to tune on): an oracle choice that favours the baseline; relative weight {rel:.2e}.")
            } else {
                format!("TV weight tuned on a validation slice (not reconstructed here) by maximising SSIM: relative weight {rel:.2e}.")
            };
            (rel, Some(note))
        }
        TvWeightSource::Default => {
            let rel = DEFAULT_RELATIVE_TV;
            (rel, Some(format!("No validation slice (single-slice input) and no tv_weight given: TV used the default relative weight {rel:.0e}.")))
        }
    };
    Ok(TvWeight {
        weight: rel * lipschitz * range,
        lipschitz,
        note,
    })
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
/// (maximise validation SSIM) that tunes the sampler's lambda and snr. Shows its progress
/// (weights tried) unless `quiet`: each weight is a full FISTA-TV run.
pub fn tune_tv_weight(
    op: &MeasurementOperator,
    y: &Tensor,
    reference: &Tensor,
    data_range: f64,
    relative_grid: &[f64],
    base: &FistaTv,
    quiet: bool,
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
    // The grid, then up to two refinements.
    let progress = crate::progress::bar(relative_grid.len() as u64 + 2, "weights", quiet);
    progress.set_message("TV weight tuning");
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
        progress.inc(1);
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
    let refine: Vec<usize> = [i.wrapping_sub(1), i + 1]
        .into_iter()
        .filter(|&j| j < grid.len() && grid[i] > 0.0 && grid[j] > 0.0)
        .collect();
    progress.set_length((grid.len() + refine.len()) as u64);
    for j in refine {
        run((grid[i] * grid[j]).sqrt(), &mut rows)?;
    }
    progress.finish_and_clear();
    let best = rows[best_index(&rows)];
    Ok(Tuning {
        weight: best.weight,
        lipschitz,
        rows,
    })
}
