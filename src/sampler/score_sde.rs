//! The "Score SDE" baseline (paper 004, appendix B.5.9, eq. B.36; compared in section 8.4):
//! PC sampling with the conditional score approximated by
//!
//!   `s(x, sigma) + grad_x log p(y_hat_t | x)`,   `y_hat_t = y + sigma A z`,
//!
//! a Gaussian likelihood of standard deviation `rate * sigma` around `A x` (the authors'
//! `get_baseline_sampler`), and no proximal step.

use super::pc::{self, predictor_corrector};
use super::{Context, Sampler, SamplerOptions};
use anyhow::Result;
use tch::Tensor;

pub struct ScoreSdeBaseline;

impl ScoreSdeBaseline {
    fn conditional_score(ctx: &mut Context, x: &Tensor, sigma: f64) -> Result<Tensor> {
        let s = ctx.score(x, sigma)?;
        let y_hat = ctx.noisy_measurement(sigma, x);
        Ok(s + ctx.likelihood_gradient(x, &y_hat, sigma))
    }
}

impl Sampler for ScoreSdeBaseline {
    fn name(&self) -> &'static str {
        "Score SDE (conditional score approximation)"
    }

    fn nfe(&self, opts: &SamplerOptions) -> usize {
        pc::nfe(opts)
    }

    /// The PC loop with no proximal step: every update moves from `x` with the conditional score.
    fn run(&self, ctx: &mut Context, x: Tensor) -> Result<Tensor> {
        predictor_corrector(ctx, x, |ctx, x, sigma| {
            Ok((x.shallow_clone(), Self::conditional_score(ctx, x, sigma)?))
        })
    }
}
