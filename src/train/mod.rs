//! Training score models on the user's own scans (docs/training.md): denoising score matching
//! for the VE SDE (`dsm.rs`), Adam with warm-up and clipping (`adam.rs`), an EMA of the weights
//! for sampling (`ema.rs`), checkpoints and exact resume (`checkpoint.rs`), the optional
//! consistency regulariser (`consistency.rs`), and the data set of slices (`data.rs`).
//!
//! Reproducibility: every random draw of step `k` comes from the ChaCha20 stream `(seed, k)`
//! ([`step_rng`]), so a run killed after a checkpoint and resumed computes exactly the steps the
//! uninterrupted run would have (on the same device and thread count).

pub mod adam;
pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod consistency;
pub mod data;
pub mod dsm;
pub mod ema;
pub mod net;
pub mod preview;

pub use config::{OutputPaths, TrainConfig};

use crate::prior::metadata::{Architecture, PriorMetadata, TrainingSummary, FORMAT_VERSION};
use crate::sde::VeSde;
use adam::Adam;
use anyhow::{bail, Context, Result};
use checkpoint::CheckpointState;
use data::DataSet;
use ema::Ema;
use net::ScoreNet;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::path::PathBuf;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// How to run (not part of what is trained, so not in the config).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Output prefix: `models/NAME` (see [`OutputPaths`]).
    pub out: PathBuf,
    /// Continue from `NAME.ckpt/`.
    pub resume: bool,
    /// Overwrite an existing model.
    pub force: bool,
    pub quiet: bool,
    /// Stop right after this step without saving anything more, as a kill would (for tests).
    pub abort_after_step: Option<u64>,
}

/// One row of the loss log (`NAME.loss.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub step: u64,
    /// DSM loss of the step's batch (per pixel, see dsm.rs).
    pub loss: f64,
    /// Consistency loss (0 when the regulariser is off).
    pub consistency: f64,
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Validation DSM loss of the EMA weights, at validation steps.
    pub val_loss: Option<f64>,
}

const CSV_HEADER: &str = "step,loss,consistency,lr,grad_norm,val_loss";

/// What a run produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub steps: u64,
    pub sigma_max: f64,
    /// Mean training loss over the last 10 % of the steps run.
    pub final_loss: f64,
    pub final_val_loss: Option<f64>,
    pub steps_per_second: f64,
    pub train_slices: usize,
    pub val_slices: usize,
    pub holdout: String,
    pub paths: OutputPaths,
}

/// The random stream of step `step`: ChaCha20 seeded with `seed`, stream number `step`.
pub fn step_rng(seed: u64, step: u64) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    r.set_stream(step);
    r
}

/// Build the NCSN++ network of `cfg.model` at `cfg.image_size` under `p`.
pub fn build_net(p: &nn::Path, cfg: &TrainConfig) -> Result<Box<dyn ScoreNet>> {
    let net =
        crate::prior::ncsnpp::Ncsnpp::new(p, &cfg.model.ncsnpp(cfg.image_size)).context("model")?;
    Ok(Box::new(net))
}

/// The metadata of the model `init` names, checked against the network `cfg` trains.
fn read_init(weights: &std::path::Path, cfg: &TrainConfig) -> Result<PriorMetadata> {
    if !weights.is_file() {
        bail!("init {}: no such weights file", weights.display());
    }
    let meta = PriorMetadata::read(&PriorMetadata::sidecar_path(weights))
        .with_context(|| format!("init {}", weights.display()))?;
    let want = Architecture::Ncsnpp(cfg.model.ncsnpp(cfg.image_size));
    if meta.architecture != want {
        bail!(
            "init {}: its network ({:?}) is not the one this config trains ({want:?})",
            weights.display(),
            meta.architecture
        );
    }
    if let Some(s) = cfg.sigma_max {
        if (s - meta.sde.sigma_max).abs() > 1e-6 * s {
            bail!(
                "init {}: trained for sigma_max {}, the config asks for {s}",
                weights.display(),
                meta.sde.sigma_max
            );
        }
    }
    Ok(meta)
}

/// Train (or continue training) a score model; see the module docs.
pub fn run(cfg: &TrainConfig, opts: &TrainOptions) -> Result<TrainReport> {
    cfg.validate()?;
    let paths = OutputPaths::new(&opts.out);
    let device = crate::tensor::parse_device(&cfg.device)?;
    if opts.out.as_os_str().is_empty() {
        bail!("no output given (--out models/NAME)");
    }

    // Everything that can be refused is refused before the data is read.
    let resumed: Option<CheckpointState> = if opts.resume {
        let state_path = paths.checkpoint().join("state.json");
        let text = std::fs::read_to_string(&state_path).with_context(|| {
            format!(
                "{}: no checkpoint to resume from (run without --resume to start a new run)",
                paths.checkpoint().display()
            )
        })?;
        let state: CheckpointState = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid checkpoint state", state_path.display()))?;
        let changed: Vec<String> = state
            .config
            .differences(cfg)
            .into_iter()
            .filter(|k| !config::RESUMABLE_CHANGES.contains(&k.as_str()))
            .collect();
        if !changed.is_empty() {
            bail!(
                "--resume: {} differ from the checkpointed run ({}); a resumed run must train the same \
                 thing (only {} may change)",
                changed.join(", "),
                paths.checkpoint().display(),
                config::RESUMABLE_CHANGES.join(", ")
            );
        }
        if state.step >= cfg.steps {
            bail!(
                "--resume: the checkpoint is at step {} already; ask for more --steps",
                state.step
            );
        }
        Some(state)
    } else {
        for p in [paths.weights(), paths.checkpoint()] {
            crate::io::atomic::check_overwrite(&p, opts.force)?;
        }
        None
    };
    let init = cfg.init.as_deref().map(|p| read_init(p, cfg)).transpose()?;
    if cfg.mixed_precision && !device.is_cuda() {
        eprintln!("warning: mixed_precision is only used on CUDA; training in f32 on {device:?}");
    }
    let autocast = cfg.mixed_precision && device.is_cuda();

    let data = DataSet::load(cfg)?;
    let sigma_max = match (&resumed, cfg.sigma_max) {
        (Some(s), _) => s.sigma_max,
        (None, Some(s)) => s,
        // Fine-tuning keeps the noise scale the network was trained for.
        (None, None) if init.is_some() => {
            init.as_ref().map(|m| m.sde.sigma_max).unwrap_or_default()
        }
        (None, None) => {
            let mut rng = step_rng(cfg.seed, u64::MAX);
            let s = data.estimate_sigma_max(&mut rng, cfg.sigma_max_subsample, cfg.image_size);
            // NaN (an empty or degenerate data set) is refused too; sigma_min is validated.
            if s.is_nan() || s <= cfg.sigma_min {
                bail!(
                    "sigma_max estimated from the data is {s}: the training slices are (nearly) identical; \
                     give sigma_max explicitly"
                );
            }
            s
        }
    };

    let sde = VeSde::new(cfg.sigma_min, sigma_max)?;
    tch::manual_seed(cfg.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let net = build_net(&vs.root(), cfg)?;
    if let (Some(path), None) = (&cfg.init, &resumed) {
        vs.load(path).with_context(|| {
            format!(
                "init {}: cannot load the weights into this network",
                path.display()
            )
        })?;
    }
    let mut ema = Ema::new(&vs, cfg.ema_decay);
    let mut adam = Adam::new(&vs, cfg.adam_beta1, cfg.adam_beta2, cfg.adam_eps);
    let mut history: Vec<LogRow> = Vec::new();
    let start = match &resumed {
        Some(_) => {
            let state = checkpoint::load(&paths.checkpoint(), &vs, &mut ema, &mut adam)?;
            history = read_log(&paths.loss_csv(), state.step)?;
            state.step
        }
        None => 0,
    };

    let pb = crate::progress::bar(cfg.steps, "steps", opts.quiet);
    pb.set_position(start);
    let t0 = Instant::now();
    let mut smooth: Option<f64> = None;
    for step in start + 1..=cfg.steps {
        let mut rng = step_rng(cfg.seed, step);
        let x0 = data.train_batch(&mut rng, cfg.batch_size, cfg.image_size, cfg, device);
        let x0 = augment::augment(&x0, &cfg.augment, &mut rng);
        let (t, z) = dsm::draw_noise(&mut rng, &x0.size(), cfg.t_eps, device);
        let sigma = dsm::sigma_of_t(&sde, &t);
        // libtorch's own generator (dropout) follows the step's stream too.
        tch::manual_seed(rng.random::<u32>() as i64);

        let loss = tch::autocast(autocast, || {
            dsm::dsm_loss(net.as_ref(), &x0, &sigma, &z, true)
        })
        .mean(Kind::Float);
        let mut total = loss.shallow_clone();
        let mut cons_value = 0.0;
        if cfg.consistency > 0.0 {
            // x_t ~ p_t: the same perturbed batch; t' ~ U[t - window, t].
            let shift: Vec<f32> = (0..x0.size()[0])
                .map(|_| (cfg.consistency_window * rng.random::<f64>()) as f32)
                .collect();
            let t_prime = (&t - Tensor::from_slice(&shift).to_device(device)).clamp_min(cfg.t_eps);
            let sigma_p = dsm::sigma_of_t(&sde, &t_prime);
            let x_t = &x0 + sigma.reshape([-1, 1, 1, 1]) * &z;
            let cons = tch::autocast(autocast, || {
                consistency::consistency_loss(
                    net.as_ref(),
                    &x_t,
                    &sigma,
                    &sigma_p,
                    consistency::ReversePaths {
                        steps: cfg.consistency_steps,
                        samples: 1,
                    },
                    &mut rng,
                    true,
                )
            })
            .mean(Kind::Float);
            cons_value = cons.double_value(&[]);
            // Not `+=`: in place, it would also change `loss`, which `total` is a shallow clone of.
            #[allow(clippy::assign_op_pattern)]
            {
                total = total + cons * cfg.consistency;
            }
        }

        Adam::zero_grad(&vs);
        total.backward();
        let grad_norm =
            Adam::clip_grad_norm(&vs, cfg.grad_clip).with_context(|| format!("step {step}"))?;
        let lr = Adam::scheduled_lr(cfg.lr, cfg.warmup, step);
        adam.step(&vs, lr);
        ema.update(&vs);

        let loss_value = loss.double_value(&[]);
        let mut row = LogRow {
            step,
            loss: loss_value,
            consistency: cons_value,
            lr,
            grad_norm,
            val_loss: None,
        };
        if (step % cfg.val_every.max(1) == 0 || step == cfg.steps) && !data.val.is_empty() {
            row.val_loss = Some(validate(net.as_ref(), &vs, &ema, &data, cfg, &sde, device));
        }
        history.push(row);
        smooth = Some(match smooth {
            None => loss_value,
            Some(s) => 0.98 * s + 0.02 * loss_value,
        });
        pb.set_message(format!("loss {:.4}", smooth.unwrap_or(loss_value)));
        pb.inc(1);

        if opts.abort_after_step == Some(step) {
            pb.finish_and_clear();
            bail!("stopped after step {step} as asked (--abort-after-step), without saving");
        }
        if step % cfg.checkpoint_every == 0 || step == cfg.steps {
            write_log(&paths, &history)?;
            let state = CheckpointState {
                version: checkpoint::CHECKPOINT_VERSION,
                step,
                adam_t: adam.t,
                ema_updates: ema.num_updates,
                seed: cfg.seed,
                sigma_max,
                config: cfg.clone(),
            };
            checkpoint::save(&paths.checkpoint(), &vs, &ema, &adam, &state)?;
        }
    }
    pb.finish_and_clear();
    let elapsed = t0.elapsed().as_secs_f64();

    write_model(&paths, &ema, cfg, &data, sde, opts.force || opts.resume)?;
    calibrate_prior_fit(&paths, cfg, &data, device)?;
    let tail = (history.len() / 10).max(1);
    let final_loss = history.iter().rev().take(tail).map(|r| r.loss).sum::<f64>() / tail as f64;
    Ok(TrainReport {
        steps: cfg.steps,
        sigma_max,
        final_loss,
        final_val_loss: history.iter().rev().find_map(|r| r.val_loss),
        steps_per_second: (cfg.steps - start) as f64 / elapsed.max(1e-9),
        train_slices: data.train.len(),
        val_slices: data.val.len(),
        holdout: data.holdout.clone(),
        paths,
    })
}

/// Validation DSM loss of the EMA weights: the held-out slices with the same `t` and `z` at
/// every evaluation, so the numbers are comparable along the run.
pub fn validate(
    net: &dyn ScoreNet,
    vs: &nn::VarStore,
    ema: &Ema,
    data: &DataSet,
    cfg: &TrainConfig,
    sde: &VeSde,
    device: Device,
) -> f64 {
    ema.with_weights(vs, || {
        tch::no_grad(|| {
            // The digits spell "seed of val" (the validation stream), hence the grouping.
            #[allow(clippy::unusual_byte_groupings)]
            let mut rng = step_rng(cfg.seed ^ 0x5EED_0F_7A1, 0);
            let mut sum = 0.0;
            for i in 0..cfg.val_batches.max(1) {
                let x0 = data
                    .val_batch(i, cfg.batch_size, cfg.image_size, device)
                    .expect("validation slices exist");
                let (t, z) = dsm::draw_noise(&mut rng, &x0.size(), cfg.t_eps, device);
                let sigma = dsm::sigma_of_t(sde, &t);
                sum += dsm::dsm_loss(net, &x0, &sigma, &z, false)
                    .mean(Kind::Double)
                    .double_value(&[]);
            }
            sum / cfg.val_batches.max(1) as f64
        })
    })
}

/// Write the loss log (CSV) and its plot (SVG), atomically.
fn write_log(paths: &OutputPaths, history: &[LogRow]) -> Result<()> {
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    for r in history {
        let val = r.val_loss.map(|v| v.to_string()).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.step, r.loss, r.consistency, r.lr, r.grad_norm, val
        ));
    }
    crate::io::atomic::write_file(&paths.loss_csv(), true, |tmp| {
        std::fs::write(tmp, csv.as_bytes()).context("cannot write the loss log")
    })?;
    // Raw per-step losses are noisy; plot a running mean over 1 % of the run next to them.
    let w = (history.len() / 100).max(1);
    let mut running = Vec::new();
    let mut acc = 0.0;
    for (i, r) in history.iter().enumerate() {
        acc += r.loss;
        if i >= w {
            acc -= history[i - w].loss;
        }
        running.push((r.step as f64, acc / (i + 1).min(w) as f64));
    }
    use crate::report::svg::{line_plot, Series};
    let series = vec![
        Series {
            name: "train (per step)".into(),
            points: history.iter().map(|r| (r.step as f64, r.loss)).collect(),
        },
        Series {
            name: format!("train (mean of {w})"),
            points: running,
        },
        Series {
            name: "validation (EMA)".into(),
            points: history
                .iter()
                .filter_map(|r| r.val_loss.map(|v| (r.step as f64, v)))
                .collect(),
        },
    ];
    let svg = line_plot("DSM loss", "step", "loss per pixel", &series, true);
    crate::io::atomic::write_file(&paths.loss_svg(), true, |tmp| {
        std::fs::write(tmp, svg.as_bytes()).context("cannot write the loss plot")
    })
}

/// The rows of a loss log up to `step`; the run that wrote them must have logged every step.
pub fn read_log(path: &std::path::Path, step: u64) -> Result<Vec<LogRow>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{}: cannot read the loss log of the run to resume",
            path.display()
        )
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let parse = |j: usize| -> Result<f64> {
            f.get(j)
                .with_context(|| format!("{}: line {} is short", path.display(), i + 1))?
                .parse::<f64>()
                .with_context(|| format!("{}: line {}: not a number", path.display(), i + 1))
        };
        let row = LogRow {
            step: parse(0)? as u64,
            loss: parse(1)?,
            consistency: parse(2)?,
            lr: parse(3)?,
            grad_norm: parse(4)?,
            val_loss: match f.get(5) {
                Some(s) if !s.is_empty() => Some(parse(5)?),
                _ => None,
            },
        };
        if row.step <= step {
            rows.push(row);
        }
    }
    if rows.len() as u64 != step || rows.last().map(|r| r.step) != Some(step) {
        bail!(
            "{}: the loss log does not reach the checkpoint's step {step}",
            path.display()
        );
    }
    Ok(rows)
}

/// The prior-fit range (`prior::fit`) of the model just written, over every held-out slice (the
/// centre crops validation uses), into its sidecar: reconstructions with the model can then say
/// when an image is unlike its validation images. Nothing to do without held-out slices.
fn calibrate_prior_fit(
    paths: &OutputPaths,
    cfg: &TrainConfig,
    data: &DataSet,
    device: Device,
) -> Result<()> {
    if data.val.is_empty() {
        return Ok(());
    }
    let model = crate::prior::PriorRef::File(paths.weights()).load(device)?;
    let b = cfg.batch_size.max(1);
    let mut values = Vec::with_capacity(data.val.len());
    for i in 0..data.val.len().div_ceil(b as usize) {
        let x = data
            .val_batch(i, b, cfg.image_size, device)
            .expect("validation slices exist");
        values.extend(crate::prior::fit::dsm_residual(model.as_ref(), &x)?);
    }
    // `val_batch` wraps around: keep each slice once.
    values.truncate(data.val.len());
    let sidecar = paths.metadata();
    let mut meta = PriorMetadata::read(&sidecar)?;
    meta.prior_fit = Some(crate::prior::fit::FitRange::of(
        &values,
        &format!("held out in training: {}", data.holdout),
    )?);
    meta.write(&sidecar, true)
}

/// Write the EMA weights (for sampling), their metadata sidecar (`prior::metadata`, so
/// `load_prior` reads the model) and the resolved config.
fn write_model(
    paths: &OutputPaths,
    ema: &Ema,
    cfg: &TrainConfig,
    data: &DataSet,
    sde: VeSde,
    force: bool,
) -> Result<()> {
    let named: Vec<(String, Tensor)> = ema
        .shadow
        .iter()
        .map(|(k, v)| (k.clone(), v.to_device(Device::Cpu)))
        .collect();
    crate::io::atomic::write_file(&paths.weights(), force, |tmp| {
        Tensor::write_safetensors(&named, tmp)
            .with_context(|| format!("{}: cannot write the weights", paths.weights().display()))
    })?;
    let meta = PriorMetadata {
        format_version: FORMAT_VERSION,
        architecture: Architecture::Ncsnpp(cfg.model.ncsnpp(cfg.image_size)),
        sde,
        image_size: [cfg.image_size, cfg.image_size],
        channels: 1,
        normalisation: data.normalisation.clone(),
        pixel_mm: cfg.pixel_mm,
        training: Some(TrainingSummary {
            dataset: cfg
                .data
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            modality: format!("{:?}", data.modality).to_lowercase(),
            n_images: data.train.len(),
            iterations: cfg.steps as usize,
            ema_rate: Some(cfg.ema_decay),
            created: Some(chrono::Utc::now().to_rfc3339()),
            notes: match &cfg.init {
                None => format!("held out for validation: {}", data.holdout),
                Some(p) => format!(
                    "fine-tuned for {} steps from {}; held out for validation: {}",
                    cfg.steps,
                    p.display(),
                    data.holdout
                ),
            },
        }),
        prior_fit: None,
    };
    meta.write(&paths.metadata(), force)?;
    let yaml = serde_yaml_ng::to_string(cfg)?;
    crate::io::atomic::write_file(&paths.config(), true, |tmp| {
        std::fs::write(tmp, yaml.as_bytes()).context("cannot write the config")
    })
}
