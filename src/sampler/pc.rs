//! Predictor-corrector sampling ("PC + ours", the default; paper 004 chapter 7 and section
//! 8.3): at each noise level, `corrector_steps` Langevin corrector steps, then one
//! reverse-diffusion predictor step to the next level, each preceded by the proximal step.
//! Corrector first, as in the authors' code (`pc_sampler` and `get_projection_sampler`).
//!
//! The loop itself, [`predictor_corrector`], is shared with the Score SDE baseline
//! (`score_sde.rs`), which differs only in what each update moves from and with which score.

use super::{Context, Sampler, SamplerOptions};
use anyhow::Result;
use tch::{Kind, Tensor};

pub struct PredictorCorrector;

/// Batch mean of the per-image L2 norms.
fn mean_norm(t: &Tensor) -> f64 {
    let b = t.size()[0];
    f64::try_from(
        t.reshape([b, -1])
            .norm_scalaropt_dim(2.0, [1], false)
            .mean(Kind::Double),
    )
    .unwrap_or(f64::NAN)
}

/// One Langevin corrector step with the snr rule (method.md):
/// `step = 2 (r |z| / |G|)^2`, `x <- x' + step G + sqrt(2 step) z`, norms averaged over the
/// batch. `g` is the score (or the conditional score of the Score SDE baseline).
fn langevin_step(ctx: &mut Context, xp: &Tensor, g: &Tensor) -> Tensor {
    let z = ctx.noise.normal_like(xp);
    let ratio = ctx.opts.snr * mean_norm(&z) / mean_norm(g);
    let step = 2.0 * ratio * ratio;
    xp + g * step + z * (2.0 * step).sqrt()
}

/// One reverse-diffusion predictor step from `sigma` to `next` (VE):
/// `x <- x' + (sigma^2 - next^2) s + sqrt(sigma^2 - next^2) z`.
fn reverse_diffusion_step(
    ctx: &mut Context,
    xp: &Tensor,
    s: &Tensor,
    sigma: f64,
    next: f64,
) -> Tensor {
    let d = sigma * sigma - next * next;
    let z = ctx.noise.normal_like(xp);
    crate::sde::reverse_diffusion(xp, s, &z, &d)
}

/// Score evaluations of one [`predictor_corrector`] run.
pub fn nfe(opts: &SamplerOptions) -> usize {
    opts.steps * opts.corrector_steps + opts.steps - 1
}

/// The predictor-corrector loop over the levels of `ctx.sde`. Before every update,
/// `guide(ctx, x, sigma)` returns the point the update moves from and the score it uses there:
/// the proximal step and the prior score for "PC + ours", `x` itself and the conditional score
/// for the Score SDE baseline.
pub fn predictor_corrector<G>(ctx: &mut Context, mut x: Tensor, mut guide: G) -> Result<Tensor>
where
    G: FnMut(&mut Context, &Tensor, f64) -> Result<(Tensor, Tensor)>,
{
    let levels = ctx.sde.levels(ctx.opts.steps);
    for (i, &sigma) in levels.iter().enumerate() {
        for _ in 0..ctx.opts.corrector_steps {
            let (xp, g) = guide(ctx, &x, sigma)?;
            x = langevin_step(ctx, &xp, &g);
            ctx.check(&x, sigma)?;
        }
        if let Some(&next) = levels.get(i + 1) {
            let (xp, s) = guide(ctx, &x, sigma)?;
            x = reverse_diffusion_step(ctx, &xp, &s, sigma, next);
            ctx.check(&x, sigma)?;
        }
    }
    Ok(x)
}

impl Sampler for PredictorCorrector {
    fn name(&self) -> &'static str {
        "PC"
    }

    fn nfe(&self, opts: &SamplerOptions) -> usize {
        nfe(opts)
    }

    fn run(&self, ctx: &mut Context, x: Tensor) -> Result<Tensor> {
        predictor_corrector(ctx, x, |ctx, x, sigma| ctx.proximal_and_score(x, sigma))
    }
}
