//! Samplers against closed forms. With a Gaussian prior `N(mu, s^2 I)` and an operator whose
//! `T` is unitary (inpainting: `T = I`; a random orthogonal matrix), the posterior for a
//! noise-free `y` is analytic: the measured coefficients of `T x` equal `y`, the unmeasured ones
//! keep the prior `N((T mu)_j, s^2)`, independently.
//!
//! Monte-Carlo tolerances: with `S` samples the sample mean of one coefficient has standard
//! error `s / sqrt(S)`; the variance pooled over `P` coefficients and `S` samples has relative
//! standard error `sqrt(2 / (P S))`. Each check allows 5 standard errors plus the stated
//! discretisation allowance of the sampler (a finite number of noise levels).

mod common;

use scorerecon::ops::identity::Identity;
use scorerecon::ops::projection::{project, ProjectionOptions};
use scorerecon::ops::{MeasurementOperator, Transform};
use scorerecon::prior::gaussian::GaussianPrior;
use scorerecon::prior::nearest::{Estimator, NearestNeighbourPrior};
use scorerecon::prior::{Normalisation, ScoreModel};
use scorerecon::sampler::{reconstruct, SamplerKind, SamplerOptions};
use scorerecon::sde::VeSde;
use tch::{Device, Kind, Tensor};

/// `T x = Q vec(x)` with a random orthogonal `Q`: unitary, so `T^T = T^-1`.
struct Orthogonal {
    // Transform must be Sync; tch tensors are only Send.
    q: std::sync::Mutex<Tensor>,
    h: i64,
    w: i64,
}

impl Orthogonal {
    fn new(h: i64, w: i64, seed: i64) -> Self {
        tch::manual_seed(seed);
        let a = Tensor::randn([h * w, h * w], (Kind::Double, Device::Cpu));
        let (q, _r) = Tensor::linalg_qr(&a, "reduced");
        Orthogonal {
            q: std::sync::Mutex::new(q.to_kind(Kind::Float)),
            h,
            w,
        }
    }
    fn apply(&self, transpose: bool, x: &Tensor) -> Tensor {
        let q = self.q.lock().unwrap();
        let m = if transpose { q.tr() } else { q.shallow_clone() };
        let b = x.size()[0];
        x.reshape([b, -1])
            .matmul(&m.tr())
            .reshape([b, 1, self.h, self.w])
    }
}

impl Transform for Orthogonal {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.apply(false, x)
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        self.apply(true, y)
    }
    fn inverse(&self, y: &Tensor) -> Tensor {
        self.adjoint(y)
    }
    fn image_shape(&self) -> [i64; 2] {
        [self.h, self.w]
    }
    fn measurement_shape(&self) -> [i64; 2] {
        [self.h, self.w]
    }
    fn describe(&self) -> String {
        "random orthogonal".into()
    }
}

fn random_mask(h: i64, w: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::rand([1, 1, h, w], (Kind::Float, Device::Cpu))
        .gt(0.5)
        .to_kind(Kind::Float)
}

fn f(t: &Tensor) -> f64 {
    f64::try_from(t).unwrap()
}

fn quiet(mut o: SamplerOptions) -> SamplerOptions {
    o.progress = false;
    o
}

const MU: f64 = 0.5;
const S: f64 = 0.2;

fn gaussian(h: i64, w: i64) -> GaussianPrior {
    GaussianPrior::constant(MU, S, 1, h, w, VeSde::new(0.01, 5.0).unwrap(), Device::Cpu).unwrap()
}

/// Checks the posterior moments of the coefficients `T x` of `samples` ([1, S, 1, H, W])
/// against the closed form; returns (max mean z-score, variance ratio).
fn check_posterior(
    op: &MeasurementOperator,
    samples: &Tensor,
    y: &Tensor,
    mu_coeff: &Tensor,
    var_allowance: f64,
    what: &str,
) {
    let sz = samples.size();
    let n_samples = sz[1];
    let [h, w] = op.transform.image_shape();
    let coeffs = op.transform.forward(&samples.reshape([n_samples, 1, h, w]));
    let mask = op
        .mask
        .to_kind(Kind::Bool)
        .expand([n_samples, 1, h, w], false);
    // Measured coefficients reproduce y (noise-free, final projection).
    let err = f(&(&coeffs - y).masked_select(&mask).abs().max());
    assert!(err < 1e-4, "{what}: measured coefficients off by {err}");
    // Unmeasured ones: mean (T mu)_j, variance s^2.
    let free = op.mask.eq(0.0).reshape([-1]);
    let p = f(&free.sum(Kind::Double)) as i64;
    let c = coeffs
        .reshape([n_samples, -1])
        .index_select(1, &free.nonzero().squeeze_dim(1));
    let m = mu_coeff.reshape([-1]).masked_select(&free);
    let mean = c.mean_dim(0, false, Kind::Double);
    let se = S / (n_samples as f64).sqrt();
    let worst = f(&((&mean - &m).abs().max())) / se;
    let var = f(&(c - m.unsqueeze(0)).square().mean(Kind::Double));
    let ratio = var / (S * S);
    let var_tol = 5.0 * (2.0 / (p * n_samples) as f64).sqrt() + var_allowance;
    eprintln!("{what}: worst mean deviation {worst:.2} standard errors, variance ratio {ratio:.4} (tolerance {var_tol:.4})");
    // Bonferroni over P coefficients: 5 standard errors.
    assert!(
        worst < 5.0,
        "{what}: posterior mean off by {worst} standard errors"
    );
    assert!(
        (ratio - 1.0).abs() < var_tol,
        "{what}: variance ratio {ratio}"
    );
}

/// Discretisation allowance of PC on the variance ratio: the unadjusted Langevin corrector
/// with step `2 r^2 v` (the snr rule on a Gaussian of variance v) has stationary variance
/// `v / (1 - r^2)`, +2.6% at r = 0.16; 200 predictor levels add about 1%; the final Tweedie
/// step removes 0.25% (`s^2 / (s^2 + sigma_min^2)`). 5% in all.
const PC_ALLOWANCE: f64 = 0.05;

fn pc_options(samples: usize) -> SamplerOptions {
    quiet(SamplerOptions {
        sampler: SamplerKind::Pc,
        steps: 200,
        corrector_steps: 1,
        snr: 0.16,
        lambda: 1.0,
        seed: 3,
        samples,
        noise_free_measurement: true,
        ..Default::default()
    })
}

#[test]
fn pc_posterior_matches_closed_form_for_inpainting() {
    let (h, w) = (16, 16);
    let op = MeasurementOperator::new(Box::new(Identity::new(h, w)), random_mask(h, w, 1));
    let prior = gaussian(h, w);
    tch::manual_seed(9);
    let x_true = Tensor::rand([1, 1, h, w], (Kind::Float, Device::Cpu));
    let y = op.forward(&x_true);
    let post = reconstruct(&prior, &op, &y, &pc_options(400)).unwrap();
    assert_eq!(post.samples.size(), vec![1, 400, 1, h, w]);
    let mu = Tensor::full([1, 1, h, w], MU, (Kind::Float, Device::Cpu));
    check_posterior(&op, &post.samples, &y, &mu, PC_ALLOWANCE, "PC inpainting");
    // Uncertainty map: zero on measured pixels, about s elsewhere.
    let measured = op.mask.to_kind(Kind::Bool);
    assert!(f(&post.std.masked_select(&measured).max()) < 1e-4);
    let free_std = f(&post
        .std
        .masked_select(&measured.logical_not())
        .mean(Kind::Double));
    assert!(
        (free_std / S - 1.0).abs() < 0.05,
        "mean posterior std {free_std}"
    );
}

#[test]
fn pc_posterior_matches_closed_form_for_a_unitary_transform() {
    let (h, w) = (8, 8);
    let t = Orthogonal::new(h, w, 4);
    let mu = Tensor::full([1, 1, h, w], MU, (Kind::Float, Device::Cpu));
    let mu_coeff = t.forward(&mu);
    let op = MeasurementOperator::new(Box::new(t), random_mask(h, w, 2));
    let prior = gaussian(h, w);
    tch::manual_seed(10);
    let y = op.forward(&Tensor::rand([1, 1, h, w], (Kind::Float, Device::Cpu)));
    for after in [true, false] {
        let mut o = pc_options(400);
        o.score_after_proximal = after;
        let post = reconstruct(&prior, &op, &y, &o).unwrap();
        check_posterior(
            &op,
            &post.samples,
            &y,
            &mu_coeff,
            PC_ALLOWANCE,
            &format!("PC unitary, score after proximal: {after}"),
        );
    }
}

#[test]
fn lambda_zero_gives_prior_samples() {
    let (h, w) = (16, 16);
    let op = MeasurementOperator::new(Box::new(Identity::new(h, w)), random_mask(h, w, 1));
    let prior = gaussian(h, w);
    let y = op.forward(&Tensor::ones([1, 1, h, w], (Kind::Float, Device::Cpu)));
    let n = 200;
    let sde = prior.sde();
    // (kind, levels, discretisation allowance on the variance ratio, expected mean).
    // The probability-flow ODE is deterministic, so it carries the mismatch between the start
    // N(0, sigma_max^2) and the true p_sigma_max = N(mu, s^2 + sigma_max^2) to the end: the
    // exact flow maps x_T - mu to (x_T - mu) sqrt(v_0 / v_T), v = s^2 + sigma^2, and Tweedie
    // multiplies by s^2 / v_0, so E[x] = mu (1 - sqrt(v_0 / v_T) s^2 / v_0) = 0.480. It is
    // also first order (Euler), hence more levels and a 5% allowance.
    let v0 = S * S + sde.sigma_min.powi(2);
    let vt = S * S + sde.sigma_max.powi(2);
    let ode_mean = MU * (1.0 - (v0 / vt).sqrt() * S * S / v0);
    for (kind, steps, allowance, expected_mean) in [
        (SamplerKind::Pc, 200, PC_ALLOWANCE, MU),
        (SamplerKind::EulerMaruyama, 400, 0.03, MU),
        (SamplerKind::Ode, 1000, 0.05, ode_mean),
    ] {
        let mut o = pc_options(n);
        o.sampler = kind;
        o.steps = steps;
        o.lambda = 0.0;
        o.noise_free_measurement = false;
        let post = reconstruct(&prior, &op, &y, &o).unwrap();
        let x = post.samples.reshape([n as i64, -1]).to_kind(Kind::Double);
        let p = (h * w) as f64;
        let mean = f(&x.mean(Kind::Double));
        let var = f(&(&x - mean).square().mean(Kind::Double));
        // Mean over P S values: standard error s / sqrt(P S); variance: sqrt(2 / (P S)).
        let se_mean = S / (p * n as f64).sqrt();
        let var_tol = 5.0 * (2.0 / (p * n as f64)).sqrt() + allowance;
        eprintln!(
            "{kind:?}, lambda 0: mean {mean:.4} (expected {expected_mean:.4}), variance ratio {:.4}",
            var / (S * S)
        );
        assert!(
            (mean - expected_mean).abs() < 5.0 * se_mean,
            "{kind:?}: mean {mean}"
        );
        assert!(
            (var / (S * S) - 1.0).abs() < var_tol,
            "{kind:?}: variance {var}"
        );
    }
}

#[test]
fn lambda_one_noise_free_is_data_consistent_for_every_sampler() {
    let (h, w) = (8, 8);
    let t = Orthogonal::new(h, w, 7);
    let op = MeasurementOperator::new(Box::new(t), random_mask(h, w, 3));
    let prior = gaussian(h, w);
    tch::manual_seed(12);
    let y = op.forward(&Tensor::rand([2, 1, h, w], (Kind::Float, Device::Cpu)));
    for kind in [
        SamplerKind::Pc,
        SamplerKind::Ald,
        SamplerKind::Langevin,
        SamplerKind::ScoreSde,
        SamplerKind::Ode,
        SamplerKind::EulerMaruyama,
        SamplerKind::Dds,
    ] {
        let o = quiet(SamplerOptions {
            sampler: kind,
            // 100 levels: with 30, ALD's small steps (ald_step 1e-5) do not forget the start
            // before the low levels and the divergence guard stops it (sample 16 sigma off at
            // sigma 0.47), rightly: its unmeasured pixels would not be posterior samples.
            steps: kind.min_steps().max(100),
            corrector_steps: 2,
            lambda: 1.0,
            samples: 3,
            ald_step: 1e-5,
            ..Default::default()
        });
        let post = reconstruct(&prior, &op, &y, &o).unwrap();
        let x = post.samples.reshape([6, 1, h, w]);
        let y6 = y.repeat_interleave_self_int(3, 0, None::<i64>);
        for r in op.residual(&x, &y6) {
            assert!(r <= 1e-4, "{kind:?}: |Ax - y| / |y| = {r}");
        }
    }
}

#[test]
fn exact_projection_equals_the_proximal_step_for_a_unitary_transform() {
    let (h, w) = (8, 8);
    let op = MeasurementOperator::new(Box::new(Orthogonal::new(h, w, 5)), random_mask(h, w, 6));
    tch::manual_seed(13);
    let x = Tensor::randn([4, 1, h, w], (Kind::Float, Device::Cpu));
    let y = op.forward(&Tensor::randn([4, 1, h, w], (Kind::Float, Device::Cpu)));
    let (px, _) = project(&op, &x, &y, ProjectionOptions::default());
    let prox = op.proximal(&x, &y, 1.0);
    assert!(f(&(&px - &prox).abs().max()) < 1e-5);
    assert!(op.residual(&px, &y).iter().all(|r| *r < 1e-5));
}

#[test]
fn same_seed_is_bit_identical_and_different_seeds_differ() {
    let (h, w) = (8, 8);
    let op = MeasurementOperator::new(Box::new(Identity::new(h, w)), random_mask(h, w, 1));
    let prior = gaussian(h, w);
    let y = op.forward(&Tensor::ones([1, 1, h, w], (Kind::Float, Device::Cpu)));
    let mut o = pc_options(2);
    o.steps = SamplerKind::Pc.min_steps().max(20);
    o.lambda = 0.7;
    let a = reconstruct(&prior, &op, &y, &o).unwrap().samples;
    // Disturb libtorch's global generator in between: the sampler must not depend on it.
    let _ = Tensor::randn([100], (Kind::Float, Device::Cpu));
    let b = reconstruct(&prior, &op, &y, &o).unwrap().samples;
    assert!(a.equal(&b), "same seed, different output");
    o.seed += 1;
    let c = reconstruct(&prior, &op, &y, &o).unwrap().samples;
    assert!(
        f(&(&a - &c).abs().max()) > 1e-3,
        "different seeds gave the same sample"
    );
    // Batching in chunks changes nothing about determinism either.
    o.batch = 1;
    let d1 = reconstruct(&prior, &op, &y, &o).unwrap().samples;
    let d2 = reconstruct(&prior, &op, &y, &o).unwrap().samples;
    assert!(d1.equal(&d2));
}

/// A score model that returns NaN below a noise level, to trip the guard.
struct Broken {
    inner: GaussianPrior,
    below: f64,
}

impl ScoreModel for Broken {
    fn score(&self, x: &Tensor, sigma: &Tensor) -> anyhow::Result<Tensor> {
        let s = self.inner.score(x, sigma)?;
        if f(&sigma.max()) < self.below {
            Ok(s * f64::NAN)
        } else {
            Ok(s)
        }
    }
    fn image_size(&self) -> [i64; 2] {
        self.inner.image_size()
    }
    fn channels(&self) -> i64 {
        1
    }
    fn sde(&self) -> VeSde {
        self.inner.sde()
    }
    fn normalisation(&self) -> &Normalisation {
        self.inner.normalisation()
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn describe(&self) -> String {
        "broken".into()
    }
}

#[test]
fn nan_guard_names_the_step_and_sigma() {
    let (h, w) = (8, 8);
    let op = MeasurementOperator::new(Box::new(Identity::new(h, w)), random_mask(h, w, 1));
    let model = Broken {
        inner: gaussian(h, w),
        below: 0.5,
    };
    let y = op.forward(&Tensor::ones([1, 1, h, w], (Kind::Float, Device::Cpu)));
    let mut o = pc_options(1);
    o.steps = SamplerKind::Pc.min_steps().max(20);
    let msg = format!("{:#}", reconstruct(&model, &op, &y, &o).err().unwrap());
    assert!(
        msg.contains("NaN") && msg.contains("sigma = ") && msg.contains("update"),
        "{msg}"
    );
}

#[test]
fn mismatched_model_or_options_fail_before_sampling() {
    let op = MeasurementOperator::new(Box::new(Identity::new(16, 16)), random_mask(16, 16, 1));
    let y = op.forward(&Tensor::ones([1, 1, 16, 16], (Kind::Float, Device::Cpu)));
    let msg = format!(
        "{:#}",
        reconstruct(&gaussian(8, 8), &op, &y, &pc_options(1))
            .err()
            .unwrap()
    );
    assert!(msg.contains("8x8") && msg.contains("16x16"), "{msg}");
    let mut o = pc_options(1);
    o.lambda = 1.5;
    let msg = format!(
        "{:#}",
        reconstruct(&gaussian(16, 16), &op, &y, &o).err().unwrap()
    );
    assert!(msg.contains("lambda"), "{msg}");
    let bad_y = Tensor::ones([1, 1, 16, 8], (Kind::Float, Device::Cpu));
    let msg = format!(
        "{:#}",
        reconstruct(&gaussian(16, 16), &op, &bad_y, &pc_options(1))
            .err()
            .unwrap()
    );
    assert!(msg.contains("measurement"), "{msg}");
    let yaml = "sampler: pc\nsteps: 10\nsnr: 0.2\nlamda: 0.5\n";
    assert!(
        serde_yaml_ng::from_str::<SamplerOptions>(yaml).is_err(),
        "typo must be refused"
    );
    let ok: SamplerOptions = serde_yaml_ng::from_str("sampler: ode\nsteps: 10\n").unwrap();
    assert_eq!(ok.sampler, SamplerKind::Ode);
    assert!(ok.score_after_proximal);
}

/// The exact empirical-score prior memorises: with half the pixels of reference image 3
/// measured, the PC sampler returns (almost) image 3.
#[test]
fn empirical_score_sampler_ends_near_the_measured_reference_image() {
    let (h, w) = (16, 16);
    tch::manual_seed(17);
    let refs = Tensor::rand([8, 1, h, w], (Kind::Float, Device::Cpu));
    let prior =
        NearestNeighbourPrior::new(&refs, Estimator::Exact, Normalisation::Identity).unwrap();
    let op = MeasurementOperator::new(Box::new(Identity::new(h, w)), random_mask(h, w, 8));
    let target = refs.get(3).unsqueeze(0);
    let y = op.forward(&target);
    let mut o = pc_options(2);
    o.steps = 100;
    let post = reconstruct(&prior, &op, &y, &o).unwrap();
    let x = post.samples.reshape([2, 1, h, w]);
    let near = prior.nearest(&x).unwrap();
    let typical = f(&(refs.get(0) - refs.get(1)).square().sum(Kind::Double)).sqrt();
    for (i, d) in near {
        assert_eq!(i, 3);
        assert!(
            d < 0.05 * typical,
            "distance {d} to the reference (typical spacing {typical})"
        );
    }
    // Unconditional: ends near some reference image (the memorisation caveat of method.md).
    o.lambda = 0.0;
    o.noise_free_measurement = false;
    let post = reconstruct(&prior, &op, &y, &o).unwrap();
    for (_, d) in prior.nearest(&post.samples.reshape([2, 1, h, w])).unwrap() {
        assert!(
            d < 0.05 * typical,
            "unconditional sample {d} from every reference"
        );
    }
}

/// The operators of the DDS checks: the MRI transform (real images, centred orthonormal FFT)
/// under a random line mask, and sparse-view parallel-beam CT (Joseph projector, 6 of 60 views:
/// fewer measurements than pixels, so the data leave a null space for the prior to fill).
fn dds_operators(n: i64) -> Vec<(&'static str, MeasurementOperator)> {
    use scorerecon::ops::ct::{self, Geometry, Radon};
    use scorerecon::ops::mri::MriFft;
    tch::manual_seed(21);
    let lines = Tensor::rand([1, 1, 1, n], (Kind::Float, Device::Cpu))
        .gt(0.6)
        .to_kind(Kind::Float)
        .expand([1, 1, n, n], false)
        .contiguous();
    let g = Geometry::new(n as usize, 60).unwrap();
    let rows = ct::sparse_view_rows(60, 6).unwrap();
    vec![
        (
            "MRI",
            MeasurementOperator::new(Box::new(MriFft::real(n, n).unwrap()), lines),
        ),
        (
            "CT",
            MeasurementOperator::new(
                Box::new(Radon::new(g.clone()).unwrap()),
                ct::rows_mask(&rows, 60, g.n_det),
            ),
        ),
    ]
}

fn dds_options(samples: usize) -> SamplerOptions {
    quiet(SamplerOptions {
        sampler: SamplerKind::Dds,
        steps: 25,
        lambda: 1.0,
        seed: 5,
        samples,
        noise_free_measurement: true,
        ..Default::default()
    })
}

/// Gaussian prior `N(mu, s^2 I)`, noise-free `y = A x`, lambda = 1: the posterior mean is the
/// L2 projection of `mu` onto `{A x = y}` (for any `A`), `mu + A^T (A A^T)^-1 (y - A mu)`. DDS's
/// mean over 200 samples must reproduce `y` (`|A x - y| / |y| <= 1e-4`) and lie within 5
/// standard errors (`s / sqrt(S)`, per pixel) of the projection shifted by the start's bias in
/// the null space of `A` (the data steps and the final projection move only in `range(A^T)`).
/// The start's mean there is 0, not `mu` (pure noise, or the data step of a blank image plus
/// noise for the warm start), and what is left of that offset has a closed form. Per level the
/// null-space offset `d` becomes `a_i d` by Tweedie (`a_i = s^2 / (s^2 + sigma_i^2)`) and gets
/// `keep_i (1 - a_i) d / sigma_i` back through the re-noise's `eps`. With DDIM's eta = 1 and no
/// fresh noise `keep_i = sigma_{i+1}^2 / sigma_i`, the factors telescope, and the offset left is
/// `beta = s^2 / (s^2 + sigma_1^2)` of `mu`: 8e-6 from `sigma_max` = 50, but 0.31 from a warm
/// start at 0.3. With all-fresh re-noise `keep_i = 0` and `beta = prod_i a_i` (4e-3 from 0.3).
fn dds_null_space_bias(levels: &[f64], fresh: f64) -> f64 {
    let a = |sigma: f64| S * S / (S * S + sigma * sigma);
    match fresh {
        0.0 => a(levels[0]),
        1.0 => levels.iter().map(|&l| a(l)).product(),
        _ => unreachable!("the closed forms are for fresh 0 and 1"),
    }
}

/// `mu + pinv(A) (y - A mu)` in double precision, from `A` written out column by column
/// (complex measurements as their real and imaginary parts: the real least-squares problem).
fn closed_form_mean(op: &MeasurementOperator, y: &Tensor, n: i64) -> Tensor {
    let basis = Tensor::eye(n * n, (Kind::Float, Device::Cpu)).reshape([n * n, 1, n, n]);
    let real_rows = |t: Tensor| {
        if t.is_complex() {
            Tensor::cat(&[t.real(), t.imag()], 1)
        } else {
            t
        }
        .to_kind(Kind::Double)
    };
    let a = real_rows(op.keep(&op.forward(&basis))).tr(); // [m, n^2]
    let yv = real_rows(op.keep(y)).reshape([-1, 1]);
    let mu = Tensor::full([n * n, 1], MU, (Kind::Double, Device::Cpu));
    let x = &mu + a.linalg_pinv(1e-10, false).matmul(&(yv - a.matmul(&mu)));
    x.reshape([1, 1, n, n]).to_kind(Kind::Float)
}

#[test]
fn dds_posterior_mean_matches_the_closed_form_for_mri_and_ct() {
    let n = 16;
    let sde = VeSde::new(0.01, 50.0).unwrap();
    let prior = GaussianPrior::constant(MU, S, 1, n, n, sde, Device::Cpu).unwrap();
    let samples = 200;
    // Cold start; warm start with DDIM's rule (the CT default); warm start with fresh noise
    // (the MRI and MAR default).
    for (start, fresh) in [(0.0, 0.0), (0.3, 0.0), (0.3, 1.0)] {
        let first = if start > 0.0 { start } else { sde.sigma_max };
        let steps = dds_options(1).steps;
        let beta = dds_null_space_bias(&VeSde::new(0.01, first).unwrap().levels(steps), fresh);
        for (name, op) in dds_operators(n) {
            tch::manual_seed(22);
            let y = op.forward(&Tensor::rand([1, 1, n, n], (Kind::Float, Device::Cpu)));
            // The 6-view Radon system is ill-conditioned: the final projection's CG needs more
            // than its default 50 iterations to reach 1e-4 (as does the closed form, hence pinv).
            let mut o = dds_options(samples);
            o.projection_iterations = 500;
            o.dds_start_sigma = start;
            o.dds_fresh = fresh;
            let post = reconstruct(&prior, &op, &y, &o).unwrap();
            let res = op.residual(&post.mean, &y)[0];
            // closed_form_mean(0) = mu - pinv(A) A mu, the null-space part of mu.
            let exact =
                closed_form_mean(&op, &y, n) - closed_form_mean(&op, &y.zeros_like(), n) * beta;
            let dev = f(&(&post.mean - &exact).abs().max());
            let tol = 5.0 * S / (samples as f64).sqrt();
            eprintln!(
                "DDS {name}, start {start}, fresh {fresh}: |Ax - y| / |y| = {res:.2e}, mean off \
                 the closed form (null-space bias {beta:.2e} mu) by {dev:.4} (tolerance {tol:.4})"
            );
            assert!(res <= 1e-4, "{name}: |A x - y| / |y| = {res}");
            assert!(
                dev < tol,
                "{name}, start {start}, fresh {fresh}: posterior mean off by {dev}"
            );
        }
    }
}

#[test]
fn dds_same_seed_same_output() {
    let n = 16;
    let prior = gaussian(n, n);
    for (name, op) in dds_operators(n) {
        let y = op.forward(&Tensor::ones([1, 1, n, n], (Kind::Float, Device::Cpu)));
        let o = dds_options(2);
        let a = reconstruct(&prior, &op, &y, &o).unwrap();
        assert_eq!(
            a.nfe, o.steps,
            "DDS: one score evaluation per level, no extra denoise"
        );
        let _ = Tensor::randn([100], (Kind::Float, Device::Cpu));
        let b = reconstruct(&prior, &op, &y, &o).unwrap();
        assert!(
            a.samples.equal(&b.samples),
            "{name}: same seed, different output"
        );
        let mut o2 = o.clone();
        o2.seed += 1;
        let c = reconstruct(&prior, &op, &y, &o2).unwrap();
        assert!(
            f(&(&a.samples - &c.samples).abs().max()) > 1e-4,
            "{name}: different seeds gave the same sample"
        );
    }
}
