//! The "Score SDE" baseline (paper 004, appendix B.5.9, eq. B.36; compared in section 8.4):
//! PC sampling with the conditional score approximated by
//!
//!   `s(x, sigma) + grad_x log p(y_hat_t | x)`,   `y_hat_t = y + sigma A z`,
//!
//! a Gaussian likelihood of standard deviation `rate * sigma` around `A x` (the authors'
//! `get_baseline_sampler`), and no proximal step.

use super::pc::{langevin_step, reverse_diffusion_step};
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
        opts.steps * opts.corrector_steps + opts.steps - 1
    }

    fn run(&self, ctx: &mut Context, mut x: Tensor) -> Result<Tensor> {
        let levels = ctx.sde.levels(ctx.opts.steps);
        for (i, &sigma) in levels.iter().enumerate() {
            for _ in 0..ctx.opts.corrector_steps {
                let g = Self::conditional_score(ctx, &x, sigma)?;
                x = langevin_step(ctx, &x, &g);
                ctx.check(&x, sigma)?;
            }
            if let Some(&next) = levels.get(i + 1) {
                let g = Self::conditional_score(ctx, &x, sigma)?;
                x = reverse_diffusion_step(ctx, &x, &g, sigma, next);
                ctx.check(&x, sigma)?;
            }
        }
        Ok(x)
    }
}
