//! `scorerecon ct | mri | mar`: one argument set, three tasks, one pipeline (`crate::pipeline`).
//! Every flag is optional so that a config file (`--config`) and the task's defaults fill the rest:
//! defaults < config file < flags.

use crate::job::{JobSpec, Task};
use anyhow::{Context, Result};
use clap::Args;
use serde_yaml_ng::{Mapping, Value};
use std::path::PathBuf;

#[derive(Args, Debug, Clone, Default)]
pub struct ReconArgs {
    /// Image/volume (DICOM file or series folder, NIfTI, NRRD) to simulate a measurement from, or a
    /// measurement file written by `scorerecon simulate`.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Output folder (created atomically; refuses to replace an existing one without --force).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
    /// YAML settings (see configs/); flags given here override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// DICOM series UID when the folder holds several.
    #[arg(long)]
    pub series: Option<String>,
    /// Slice index (0-based); repeat or comma-separate for several. Default: the middle slice.
    #[arg(long, value_delimiter = ',')]
    pub slice: Vec<usize>,
    /// Reconstruct every slice of the volume (sampled in device batches).
    #[arg(long)]
    pub all_slices: bool,

    /// CT: measured views; a comma-separated list makes a sweep (e.g. 10,23,45,90).
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<usize>,
    /// CT: size of the full angle set over [0, 180) degrees.
    #[arg(long)]
    pub full_views: Option<usize>,
    /// CT: limited-angle wedge in degrees instead of sparse views.
    #[arg(long)]
    pub limited_angle: Option<f64>,
    /// CT/MAR: incident photons per bin for Poisson noise on the simulated sinogram.
    #[arg(long)]
    pub photons: Option<f64>,

    /// MRI: acceleration factor(s); a comma-separated list makes a sweep.
    #[arg(long, value_delimiter = ',')]
    pub acceleration: Vec<f64>,
    /// MRI: fully sampled fraction of the central k-space lines.
    #[arg(long)]
    pub center_fraction: Option<f64>,
    /// MRI: equispaced, equispaced-fraction, random, gaussian or poisson.
    #[arg(long)]
    pub mask: Option<String>,
    /// MRI: complex Gaussian k-space noise, SNR in dB.
    #[arg(long)]
    pub snr_db: Option<f64>,

    /// MAR: metal threshold in HU.
    #[arg(long)]
    pub metal_threshold: Option<f64>,
    /// MAR: insert simulated metal into a metal-free input and simulate a polychromatic scan.
    #[arg(long)]
    pub insert_metal: bool,

    /// Prior: a shipped name (models/), a .safetensors or TorchScript file, or knn:FOLDER.
    #[arg(long)]
    pub model: Option<String>,
    /// pc (predictor-corrector, default), ald (annealed Langevin), ode (probability flow), score-sde.
    #[arg(long)]
    pub sampler: Option<String>,
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long)]
    pub corrector_steps: Option<usize>,
    /// Langevin corrector signal-to-noise ratio (the paper's eta).
    #[arg(long)]
    pub snr: Option<f64>,
    /// Weight of the measurement in the proximal step (0 = ignore, 1 = enforce).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Posterior samples per slice (>1 adds a mean and a per-pixel std map).
    #[arg(long)]
    pub samples: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda or auto.
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Classical baselines, comma-separated (fbp, fista_tv, zero_filled, tv, li); `none` for none.
    #[arg(long, value_delimiter = ',')]
    pub baselines: Vec<String>,
    /// TV weight of fista-tv / tv relative to ||A||^2 x data range (default: tuned on a
    /// validation slice of the input, maximising SSIM).
    #[arg(long)]
    pub tv_weight: Option<f64>,
    /// error (default), pad (zero-pad smaller slices) or resample (average larger slices down by
    /// an integer factor, as the shipped priors' training data were, then pad): what to do when
    /// the image size differs from the model's.
    #[arg(long)]
    pub fit: Option<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl ReconArgs {
    /// The flags the user gave, as YAML overrides.
    fn overrides(&self) -> Mapping {
        let mut m = Mapping::new();
        let mut put = |k: &str, v: Value| {
            m.insert(Value::String(k.into()), v);
        };
        let s = |x: &str| Value::String(x.into());
        if let Some(v) = &self.input {
            put("input", s(&v.to_string_lossy()));
        }
        if let Some(v) = &self.series {
            put("series", s(v));
        }
        if !self.slice.is_empty() {
            put("slices", serde_yaml_ng::to_value(&self.slice).unwrap());
        }
        if self.all_slices {
            put("all_slices", Value::Bool(true));
        }
        if !self.views.is_empty() {
            put("views", serde_yaml_ng::to_value(&self.views).unwrap());
        }
        macro_rules! opt {
            ($($f:ident),*) => {$(
                if let Some(v) = &self.$f { put(stringify!($f), serde_yaml_ng::to_value(v).unwrap()); }
            )*};
        }
        opt!(
            full_views,
            limited_angle,
            photons,
            center_fraction,
            mask,
            snr_db,
            metal_threshold,
            model,
            sampler,
            steps,
            corrector_steps,
            snr,
            lambda,
            samples,
            seed,
            device,
            batch_size,
            tv_weight,
            fit
        );
        if !self.acceleration.is_empty() {
            put(
                "acceleration",
                serde_yaml_ng::to_value(&self.acceleration).unwrap(),
            );
        }
        if self.insert_metal {
            put("insert_metal", Value::Bool(true));
        }
        if !self.baselines.is_empty() {
            let b: Vec<String> = self
                .baselines
                .iter()
                .filter(|b| b.as_str() != "none")
                .map(|b| b.replace('-', "_"))
                .collect();
            put("baselines", serde_yaml_ng::to_value(b).unwrap());
        }
        if self.quiet {
            put("quiet", Value::Bool(true));
        }
        m
    }

    /// Defaults < config file < flags.
    pub fn to_spec(&self, task: Task) -> Result<JobSpec> {
        let mut merged = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("{}: cannot read the config", p.display()))?;
                match serde_yaml_ng::from_str::<Value>(&text)
                    .with_context(|| format!("{}: not valid YAML", p.display()))?
                {
                    Value::Mapping(m) => m,
                    Value::Null => Mapping::new(),
                    _ => anyhow::bail!("{}: a config is a mapping of settings", p.display()),
                }
            }
            None => Mapping::new(),
        };
        for (k, v) in self.overrides() {
            merged.insert(k, v);
        }
        let origin = self
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "command line".into());
        let spec = JobSpec::from_yaml(Some(task), &merged, &origin)?;
        spec.validate()?;
        Ok(spec)
    }
}

pub fn run(task: Task, args: ReconArgs) -> Result<()> {
    let spec = args.to_spec(task)?;
    crate::pipeline::measured::check_flags(
        &spec,
        &crate::pipeline::measured::GivenFlags::of(&spec, &args.overrides()),
    )?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::job::default_out(task));
    let report = crate::pipeline::run_to_dir(&spec, &out, args.force)?;
    crate::pipeline::print_summary(&report, &out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_config_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, "steps: 40\nsnr: 0.3\nviews: [10, 23]\n").unwrap();
        let args = ReconArgs {
            input: Some(dir.path().to_path_buf()),
            config: Some(cfg),
            steps: Some(7),
            ..Default::default()
        };
        let s = args.to_spec(Task::Ct).unwrap();
        assert_eq!(s.steps, 7);
        assert_eq!(s.snr, 0.3);
        assert_eq!(s.views, vec![10, 23]);
        assert_eq!(s.lambda, 0.841);
    }
}
