//! `||A||^2`, the largest eigenvalue of `A^T A`, by power iteration: the Lipschitz constant of
//! the gradient of `1/2 ||A x - y||^2` that sets the step `1/L` of gradient methods (FISTA).
//! Works for any [`MeasurementOperator`], on the device of its mask.

use super::rng::standard_normal;
use super::{inner, MeasurementOperator};
use tch::Kind;

/// Settings of the power iteration.
#[derive(Clone, Copy, Debug)]
pub struct PowerIteration {
    pub max_iter: usize,
    /// Stop when the Rayleigh quotient changes by less than `tol` (relative) between iterations.
    pub tol: f64,
    pub seed: u64,
}

impl Default for PowerIteration {
    fn default() -> Self {
        PowerIteration {
            max_iter: 200,
            tol: 1e-6,
            seed: 0,
        }
    }
}

/// The estimate and how it was reached.
#[derive(Clone, Copy, Debug)]
pub struct NormEstimate {
    /// `||A||^2` (the Rayleigh quotient `<v, A^T A v>` of the last unit vector `v`; it
    /// approaches the top eigenvalue from below).
    pub norm_squared: f64,
    pub iterations: usize,
    pub converged: bool,
}

impl MeasurementOperator {
    /// `||A||^2 = lambda_max(A^T A)` by power iteration from a seeded Gaussian start.
    pub fn norm_squared(&self, opts: &PowerIteration) -> NormEstimate {
        let [h, w] = self.transform.image_shape();
        let mut v = standard_normal(&[1, 1, h, w], opts.seed, Kind::Float, self.mask.device());
        let mut previous = f64::NAN;
        let mut estimate = NormEstimate {
            norm_squared: 0.0,
            iterations: 0,
            converged: false,
        };
        for k in 1..=opts.max_iter.max(1) {
            v = &v / inner(&v, &v).sqrt();
            let av = self.adjoint(&self.forward(&v));
            let rayleigh = inner(&v, &av);
            estimate = NormEstimate {
                norm_squared: rayleigh,
                iterations: k,
                converged: false,
            };
            let norm = inner(&av, &av).sqrt();
            if norm == 0.0 {
                // A^T A v = 0: v is in the null space, and for a random start so is everything.
                estimate.converged = true;
                break;
            }
            if (rayleigh - previous).abs() <= opts.tol * rayleigh.abs() {
                estimate.converged = true;
                break;
            }
            previous = rayleigh;
            v = av;
        }
        estimate
    }
}

/// `||A||^2` with the default settings, for callers that only need the number.
pub fn lipschitz(op: &MeasurementOperator) -> f64 {
    op.norm_squared(&PowerIteration::default()).norm_squared
}
