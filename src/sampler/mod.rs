//! Posterior sampling with a score prior and a measurement operator (paper 004, section 8.3;
//! method.md, "Samplers"; docs/sampling.md).
//!
//! Every sampler is a loop over the noise levels of the VE SDE that puts the proximal
//! data-consistency step `k(x, y_t, lambda)` (Theorem 8.1) before each predictor and corrector
//! update. [`reconstruct`] is the one entry point: it checks the model against the operator,
//! draws the initial sample, runs the chosen [`Sampler`], applies the final Tweedie denoise and
//! the final data consistency, and returns the samples with their mean and per-pixel standard
//! deviation (the uncertainty map).

pub mod ald;
pub mod consistency;
pub mod dds;
pub mod ode;
pub mod pc;
pub mod score_sde;

use crate::ops::rng::NoiseSource;
use crate::ops::MeasurementOperator;
use crate::prior::ScoreModel;
use crate::progress::Progress;
use crate::sde::VeSde;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

pub use consistency::{final_consistency, tweedie_denoise};

/// Which sampler runs (docs/sampling.md). Names: `pc`, `ald`, `langevin`, `score-sde`, `ode`,
/// `euler-maruyama`, `dds` (`_` for `-` is accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Predictor-corrector: reverse-diffusion predictor + Langevin corrector ("PC + ours").
    Pc,
    /// Annealed Langevin dynamics with the proximal step ("ALD + ours").
    Ald,
    /// Annealed Langevin dynamics with the likelihood gradient of Jalal et al. ("Langevin").
    Langevin,
    /// Chapter 7's conditional score approximation with PC ("Score SDE" baseline).
    #[serde(alias = "score-sde")]
    ScoreSde,
    /// Probability-flow ODE, Euler steps (deterministic given the start; few-step runs).
    Ode,
    /// Euler-Maruyama on the reverse SDE in continuous time.
    #[serde(alias = "euler-maruyama")]
    EulerMaruyama,
    /// Decomposed diffusion sampling: Tweedie denoise, conjugate-gradient data step, DDIM
    /// re-noise (few steps; `dds.rs`).
    Dds,
}

crate::names::named!(SamplerKind, "--sampler", {
    Pc => "pc",
    Ald => "ald",
    Langevin => "langevin",
    ScoreSde => "score-sde",
    Ode => "ode",
    EulerMaruyama => "euler-maruyama",
    Dds => "dds",
});

impl SamplerKind {
    /// The fewest noise levels this sampler is allowed (`SamplerOptions::validate` refuses
    /// fewer, so `JobSpec::validate` does before any work). Measured with the shipped priors on
    /// held-out subjects (`scripts/nfe_sweep_docs.sh`, docs/sampling.md "Too few steps"): the
    /// smallest probed count whose run on CT_small.dcm (23 views, `ct_head_128`) reached at least
    /// FBP's PSNR and whose run on MR_small.dcm (4x, `mri_brain_128`) passed the divergence
    /// guard. Below it, PC with 30 levels and the ODE with 50 returned images of 6.3 and 3.1 dB
    /// that stay inside the guard's range. ALD, Langevin, Score SDE and Euler-Maruyama were not
    /// measured: they keep the structural minimum of 2 and rely on the guard alone.
    pub fn min_steps(self) -> usize {
        match self {
            SamplerKind::Pc => 40,
            SamplerKind::Ode => 200,
            SamplerKind::Dds => 5,
            SamplerKind::Ald
            | SamplerKind::Langevin
            | SamplerKind::ScoreSde
            | SamplerKind::EulerMaruyama => 2,
        }
    }
}

/// Everything a run can be told; serde so YAML configs can set it (unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplerOptions {
    pub sampler: SamplerKind,
    /// Number of noise levels N (predictor steps + 1).
    pub steps: usize,
    /// Corrector (Langevin) steps per level for PC, ALD, Langevin, Score SDE.
    pub corrector_steps: usize,
    /// Signal-to-noise ratio `r` of the Langevin corrector (the paper's eta).
    pub snr: f64,
    /// Weight of the measurement in the proximal step, 0 (ignore) to 1 (enforce).
    pub lambda: f64,
    pub seed: u64,
    /// Posterior samples per measurement, drawn in one batch (mean and std need >= 2).
    pub samples: usize,
    /// Largest number of images per network call; 0: all at once.
    pub batch: usize,
    /// Evaluate the score after the proximal step (authors' code) rather than before it
    /// (eq. 8.7). Default true: the update is then a proper predictor/corrector step from the
    /// point it moves, see docs/sampling.md.
    pub score_after_proximal: bool,
    /// The measurement has no noise: end with the exact projection onto `A x = y`.
    pub noise_free_measurement: bool,
    /// Standard deviation of the measurement noise in model units (baselines' likelihood).
    pub measurement_sigma: f64,
    /// Finish with Tweedie's denoise `x + sigma_min^2 s(x, sigma_min)`.
    pub final_denoise: bool,
    /// ALD step-size constant `e`: `alpha_i = e sigma_i^2 / sigma_min^2`.
    pub ald_step: f64,
    /// Baselines: the likelihood's standard deviation is `rate * sigma` (authors' 1.586).
    pub likelihood_sigma_rate: f64,
    /// Conjugate-gradient iterations of the final exact projection.
    pub projection_iterations: usize,
    /// DDS: DDIM stochasticity of the re-noise, 0 (deterministic) to 1 (ancestral).
    pub dds_eta: f64,
    /// DDS: conjugate-gradient iterations K of the data step at each level.
    pub dds_cg_iterations: usize,
    /// DDS: share of the re-noise drawn fresh, 0 (DDIM's `eta` rule) to 1 (all fresh: the
    /// network's noise estimate is dropped, as in SDEdit/CCDF re-noising).
    pub dds_fresh: f64,
    /// DDS: warm start. The first level is this sigma (model units) and the start is the data
    /// step applied to a blank image plus noise of that sigma (Chung et al.'s come-closer-
    /// diffuse-faster); 0, or at least the prior's `sigma_max`, starts from pure noise at
    /// `sigma_max`.
    pub dds_start_sigma: f64,
    /// DDS: weight gamma of `|x - x0|^2` in the data step, on top of
    /// `(measurement_sigma / sigma)^2`; 0 for a noise-free measurement.
    pub dds_gamma: f64,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
    /// Stop a run whose sample leaves the prior's data range or whose result does not fit the
    /// measurement (`Context::check`); NaN/Inf stop it always. Off only where a poor sample is
    /// the thing to show (training previews of a barely trained model).
    pub divergence_guard: bool,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            sampler: SamplerKind::Pc,
            steps: 1000,
            corrector_steps: 1,
            // The paper's tuned values for sparse-view CT on LIDC (method.md); MRI: 0.577, 0.982.
            snr: 0.246,
            lambda: 0.841,
            seed: 0,
            samples: 1,
            batch: 0,
            score_after_proximal: true,
            noise_free_measurement: true,
            measurement_sigma: 0.0,
            final_denoise: true,
            ald_step: 2e-5,
            likelihood_sigma_rate: 1.586,
            projection_iterations: 50,
            // Chosen on the priors' validation slabs (head CT slice 54, MNI slice 95), not on the
            // test subjects of docs/sampling.md: eta 1 beat 0.5 and 0.85 on both, K 10 beat 5
            // on CT (MRI converges in one or two steps) and 20 added 0.04 dB.
            dds_eta: 1.0,
            dds_cg_iterations: 10,
            // Warm start at 0.3 (30 % of the [0, 1] data range of every shipped prior) and the
            // DDIM rule: chosen on the tuning subjects of docs/sampling.md ("Warm start and fresh
            // noise"), not on the test subjects. MRI jobs set dds_fresh 1 (JobSpec::for_task).
            dds_fresh: 0.0,
            dds_start_sigma: 0.3,
            dds_gamma: 0.0,
            progress: true,
            divergence_guard: true,
        }
    }
}

impl SamplerOptions {
    pub fn validate(&self) -> Result<()> {
        let finite = [
            ("snr", self.snr),
            ("lambda", self.lambda),
            ("measurement_sigma", self.measurement_sigma),
            ("ald_step", self.ald_step),
            ("likelihood_sigma_rate", self.likelihood_sigma_rate),
            ("dds_eta", self.dds_eta),
            ("dds_gamma", self.dds_gamma),
            ("dds_fresh", self.dds_fresh),
            ("dds_start_sigma", self.dds_start_sigma),
        ];
        for (name, v) in finite {
            if !v.is_finite() {
                bail!("sampler option {name} must be a finite number (got {v})");
            }
        }
        if self.steps < 2 {
            bail!(
                "sampler option steps must be at least 2 (got {})",
                self.steps
            );
        }
        let min = self.sampler.min_steps();
        if self.steps < min {
            bail!(
                "sampler option steps: {} is too few for the {} sampler, whose runs diverge or \
                 leave the data range below {min} levels; use at least {min} steps, or \
                 --sampler dds for a fast run (docs/sampling.md)",
                self.steps,
                self.sampler.name()
            );
        }
        if !(0.0..=1.0).contains(&self.dds_eta) || self.dds_gamma < 0.0 {
            bail!(
                "sampler options dds_eta in [0, 1] and dds_gamma >= 0 are required (got {} and {})",
                self.dds_eta,
                self.dds_gamma
            );
        }
        if !(0.0..=1.0).contains(&self.dds_fresh) || self.dds_start_sigma < 0.0 {
            bail!(
                "sampler options dds_fresh in [0, 1] and dds_start_sigma >= 0 are required (got {} and {})",
                self.dds_fresh,
                self.dds_start_sigma
            );
        }
        if !(0.0..=1.0).contains(&self.lambda) {
            bail!(
                "sampler option lambda must lie in [0, 1] (got {})",
                self.lambda
            );
        }
        if self.snr <= 0.0 && self.corrector_steps > 0 {
            bail!("sampler option snr must be positive (got {})", self.snr);
        }
        if self.samples < 1 {
            bail!("sampler option samples must be at least 1");
        }
        if self.measurement_sigma < 0.0 || self.likelihood_sigma_rate <= 0.0 || self.ald_step <= 0.0
        {
            bail!("sampler options measurement_sigma >= 0, likelihood_sigma_rate > 0 and ald_step > 0 are required");
        }
        if matches!(self.sampler, SamplerKind::Ald | SamplerKind::Langevin)
            && self.corrector_steps < 1
        {
            bail!(
                "sampler option corrector_steps must be at least 1 for annealed Langevin dynamics"
            );
        }
        Ok(())
    }
}

/// A sampling loop. `run` takes the initial sample at `sigma_max` and returns it at
/// `sigma_min`; [`reconstruct`] adds the final denoise and data consistency.
pub trait Sampler {
    fn name(&self) -> &'static str;
    /// Score evaluations of one `run` (for progress and reports; the final denoise adds one).
    fn nfe(&self, opts: &SamplerOptions) -> usize;
    fn run(&self, ctx: &mut Context, x: Tensor) -> Result<Tensor>;
    /// `run` already ends with a Tweedie denoise at `sigma_min` (DDS), so [`reconstruct`]
    /// adds none.
    fn denoises_last(&self) -> bool {
        false
    }
}

/// Pick the implementation for a kind.
pub fn sampler_for(kind: SamplerKind) -> Box<dyn Sampler> {
    match kind {
        SamplerKind::Pc => Box::new(pc::PredictorCorrector),
        SamplerKind::Ald => Box::new(ald::AnnealedLangevin { proximal: true }),
        SamplerKind::Langevin => Box::new(ald::AnnealedLangevin { proximal: false }),
        SamplerKind::ScoreSde => Box::new(score_sde::ScoreSdeBaseline),
        SamplerKind::Ode => Box::new(ode::ProbabilityFlow),
        SamplerKind::EulerMaruyama => Box::new(ode::EulerMaruyama),
        SamplerKind::Dds => Box::new(dds::Decomposed),
    }
}

/// What a sampling loop sees: the model, the operator, the (batch-expanded) measurement, the
/// options, the noise source, and the step counter for the NaN guard and the progress bar.
pub struct Context<'a> {
    pub model: &'a dyn ScoreModel,
    pub op: &'a MeasurementOperator,
    /// Zero-filled measurement, one per image of the current batch.
    pub y: Tensor,
    pub opts: &'a SamplerOptions,
    pub sde: VeSde,
    pub noise: NoiseSource,
    /// The prior's data range in model space (`Normalisation::model_range`), for the guard.
    pub range: (f64, f64),
    progress: Progress,
    step: usize,
}

/// The divergence guard's interval around the data range `[lo, hi]` at noise level `sigma`:
/// `[lo - m, hi + m]`, `m = RANGE_WIDTHS (hi - lo) + RANGE_SIGMAS sigma`. A healthy sample at
/// level sigma is an image of the data range plus noise of about sigma per pixel (a Langevin
/// step adds up to `2 snr sigma` more, a factor 1.5 in all at the paper's largest snr): 10 sigma
/// is 1.5 times the largest of 128x128x8 normal draws (4.5) times that factor, and 2 range
/// widths leave room for images that
/// exceed their window (bright bone, MR hyperintensities) after the last step. At `sigma_max`
/// that is about 10 sigma_max around the data range; at the end, [-2, 3] for a [0, 1] range.
pub const RANGE_WIDTHS: f64 = 2.0;
pub const RANGE_SIGMAS: f64 = 10.0;

/// Largest `|A x - y| / |y|` a finished reconstruction may have: the final projection brings a
/// noise-free one to about 1e-5 (1e-2 leaves room for CT's 50 CG iterations on a poor start);
/// with a noisy measurement the final proximal step leaves a fraction of the noise and of
/// `(1 - lambda)` of the misfit, far below 1/2 unless the sample is not an image.
pub fn residual_limit(noise_free: bool) -> f64 {
    if noise_free {
        1e-2
    } else {
        0.5
    }
}

/// The likely cause a divergence message names.
fn divergence_hint(opts: &SamplerOptions) -> String {
    format!(
        "likely cause: too few steps for this sampler ({}, {} levels); try --sampler dds or more \
         steps (or a smaller snr / ald_step), and check the input's normalisation",
        opts.sampler.name(),
        opts.steps
    )
}

impl Context<'_> {
    /// `s(x, sigma)` for the whole batch.
    pub fn score(&mut self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        let b = x.size()[0];
        let s = Tensor::full([b], sigma, (Kind::Float, x.device()));
        let out = self.model.score(x, &s)?;
        self.progress.inc(1);
        Ok(out)
    }

    /// The divergence guard, called after every update with the level the sample is at: stop
    /// with the step, sigma and the likely cause when the sample holds NaN/Inf or leaves the
    /// interval [`RANGE_WIDTHS`] / [`RANGE_SIGMAS`] around the prior's data range, rather than
    /// carry on to a garbage image.
    pub fn check(&mut self, x: &Tensor, sigma: f64) -> Result<()> {
        self.step += 1;
        self.progress.set_message(format!(
            "sampling {}, step {}",
            self.opts.sampler.name(),
            self.step
        ));
        // One reduction for both ends; NaN propagates through min and max.
        let (mn, mx) = x.aminmax(None, false);
        let (mn, mx) = (f64::try_from(mn)?, f64::try_from(mx)?);
        if !(mn.is_finite() && mx.is_finite()) {
            bail!(
                "sampling diverged: the sample holds NaN or Inf after update {} (sigma = {sigma:.4e}); {}",
                self.step,
                divergence_hint(self.opts)
            );
        }
        let (lo, hi) = self.range;
        let m = RANGE_WIDTHS * (hi - lo) + RANGE_SIGMAS * sigma;
        if self.opts.divergence_guard && (mn < lo - m || mx > hi + m) {
            bail!(
                "sampling diverged: after update {} (sigma = {sigma:.4e}) the sample spans \
                 [{mn:.4}, {mx:.4}] in model space, outside [{:.4}, {:.4}] (the prior's data range \
                 [{lo}, {hi}] widened by {RANGE_WIDTHS} ranges and {RANGE_SIGMAS} sigma); {}",
                self.step,
                lo - m,
                hi + m,
                divergence_hint(self.opts)
            );
        }
        Ok(())
    }

    /// The guard on the finished reconstruction: `|A x - y| / |y|` within [`residual_limit`].
    pub fn check_residual(&self, x: &Tensor, y: &Tensor) -> Result<()> {
        if !self.opts.divergence_guard
            || (!self.opts.noise_free_measurement && self.opts.lambda == 0.0)
        {
            return Ok(());
        }
        let limit = residual_limit(self.opts.noise_free_measurement);
        // `f64::max` would drop a NaN, so it is carried explicitly.
        let worst = self.op.residual(x, y).into_iter().fold(0.0f64, |a, r| {
            if a.is_nan() || r.is_nan() {
                f64::NAN
            } else {
                a.max(r)
            }
        });
        if worst.is_nan() || worst > limit {
            bail!(
                "sampling diverged: the reconstruction does not fit the measurement \
                 (|A x - y| / |y| = {worst:.3e}, more than {limit:e}); {}",
                divergence_hint(self.opts)
            );
        }
        Ok(())
    }
}

/// Samples drawn for `M` measurements, `S` per measurement.
pub struct Posterior {
    /// `[M, S, C, H, W]`.
    pub samples: Tensor,
    /// `[M, C, H, W]` posterior mean over the samples.
    pub mean: Tensor,
    /// `[M, C, H, W]` per-pixel standard deviation over the samples (unbiased; zero when
    /// S = 1): the uncertainty map.
    pub std: Tensor,
    /// Score evaluations per image.
    pub nfe: usize,
}

/// Mean and per-pixel standard deviation over the sample axis of `[M, S, C, H, W]`.
pub fn posterior_stats(samples: &Tensor) -> (Tensor, Tensor) {
    let mean = samples.mean_dim(1, false, Kind::Float);
    let std = if samples.size()[1] > 1 {
        samples.std_dim(1, true, false)
    } else {
        mean.zeros_like()
    };
    (mean, std)
}

/// Check that the model fits the operator and the measurement, before any sampling.
pub fn check_compatible(
    model: &dyn ScoreModel,
    op: &MeasurementOperator,
    y: &Tensor,
) -> Result<()> {
    let img = op.transform.image_shape();
    if model.image_size() != img {
        bail!(
            "the prior works on {}x{} images but the operator ({}) reconstructs {}x{}; \
             resample the input or use a prior trained at this size",
            model.image_size()[1],
            model.image_size()[0],
            op.transform.describe(),
            img[1],
            img[0]
        );
    }
    if model.channels() != 1 {
        bail!(
            "the prior has {} channels; the operators reconstruct single-channel images",
            model.channels()
        );
    }
    let m = op.transform.measurement_shape();
    let c = op.transform.channels();
    let ys = y.size();
    if ys.len() != 4 || ys[1] != c || [ys[2], ys[3]] != m {
        bail!(
            "the measurement has shape {:?}; the operator ({}) expects [B, {c}, {}, {}]",
            ys,
            op.transform.describe(),
            m[0],
            m[1]
        );
    }
    if y.device() != model.device() || op.mask.device() != model.device() {
        bail!(
            "the measurement ({:?}), the operator's mask ({:?}) and the prior ({:?}) must be on one device",
            y.device(),
            op.mask.device(),
            model.device()
        );
    }
    Ok(())
}

/// Sample the posterior `p(x | y)` for each of `y`'s `M` measurements (zero-filled, `[M, 1,
/// m0, m1]`, model space), `opts.samples` samples each.
pub fn reconstruct(
    model: &dyn ScoreModel,
    op: &MeasurementOperator,
    y: &Tensor,
    opts: &SamplerOptions,
) -> Result<Posterior> {
    opts.validate()?;
    check_compatible(model, op, y)?;
    let _guard = tch::no_grad_guard();
    let sampler = sampler_for(opts.sampler);
    let sde = model.sde();
    let m = y.size()[0];
    let s = opts.samples as i64;
    let y_all = (y * &op.mask).repeat_interleave_self_int(s, 0, None::<i64>);
    let total = m * s;
    let chunk = if opts.batch == 0 {
        total
    } else {
        opts.batch as i64
    };
    let [h, w] = model.image_size();
    let final_denoise = opts.final_denoise && !sampler.denoises_last();
    let nfe = sampler.nfe(opts) + usize::from(final_denoise);

    let progress = crate::progress::styled(
        (nfe as u64) * ((total + chunk - 1) / chunk) as u64,
        "NFE",
        "{msg} [{bar:40}] {pos}/{len} NFE ({eta})",
        Some("=> "),
        !opts.progress,
    );
    progress.set_message(format!("sampling {}", opts.sampler.name()));

    model.reseed(opts.seed);
    let mut ctx = Context {
        model,
        op,
        y: y_all.shallow_clone(),
        opts,
        sde,
        noise: NoiseSource::for_device(opts.seed, y.device()),
        range: model.normalisation().model_range(),
        progress,
        step: 0,
    };
    let mut outputs = Vec::new();
    let mut start = 0;
    while start < total {
        let len = chunk.min(total - start);
        let y_chunk = y_all.narrow(0, start, len);
        ctx.y = y_chunk.shallow_clone();
        let x0 = ctx.noise.normal(&[len, 1, h, w], y.device()) * sde.sigma_max;
        let mut x = sampler.run(&mut ctx, x0)?;
        if final_denoise {
            x = tweedie_denoise(model, &x, sde.sigma_min)?;
            ctx.progress.inc(1);
            ctx.check(&x, sde.sigma_min)?;
        }
        x = final_consistency(op, &x, &y_chunk, opts);
        ctx.check(&x, 0.0)?;
        ctx.check_residual(&x, &y_chunk)?;
        outputs.push(x);
        start += len;
    }
    ctx.progress.finish_and_clear();
    let samples = Tensor::cat(&outputs, 0).reshape([m, s, 1, h, w]);
    let (mean, std) = posterior_stats(&samples);
    Ok(Posterior {
        samples,
        mean,
        std,
        nfe,
    })
}
