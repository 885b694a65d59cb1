//! `scorerecon train`: train a score model on your own scans (docs/training.md).

use crate::train::{self, TrainConfig, TrainOptions};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Settings come from the defaults, then `--config FILE.yaml`, then the flags below; `--set
/// KEY=VALUE` reaches every setting of the config (docs/training.md lists them).
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// YAML config (configs/train_ct.yaml, configs/train_mri.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data: folders of DICOM series / NIfTI volumes, or single files (repeatable).
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Output prefix: writes NAME.safetensors, NAME.json, NAME.loss.csv, NAME.loss.svg,
    /// NAME.config.yaml and the checkpoint folder NAME.ckpt/.
    #[arg(long, default_value = "models/model")]
    pub out: PathBuf,
    /// Continue the run whose checkpoint is NAME.ckpt/ (same settings; more --steps allowed).
    #[arg(long)]
    pub resume: bool,
    /// Overwrite an existing model of the same name.
    #[arg(long)]
    pub force: bool,
    /// No progress (a bar on a terminal, timestamped lines otherwise).
    #[arg(long)]
    pub quiet: bool,
    /// Optimiser steps in all (a resumed run may raise it) [default: 1000].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Images per optimiser step [default: 8].
    #[arg(long)]
    pub batch_size: Option<i64>,
    /// Adam learning rate, after a linear warm-up [default: 2e-4].
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Side of the square training images in pixels (slices are cropped or padded to it) [default: 64].
    #[arg(long)]
    pub image_size: Option<i64>,
    /// Largest noise level of the VE SDE [default: the largest distance between training images].
    #[arg(long, allow_hyphen_values = true)]
    pub sigma_max: Option<f64>,
    /// Weight of the consistency regulariser (paper 003); 0 turns it off [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    pub consistency: Option<f64>,
    /// Seed of every random draw (initial weights, batches, noise, augmentation) [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda or auto [default: auto].
    #[arg(long)]
    pub device: Option<String>,
    /// Save a checkpoint (for --resume) every this many steps [default: 500].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Any setting as KEY=VALUE in YAML (`--set model.nf=32 --set flip_ud=true`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// After training, draw this many unconditional samples into NAME.samples.png (0: none).
    #[arg(long, default_value_t = 0)]
    pub preview: usize,
    /// Noise levels of the preview's predictor-corrector sampler.
    #[arg(long, default_value_t = 200)]
    pub preview_steps: usize,
    /// Testing aid: stop right after this step without saving, as if killed.
    #[arg(long, hide = true)]
    pub abort_after_step: Option<u64>,
}

/// Defaults < config file < `--set` < named flags.
pub fn resolve_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = match &args.config {
        Some(p) => TrainConfig::from_file(p)?,
        None => TrainConfig::default(),
    };
    cfg.apply_sets(&args.set)?;
    if !args.data.is_empty() {
        cfg.data = args.data.clone();
    }
    macro_rules! flag {
        ($($f:ident),*) => { $( if let Some(v) = &args.$f { cfg.$f = v.clone(); } )* };
    }
    flag!(
        steps,
        batch_size,
        lr,
        image_size,
        consistency,
        seed,
        device,
        checkpoint_every
    );
    if args.sigma_max.is_some() {
        cfg.sigma_max = args.sigma_max;
    }
    Ok(cfg)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = resolve_config(&args)?;
    // The preview is a PC run: the same smallest step count as a reconstruction's.
    let min = crate::sampler::SamplerKind::Pc.min_steps();
    if args.preview > 0 && args.preview_steps < min {
        return Err(crate::job::InvalidSettings(format!(
            "--preview-steps {}: the PC sampler of the preview needs at least {min} noise levels",
            args.preview_steps
        ))
        .into());
    }
    let opts = TrainOptions {
        out: args.out.clone(),
        resume: args.resume,
        force: args.force,
        quiet: args.quiet,
        abort_after_step: args.abort_after_step,
    };
    let r = train::run(&cfg, &opts)?;
    println!(
        "trained {} steps ({:.2} steps/s); loss {:.4} (last 10 %), validation {}; sigma_max {:.3}",
        r.steps,
        r.steps_per_second,
        r.final_loss,
        r.final_val_loss
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "n/a".into()),
        r.sigma_max
    );
    println!(
        "{} training slices, {} held out: {}",
        r.train_slices, r.val_slices, r.holdout
    );
    println!(
        "wrote {} (EMA weights), {}, {}, {}",
        r.paths.weights().display(),
        r.paths.metadata().display(),
        r.paths.loss_csv().display(),
        r.paths.loss_svg().display()
    );
    if args.preview > 0 {
        let device = crate::tensor::parse_device(&cfg.device)?;
        let model = crate::prior::load_prior(&r.paths.weights().to_string_lossy(), device)?;
        let samples = train::preview::unconditional_samples(
            model.as_ref(),
            args.preview,
            args.preview_steps,
            cfg.seed,
        )?;
        let cols = (args.preview as f64).sqrt().ceil() as usize;
        train::preview::write_grid(&samples, cols, &r.paths.samples(), true)?;
        println!("wrote {}", r.paths.samples().display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::train::TrainConfig;

    #[test]
    fn help_states_the_config_defaults() {
        let mut cmd = crate::cli::command();
        let help = cmd
            .find_subcommand_mut("train")
            .unwrap()
            .render_long_help()
            .to_string();
        let d = TrainConfig::default();
        for shown in [
            format!("[default: {}]", d.steps),
            format!("[default: {}]", d.batch_size),
            format!("[default: {:e}]", d.lr),
            format!("[default: {}]", d.image_size),
            format!("[default: {}]", d.checkpoint_every),
            format!("[default: {}]", d.device),
        ] {
            assert!(help.contains(&shown), "train --help lacks {shown}");
        }
    }
}
