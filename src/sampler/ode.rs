//! Few-step solvers, each with the proximal step before every update:
//!
//! - probability-flow ODE (chapter 7), Euler steps over the discrete levels:
//!   `x_{i+1} = x' + 1/2 (sigma_i^2 - sigma_{i+1}^2) s(x', sigma_i)` (deterministic apart from
//!   the initial sample and the measurement noise of `y_t`);
//! - Euler-Maruyama on the reverse VE SDE in continuous time, `t` from 1 to eps:
//!   `x <- x' + g(t)^2 s(x', sigma(t)) dt + g(t) sqrt(dt) z`, `g^2 = d sigma^2 / dt`.

use super::{Context, Sampler, SamplerOptions};
use anyhow::Result;
use tch::Tensor;

pub struct ProbabilityFlow;

impl Sampler for ProbabilityFlow {
    fn name(&self) -> &'static str {
        "probability-flow ODE"
    }

    fn nfe(&self, opts: &SamplerOptions) -> usize {
        opts.steps - 1
    }

    fn run(&self, ctx: &mut Context, mut x: Tensor) -> Result<Tensor> {
        let levels = ctx.sde.levels(ctx.opts.steps);
        for w in levels.windows(2) {
            let (sigma, next) = (w[0], w[1]);
            let (xp, s) = ctx.proximal_and_score(&x, sigma)?;
            x = xp + s * (0.5 * (sigma * sigma - next * next));
            ctx.check(&x, sigma)?;
        }
        Ok(x)
    }
}

pub struct EulerMaruyama;

impl Sampler for EulerMaruyama {
    fn name(&self) -> &'static str {
        "Euler-Maruyama"
    }

    fn nfe(&self, opts: &SamplerOptions) -> usize {
        opts.steps - 1
    }

    fn run(&self, ctx: &mut Context, mut x: Tensor) -> Result<Tensor> {
        let times = ctx.sde.times(ctx.opts.steps);
        for w in times.windows(2) {
            let (t, dt) = (w[0], w[0] - w[1]);
            let sigma = ctx.sde.sigma(t);
            let g2 = ctx.sde.g2(t);
            let (xp, s) = ctx.proximal_and_score(&x, sigma)?;
            let z = ctx.noise.normal_like(&xp);
            // The reverse-diffusion update with the variance `g(t)^2 dt` of the step.
            x = crate::sde::reverse_diffusion(&xp, &s, &z, &(g2 * dt));
            ctx.check(&x, sigma)?;
        }
        Ok(x)
    }
}
