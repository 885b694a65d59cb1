//! SENSE (Pruessmann et al. 1999) with Tikhonov regularisation, the parallel-imaging baseline:
//! `argmin_x ||A x - y||^2 + lambda ||x||^2`, i.e. `(A^H A + lambda I) x = A^H y`, by
//! conjugate gradients from `x = 0`: [`projection::regularised_least_squares`] with `x0 = 0`,
//! the same solve as DDS's data step. What BART's `pics -l2 -r lambda` computes (tested
//! against it). On the complex SENSE operator this is plain SENSE; on the phase-folded real one
//! ([`crate::ops::mri::Sense::with_phase`]) it is SENSE with a known image phase.

use crate::ops::{projection, MeasurementOperator};
use anyhow::{ensure, Result};
use tch::Tensor;

/// Settings of [`sense`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SenseCg {
    /// `lambda` of the objective. With an orthonormal FFT and maps normalised to
    /// `sum_c |S_c|^2 = 1`, `||A||^2 <= 1`, so it is relative to the operator and, the solution
    /// being linear in `y`, to the intensity scale. 0.01 is a common starting point, not tuned.
    pub lambda: f64,
    /// CG iterations (the solve stops earlier when the residual falls below 1e-6 of its start).
    pub iterations: usize,
}

impl Default for SenseCg {
    fn default() -> Self {
        SenseCg {
            lambda: 0.01,
            iterations: 100,
        }
    }
}

/// The SENSE image `[B, 1, H, W]` (complex on the complex operator) from zero-filled k-space
/// `y`, `[B, C, H, W]`.
pub fn sense(op: &MeasurementOperator, y: &Tensor, opts: &SenseCg) -> Result<Tensor> {
    ensure!(
        opts.lambda.is_finite() && opts.lambda >= 0.0,
        "SENSE lambda {}: must be a finite number >= 0",
        opts.lambda
    );
    let x0 = op.adjoint(&(y * &op.mask)).zeros_like();
    Ok(projection::regularised_least_squares(
        op,
        &x0,
        y,
        opts.lambda,
        opts.iterations,
    ))
}
