//! Data consistency shared by the samplers: the noisy measurement path `y_t`, the proximal
//! step of Theorem 8.1 with the score taken before or after it, the Gaussian likelihood
//! gradient of the baselines, the final Tweedie denoise and the final hard data consistency.

use super::{Context, SamplerOptions};
use crate::ops::projection::{project, ProjectionOptions};
use crate::ops::MeasurementOperator;
use crate::prior::ScoreModel;
use anyhow::Result;
use tch::Tensor;

impl Context<'_> {
    /// `y_t = y + sigma A z`, `z ~ N(0, I)` image-shaped (VE SDE: alpha = 1, beta = sigma; the
    /// measurement noise path of section 8.3.2). Zero-filled like `y`.
    pub fn noisy_measurement(&mut self, sigma: f64, like: &Tensor) -> Tensor {
        let z = self.noise.normal_like(like);
        &self.y + self.op.forward(&z) * sigma
    }

    /// `x' = k(x, y_t, lambda)` (eq. 8.6, Theorem 8.1). Skipped when lambda = 0 (it would
    /// return `x`), so unconditional runs draw no measurement noise.
    pub fn proximal(&mut self, x: &Tensor, sigma: f64) -> Tensor {
        if self.opts.lambda == 0.0 {
            return x.shallow_clone();
        }
        let y_t = self.noisy_measurement(sigma, x);
        self.op.proximal(x, &y_t, self.opts.lambda)
    }

    /// The proximal step and the score used by the update that follows it: at `x'`
    /// (`score_after_proximal`, the default, as in the authors' code) or at `x` (eq. 8.7).
    pub fn proximal_and_score(&mut self, x: &Tensor, sigma: f64) -> Result<(Tensor, Tensor)> {
        let xp = self.proximal(x, sigma);
        let s = if self.opts.score_after_proximal {
            self.score(&xp, sigma)?
        } else {
            self.score(x, sigma)?
        };
        Ok((xp, s))
    }

    /// `grad_x log N(y_hat; A x, gamma^2 I) = A^T (y_hat - A x) / gamma^2` with
    /// `gamma^2 = measurement_sigma^2 + (rate sigma)^2`: the data term of the Langevin
    /// (Jalal et al.) and Score SDE baselines (`projection_sigma_rate` in the authors' code).
    pub fn likelihood_gradient(&self, x: &Tensor, y_hat: &Tensor, sigma: f64) -> Tensor {
        let rate = self.opts.likelihood_sigma_rate;
        let gamma2 = self.opts.measurement_sigma.powi(2) + (rate * sigma).powi(2);
        self.op.adjoint(&(y_hat - self.op.forward(x))) / gamma2
    }
}

/// Tweedie's formula for the VE perturbation: `E[x_0 | x] = x + sigma^2 s(x, sigma)`.
pub fn tweedie_denoise(model: &dyn ScoreModel, x: &Tensor, sigma: f64) -> Result<Tensor> {
    let b = x.size()[0];
    let s = Tensor::full([b], sigma, (tch::Kind::Float, x.device()));
    Ok(crate::sde::tweedie(
        x,
        &model.score(x, &s)?,
        &(sigma * sigma),
    ))
}

/// The last data-consistency step: the exact projection onto `A x = y` for a noise-free
/// measurement (section 8.3.2, "at the last sampling step"); for a noisy one, the proximal
/// step with the measurement itself (no added noise) and the run's lambda.
pub fn final_consistency(
    op: &MeasurementOperator,
    x: &Tensor,
    y: &Tensor,
    opts: &SamplerOptions,
) -> Tensor {
    if opts.noise_free_measurement {
        let p = ProjectionOptions {
            max_iterations: opts.projection_iterations,
            ..Default::default()
        };
        project(op, x, y, p).0
    } else if opts.lambda > 0.0 {
        op.proximal(x, y, opts.lambda)
    } else {
        x.shallow_clone()
    }
}
