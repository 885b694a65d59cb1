//! FISTA-TV: `min_x 1/2 ||A x - y||^2 + w TV(x)` (`x >= 0` optional) for any measurement
//! operator: FISTA-TV for sparse-view CT and TV-regularised compressed sensing for MRI are this
//! one function on different operators.
//!
//! Beck & Teboulle 2009 (SIAM J. Imaging Sci. 2(1), FISTA; and IEEE TIP 18(11), MFISTA with the
//! FGP prox of `tv.rs`): step `1/L` with `L = ||A||^2` from power iteration (times 1.01, since
//! the Rayleigh quotient approaches `||A||^2` from below), gradient `A^T (A x - y)`, the TV prox
//! warm-started from the previous dual, and stopping on the relative change of the iterate.
//! The monotone variant (MFISTA, the default) keeps the previous iterate when the prox step would
//! raise the objective, which the inexact prox can otherwise cause.

use super::tv::{prox_tv, total_variation, TvDual};
use crate::ops::norm::PowerIteration;
use crate::ops::MeasurementOperator;
use anyhow::{bail, ensure, Result};
use tch::{Kind, Tensor};

/// Settings of FISTA-TV.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FistaTv {
    /// `w`, the TV weight, in the units of the objective above (it scales with the image's
    /// range times `||A||^2`; `classic::tune` picks it). `None` until chosen.
    pub weight: Option<f64>,
    /// Constrain `x >= 0` (images of attenuation or magnitude).
    pub nonneg: bool,
    pub max_iter: usize,
    /// Stop when `||x_k - x_{k-1}|| <= tol ||x_k||` for every image of the batch.
    pub tol: f64,
    /// FGP iterations per TV prox (warm-started).
    pub inner_iter: usize,
    /// MFISTA (objective never increases) instead of plain FISTA.
    pub monotone: bool,
    /// `L = ||A||^2` if known; otherwise estimated by power iteration.
    pub lipschitz: Option<f64>,
}

impl Default for FistaTv {
    fn default() -> Self {
        FistaTv {
            weight: None,
            nonneg: true,
            max_iter: 300,
            tol: 1e-4,
            inner_iter: 10,
            monotone: true,
            lipschitz: None,
        }
    }
}

impl FistaTv {
    pub fn with_weight(mut self, weight: f64) -> Self {
        self.weight = Some(weight);
        self
    }
}

/// The reconstruction and a record of the run.
pub struct FistaTvResult {
    /// `[B, 1, H, W]`, real.
    pub x: Tensor,
    pub iterations: usize,
    /// Whether the tolerance was met before `max_iter`.
    pub converged: bool,
    /// The objective of each image after each iteration (`objective[k][b]`).
    pub objective: Vec<Vec<f64>>,
    /// The `L` used.
    pub lipschitz: f64,
}

/// `1/2 ||A x - y||^2 + w TV(x)` per image, `[B]` double.
pub fn objective(op: &MeasurementOperator, x: &Tensor, y: &Tensor, weight: f64) -> Tensor {
    objective_given(&op.forward(x), x, &(y * &op.mask), weight)
}

/// The objective from `A x` already computed (`y` zero-filled).
fn objective_given(ax: &Tensor, x: &Tensor, y: &Tensor, weight: f64) -> Tensor {
    let b = x.size()[0];
    let r = (ax - y).abs().square();
    let fidelity = r.reshape([b, -1]).sum_dim_intlist(1, false, Kind::Double) * 0.5;
    fidelity + total_variation(x) * weight
}

/// Iterations between exact recomputations of `A y_k` (see the loop).
const REFRESH: usize = 50;

/// Run FISTA-TV on the zero-filled measurement `y` (`[B, 1, M, K]`, stored as in ops/mod.rs),
/// starting from `T^-1 y` (FBP / zero-filled inverse FFT).
pub fn fista_tv(op: &MeasurementOperator, y: &Tensor, opts: &FistaTv) -> Result<FistaTvResult> {
    let weight = match opts.weight {
        Some(w) if w.is_finite() && w >= 0.0 => w,
        Some(w) => bail!("TV weight {w}: must be a finite number >= 0"),
        None => bail!("FISTA-TV has no TV weight: choose one with classic::tune_tv_weight or give it explicitly"),
    };
    ensure!(opts.max_iter >= 1, "FISTA-TV max_iter must be at least 1");
    ensure!(
        opts.tol.is_finite() && opts.tol >= 0.0,
        "FISTA-TV tolerance {}: must be >= 0",
        opts.tol
    );
    let y = y * &op.mask;
    // Start at the direct inverse of the measured data (FBP over the measured angles, the
    // zero-filled image): `T^-1` of the zero-filled sinogram would start sparse-view CT at
    // (measured / full) of the right intensity, and a fixed iteration budget from there can end
    // below FBP when many views are measured.
    let start = op.transform.inverse_masked(&y, &op.mask);
    if start.is_complex() {
        bail!(
            "FISTA-TV reconstructs real images but {} returns complex ones: build the MRI \
             operator with a real image domain (MriFft::real)",
            op.transform.describe()
        );
    }
    let lipschitz = match opts.lipschitz {
        Some(l) => l,
        None => 1.01 * op.norm_squared(&PowerIteration::default()).norm_squared,
    };
    ensure!(
        lipschitz.is_finite() && lipschitz > 0.0,
        "FISTA-TV: ||A||^2 = {lipschitz} for {}: the operator measures nothing",
        op.transform.describe()
    );
    let step = 1.0 / lipschitz;
    let theta = weight * step;
    let project = |x: Tensor| if opts.nonneg { x.clamp_min(0.0) } else { x };

    let b = start.size()[0];
    let mut x = project(start);
    let mut ax = op.forward(&x);
    let mut f_x = objective_given(&ax, &x, &y, weight);
    let mut momentum_point = x.shallow_clone();
    let mut a_momentum = ax.shallow_clone();
    let mut t = 1.0f64;
    let mut dual = TvDual::zeros_like(&x);
    let mut history = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    for _ in 0..opts.max_iter {
        iterations += 1;
        let grad = op.adjoint(&(&a_momentum - &y));
        let z = prox_tv(
            &(&momentum_point - grad * step),
            theta,
            opts.nonneg,
            opts.inner_iter,
            &mut dual,
        );
        let az = op.forward(&z);
        let f_z = objective_given(&az, &z, &y, weight);
        let (x_next, ax_next, f_next) = if opts.monotone {
            // MFISTA: x_k = argmin {F(z), F(x_{k-1})}, per image.
            let choose = f_z.le_tensor(&f_x).to_kind(z.kind()).reshape([b, 1, 1, 1]);
            let x_next = &z * &choose + &x * (1.0 - &choose);
            let ax_next = &az * &choose + &ax * (1.0 - &choose);
            (x_next, ax_next, f_z.minimum(&f_x))
        } else {
            (z.shallow_clone(), az.shallow_clone(), f_z)
        };
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        // y_{k+1} = x_k + t_k/t_{k+1} (z_k - x_k) + (t_k - 1)/t_{k+1} (x_k - x_{k-1}); for plain
        // FISTA z_k = x_k and this is the usual extrapolation.
        let (c1, c2) = (t / t_next, (t - 1.0) / t_next);
        momentum_point = &x_next + (&z - &x_next) * c1 + (&x_next - &x) * c2;
        // A is linear, so A y_{k+1} is the same combination of A z, A x_k and A x_{k-1}: one
        // application of A and one of A^T per iteration (A is the costly part for CT).
        // Recomputed exactly now and then so that rounding cannot accumulate.
        a_momentum = if iterations % REFRESH == 0 {
            op.forward(&momentum_point)
        } else {
            &ax_next + (&az - &ax_next) * c1 + (&ax_next - &ax) * c2
        };
        let change = relative_change(&z, &x, b)?;
        history.push(Vec::<f64>::try_from(&f_next)?);
        x = x_next;
        ax = ax_next;
        f_x = f_next;
        t = t_next;
        if change.iter().all(|c| *c <= opts.tol) {
            converged = true;
            break;
        }
    }
    Ok(FistaTvResult {
        x,
        iterations,
        converged,
        objective: history,
        lipschitz,
    })
}

/// `||z - x|| / ||z||` per image.
fn relative_change(z: &Tensor, x: &Tensor, b: i64) -> Result<Vec<f64>> {
    let num = (z - x)
        .square()
        .reshape([b, -1])
        .sum_dim_intlist(1, false, Kind::Double)
        .sqrt();
    let den = z
        .square()
        .reshape([b, -1])
        .sum_dim_intlist(1, false, Kind::Double)
        .sqrt();
    let (num, den) = (Vec::<f64>::try_from(num)?, Vec::<f64>::try_from(den)?);
    Ok(num
        .iter()
        .zip(den.iter())
        .map(|(n, d)| if *d > 0.0 { n / d } else { *n })
        .collect())
}
