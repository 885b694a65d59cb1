//! Annealed Langevin dynamics (Song & Ermon; paper 004 chapter 5): at level `sigma_i`,
//! `corrector_steps` steps of `x <- x + (alpha_i / 2) s(x, sigma_i) + sqrt(alpha_i) z` with
//! `alpha_i = e sigma_i^2 / sigma_min^2`.
//!
//! Two ways to condition on the measurement (section 8.4, Fig. 8.5):
//! - "ALD + ours" (`proximal: true`): the proximal step before every Langevin step;
//! - "Langevin" of Jalal et al. (`proximal: false`): the likelihood gradient
//!   `A^T (y - A x) / gamma_i^2` added to the score, `gamma_i^2 = sigma_y^2 + (rate sigma_i)^2`.

use super::{Context, Sampler, SamplerOptions};
use anyhow::Result;
use tch::Tensor;

pub struct AnnealedLangevin {
    pub proximal: bool,
}

impl Sampler for AnnealedLangevin {
    fn name(&self) -> &'static str {
        if self.proximal {
            "ALD + proximal"
        } else {
            "Langevin (Jalal et al.)"
        }
    }

    fn nfe(&self, opts: &SamplerOptions) -> usize {
        opts.steps * opts.corrector_steps
    }

    fn run(&self, ctx: &mut Context, mut x: Tensor) -> Result<Tensor> {
        let levels = ctx.sde.levels(ctx.opts.steps);
        let sigma_l = ctx.sde.sigma_min;
        for &sigma in &levels {
            let alpha = ctx.opts.ald_step * (sigma / sigma_l).powi(2);
            for _ in 0..ctx.opts.corrector_steps {
                let (xp, g) = if self.proximal {
                    ctx.proximal_and_score(&x, sigma)?
                } else {
                    let s = ctx.score(&x, sigma)?;
                    let y = ctx.y.shallow_clone();
                    let g = s + ctx.likelihood_gradient(&x, &y, sigma);
                    (x.shallow_clone(), g)
                };
                let z = ctx.noise.normal_like(&xp);
                x = xp + g * (alpha / 2.0) + z * alpha.sqrt();
                ctx.check(&x, sigma)?;
            }
        }
        Ok(x)
    }
}
