//! Decomposed diffusion sampling (DDS; Chung, Lee and Ye, "Decomposed Diffusion Sampler for
//! Accelerating Large-Scale Inverse Problems", 2023): a few-step sampler that puts the data
//! consistency on the *denoised* image instead of on the noisy sample. At each of the N levels
//! `sigma_max = sigma_1 > ... > sigma_N = sigma_min`:
//!
//! 1. Tweedie denoise, `x0 = x + sigma_i^2 s(x, sigma_i)` (`sde::tweedie`; one score evaluation);
//! 2. `dds_cg_iterations` (K) conjugate-gradient steps on
//!    `min |A x - y|^2 + gamma_i |x - x0|^2` started at `x0`
//!    (`ops::projection::regularised_least_squares`), `gamma_i = dds_gamma +
//!    (measurement_sigma / sigma_i)^2`: 0 for a noise-free `y` (a partial move towards the
//!    projection onto `A x = y`, in `x0 + range(A^T)`), the measurement's noise variance over
//!    the denoiser's error variance (at most `sigma_i^2`) for a noisy one;
//! 3. DDIM re-noise to `sigma_{i+1}` with the noise the network saw,
//!    `eps = (x - x0) / sigma_i` (before the data step): `x <- x0' + sqrt(sigma_{i+1}^2 - c^2)
//!    eps + c z`, `c = dds_eta sigma_{i+1} sqrt(1 - sigma_{i+1}^2 / sigma_i^2)` (the VE form of
//!    DDIM's `sigma_t`; `dds_eta = 0` deterministic, 1 the ancestral posterior step).
//!
//! `dds_fresh` (f) moves `c` towards `sigma_{i+1}`, `c <- c + f (sigma_{i+1} - c)`: at 1 the
//! re-noise is all fresh noise and `eps` is dropped. Under a hard data step (MRI's k-space
//! replacement) `eps`, taken before the data step, holds the aliasing the step removed, and
//! DDIM's rule would carry it into the next level; fresh noise does not. That is our reading
//! of why MRI and MAR gain from it and CT does not (docs/sampling.md, "Warm start and fresh
//! noise").
//!
//! Warm start (`dds_start_sigma` = `sigma_s` below `sigma_max`; Chung, Sim and Ye's
//! "come-closer-diffuse-faster"): the levels run geometrically from `sigma_s` to `sigma_min`,
//! and the start is the data step applied to a blank image (K CG steps from 0 towards the
//! least-squares solution: zero-filled MRI, a smooth CT image) plus noise of `sigma_s`. The
//! N levels then lie where the measurement leaves the image undecided, not above the data
//! range where the prior's samples are all alike. Unconditional runs (`lambda = 0`) start
//! cold: without data there is nothing to start from.
//!
//! The last level returns `x0'` itself, already denoised at `sigma_min`, so [`reconstruct`]
//! adds no separate final denoise (N score evaluations in all). `lambda = 0` skips the data
//! step (unconditional sampling); otherwise `lambda` is not used. The data step uses `y` itself,
//! not the noisy path `y_t` of PC: it acts on an estimate of the clean image.
//!
//! [`reconstruct`]: super::reconstruct

use super::{Context, Sampler, SamplerOptions};
use crate::ops::projection::regularised_least_squares;
use crate::sde::VeSde;
use anyhow::{bail, Result};
use tch::Tensor;

pub struct Decomposed;

impl Decomposed {
    /// The data-consistency step on a denoised image at level `sigma`.
    fn data_step(ctx: &Context, x0: &Tensor, sigma: f64) -> Tensor {
        let o = ctx.opts;
        if o.lambda == 0.0 || o.dds_cg_iterations == 0 {
            return x0.shallow_clone();
        }
        let gamma = o.dds_gamma + (o.measurement_sigma / sigma).powi(2);
        regularised_least_squares(ctx.op, x0, &ctx.y, gamma, o.dds_cg_iterations)
    }
}

impl Sampler for Decomposed {
    fn name(&self) -> &'static str {
        "DDS"
    }

    fn nfe(&self, opts: &SamplerOptions) -> usize {
        opts.steps
    }

    fn denoises_last(&self) -> bool {
        true
    }

    fn run(&self, ctx: &mut Context, mut x: Tensor) -> Result<Tensor> {
        let o = ctx.opts;
        let (sigma_min, sigma_max) = (ctx.sde.sigma_min, ctx.sde.sigma_max);
        let warm = o.lambda > 0.0 && o.dds_start_sigma > 0.0 && o.dds_start_sigma < sigma_max;
        let levels = if warm {
            let start = o.dds_start_sigma;
            if start <= sigma_min {
                bail!(
                    "sampler option dds_start_sigma ({start}) must exceed the prior's sigma_min \
                     ({sigma_min}), or be 0 for a start from pure noise"
                );
            }
            // `x` is the N(0, sigma_max^2) draw of every sampler: rescaled, the same stream.
            let blank = Self::data_step(ctx, &x.zeros_like(), start);
            x = blank + &x * (start / sigma_max);
            ctx.check(&x, start)?;
            VeSde::new(sigma_min, start)?.levels(o.steps)
        } else {
            ctx.sde.levels(o.steps)
        };
        for (i, &sigma) in levels.iter().enumerate() {
            let s = ctx.score(&x, sigma)?;
            let x0 = crate::sde::tweedie(&x, &s, &(sigma * sigma));
            let x0c = Self::data_step(ctx, &x0, sigma);
            let Some(&next) = levels.get(i + 1) else {
                ctx.check(&x0c, sigma)?;
                return Ok(x0c);
            };
            // eps = (x - x0) / sigma = -sigma s.
            let eps = &s * (-sigma);
            let ddim = o.dds_eta * next * (1.0 - (next * next) / (sigma * sigma)).sqrt();
            let c = ddim + o.dds_fresh * (next - ddim);
            let keep = (next * next - c * c).max(0.0).sqrt();
            x = if c > 0.0 {
                let z = ctx.noise.normal_like(&x0c);
                x0c + eps * keep + z * c
            } else {
                x0c + eps * keep
            };
            ctx.check(&x, next)?;
        }
        Ok(x)
    }
}
