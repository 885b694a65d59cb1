//! `JobSpec`: everything one reconstruction job needs, from the command line, a YAML config
//! (`--config`, `configs/*.yaml`) or a batch manifest. Precedence: built-in task defaults < config
//! file < explicit flags. Unknown keys are errors, so a typo never silently falls back to a default.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Sparse-view (or limited-angle) CT from a parallel-beam sinogram.
    Ct,
    /// Undersampled single-coil MRI from Cartesian k-space.
    Mri,
    /// Metal artifact removal: the metal trace of the sinogram is treated as missing.
    Mar,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Ct => "ct",
            Task::Mri => "mri",
            Task::Mar => "mar",
        }
    }
}

/// One job. Field names are the YAML keys and (with `-` for `_`) the command-line flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSpec {
    pub task: Task,
    /// An image/volume (DICOM file or series folder, NIfTI) or a measurement file from `simulate`.
    pub input: PathBuf,
    /// DICOM series to use when the folder holds several.
    pub series: Option<String>,
    /// Slices to reconstruct; empty = the middle slice (or all, with `all_slices`).
    pub slices: Vec<usize>,
    pub all_slices: bool,

    // CT
    /// Number(s) of measured views; several values make a sweep.
    pub views: Vec<usize>,
    pub full_views: usize,
    /// Limited-angle CT: a wedge of this many degrees instead of sparse views.
    pub limited_angle: Option<f64>,
    /// Incident photons per detector bin for Poisson noise on simulated sinograms (None: noise-free).
    pub photons: Option<f64>,

    // MRI
    pub acceleration: Vec<f64>,
    pub center_fraction: f64,
    pub mask: String,
    /// Complex Gaussian noise on simulated k-space, as SNR in dB (None: noise-free).
    pub snr_db: Option<f64>,

    // MAR
    pub metal_threshold: f64,
    /// Insert simulated metal into the (metal-free) input and simulate a polychromatic scan.
    pub insert_metal: bool,

    // Prior and sampler
    /// A shipped prior by name, a `.safetensors` or TorchScript file, or `knn:FOLDER`.
    pub model: String,
    pub sampler: String,
    pub steps: usize,
    pub corrector_steps: usize,
    pub snr: f64,
    pub lambda: f64,
    /// Posterior samples per slice; more than one gives a mean and a per-pixel std map.
    pub samples: usize,
    pub seed: u64,
    pub device: String,
    /// Slices (times samples) sampled together on the device.
    pub batch_size: usize,
    /// Classical baselines to run next to the score-based reconstruction.
    pub baselines: Vec<String>,
    /// TV weight of fista_tv / tv relative to `||A||^2 * data range`; None: tuned on a
    /// validation slice of the input (maximum SSIM), see docs/baselines.md.
    pub tv_weight: Option<f64>,
    /// How an image whose size differs from the model's is handled: `error`, `pad` (centred
    /// zero-padding, cropped back afterwards) or `resample` (averaged down by the smallest
    /// integer factor that fits, then padded; outputs on the averaged grid).
    pub fit: String,
    pub quiet: bool,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            task: Task::Ct,
            input: PathBuf::new(),
            series: None,
            slices: vec![],
            all_slices: false,
            views: vec![23],
            full_views: 180,
            limited_angle: None,
            photons: None,
            acceleration: vec![4.0],
            center_fraction: 0.08,
            mask: "equispaced".into(),
            snr_db: None,
            metal_threshold: 3000.0,
            insert_metal: false,
            model: String::new(),
            sampler: "pc".into(),
            steps: 200,
            corrector_steps: 1,
            snr: 0.246,
            lambda: 0.841,
            samples: 1,
            seed: 0,
            device: "auto".into(),
            batch_size: 8,
            baselines: vec![],
            tv_weight: None,
            fit: "error".into(),
            quiet: false,
        }
    }
}

impl JobSpec {
    /// The paper's tuned values per task (method.md, "Tuned hyper-parameters") and the task's
    /// baselines.
    pub fn for_task(task: Task) -> Self {
        let mut s = JobSpec {
            task,
            ..Default::default()
        };
        match task {
            Task::Ct => {
                s.snr = 0.246;
                s.lambda = 0.841;
                s.baselines = vec!["fbp".into(), "fista_tv".into()];
            }
            Task::Mar => {
                s.snr = 0.209;
                s.lambda = 0.227;
                s.baselines = vec!["fbp".into(), "li".into()];
            }
            Task::Mri => {
                s.snr = 0.577;
                s.lambda = 0.982;
                s.baselines = vec!["zero_filled".into(), "tv".into()];
            }
        }
        s
    }

    /// Task defaults, then `overrides` (a YAML mapping: a config file or a manifest entry), key by key.
    pub fn from_yaml(
        task: Option<Task>,
        overrides: &serde_yaml_ng::Mapping,
        origin: &str,
    ) -> Result<Self> {
        // `config: FILE` (a manifest entry naming a task config): the file's settings first,
        // then the entry's own keys on top.
        let expanded;
        let overrides = match overrides.get("config") {
            Some(v) => {
                let path = v
                    .as_str()
                    .with_context(|| format!("{origin}: `config` must be a file path"))?;
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{origin}: {path}: cannot read the config"))?;
                let mut merged = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text)
                    .with_context(|| format!("{origin}: {path}: not valid YAML"))?
                {
                    serde_yaml_ng::Value::Mapping(m) => m,
                    serde_yaml_ng::Value::Null => serde_yaml_ng::Mapping::new(),
                    _ => bail!("{origin}: {path}: a config is a mapping of settings"),
                };
                if merged.contains_key("config") {
                    bail!("{origin}: {path}: a config cannot name another config");
                }
                for (k, v) in overrides {
                    if k.as_str() != Some("config") {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                expanded = merged;
                &expanded
            }
            None => overrides,
        };
        let task = match (task, overrides.get("task")) {
            (Some(t), _) => t,
            (None, Some(v)) => serde_yaml_ng::from_value(v.clone())
                .with_context(|| format!("{origin}: `task` must be ct, mri or mar"))?,
            (None, None) => bail!("{origin}: no `task` given (ct, mri or mar)"),
        };
        let mut base = serde_yaml_ng::to_value(Self::for_task(task))?;
        if let serde_yaml_ng::Value::Mapping(m) = &mut base {
            for (k, v) in overrides {
                if k.as_str() == Some("task") && task_mismatch(task, v) {
                    bail!(
                        "{origin}: `task: {}` contradicts the `{}` command",
                        v.as_str().unwrap_or("?"),
                        task.name()
                    );
                }
                // Scalars are accepted where lists are expected (`views: 23` = `views: [23]`).
                let v = match (m.get(k), v) {
                    (
                        Some(serde_yaml_ng::Value::Sequence(_)),
                        serde_yaml_ng::Value::Sequence(_),
                    ) => v.clone(),
                    (Some(serde_yaml_ng::Value::Sequence(_)), scalar) => {
                        serde_yaml_ng::Value::Sequence(vec![scalar.clone()])
                    }
                    _ => v.clone(),
                };
                m.insert(k.clone(), v);
            }
        }
        let spec: JobSpec = serde_yaml_ng::from_value(base)
            .with_context(|| format!("{origin}: invalid settings"))?;
        Ok(spec)
    }

    /// Read a YAML config file on top of the task defaults.
    pub fn from_config_file(task: Option<Task>, path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the config", path.display()))?;
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{}: not valid YAML", path.display()))?;
        let m = match v {
            serde_yaml_ng::Value::Mapping(m) => m,
            serde_yaml_ng::Value::Null => Default::default(),
            _ => bail!("{}: a config is a mapping of settings", path.display()),
        };
        Self::from_yaml(task, &m, &path.display().to_string())
    }

    /// Reject impossible parameters before any work starts.
    pub fn validate(&self) -> Result<()> {
        if self.input.as_os_str().is_empty() {
            bail!("no input given (--input PATH)");
        }
        if !self.input.exists() {
            bail!("{}: no such file or folder", self.input.display());
        }
        if !(0.0..=1.0).contains(&self.lambda) {
            bail!("--lambda {}: must lie in [0, 1] (0 ignores the measurement, 1 enforces it exactly)", self.lambda);
        }
        if !(self.snr > 0.0) {
            bail!("--snr {}: must be positive", self.snr);
        }
        if self.steps == 0 {
            bail!("--steps 0: at least one sampling step is needed");
        }
        if self.samples == 0 {
            bail!("--samples 0: at least one posterior sample is needed");
        }
        if self.batch_size == 0 {
            bail!("--batch-size 0: must be at least 1");
        }
        if !["error", "pad", "resample"].contains(&self.fit.as_str()) {
            bail!("--fit {}: expected error, pad or resample", self.fit);
        }
        match self.task {
            Task::Ct | Task::Mar => {
                if self.full_views == 0 {
                    bail!("--full-views 0: the full angle set needs at least one view");
                }
                for &v in &self.views {
                    if v == 0 || v > self.full_views {
                        bail!(
                            "--views {v}: must lie in 1..={} (the full angle set)",
                            self.full_views
                        );
                    }
                }
                if let Some(p) = self.photons {
                    if !(p > 0.0) {
                        bail!("--photons {p}: must be positive");
                    }
                }
            }
            Task::Mri => {
                for &r in &self.acceleration {
                    if !(r >= 1.0) {
                        bail!("--acceleration {r}: must be at least 1");
                    }
                }
                if !(self.center_fraction > 0.0 && self.center_fraction < 1.0) {
                    bail!(
                        "--center-fraction {}: must lie in (0, 1)",
                        self.center_fraction
                    );
                }
            }
        }
        Ok(())
    }
}

fn task_mismatch(task: Task, v: &serde_yaml_ng::Value) -> bool {
    v.as_str().map(|s| s != task.name()).unwrap_or(true)
}

/// Where a job writes: `--out DIR`.
pub fn default_out(task: Task) -> PathBuf {
    PathBuf::from(format!("out/{}", task.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> serde_yaml_ng::Mapping {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn task_defaults_are_the_papers_tuned_values() {
        let s = JobSpec::for_task(Task::Mar);
        assert_eq!((s.lambda, s.snr), (0.227, 0.209));
        let s = JobSpec::for_task(Task::Mri);
        assert_eq!((s.lambda, s.snr), (0.982, 0.577));
    }

    #[test]
    fn overrides_apply_and_scalars_become_lists() {
        let s = JobSpec::from_yaml(Some(Task::Ct), &yaml("views: 10\nsteps: 50\n"), "t").unwrap();
        assert_eq!(s.views, vec![10]);
        assert_eq!(s.steps, 50);
        assert_eq!(s.lambda, 0.841);
    }

    #[test]
    fn a_manifest_entry_config_file_sits_under_the_entry_keys() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, "task: mri\nsteps: 40\nsnr: 0.3\n").unwrap();
        let entry = format!("config: {}\nsnr: 0.5\n", cfg.display());
        let s = JobSpec::from_yaml(None, &yaml(&entry), "job").unwrap();
        assert_eq!((s.task, s.steps, s.snr), (Task::Mri, 40, 0.5));
        std::fs::write(&cfg, "config: other.yaml\n").unwrap();
        assert!(JobSpec::from_yaml(None, &yaml(&entry), "job").is_err());
    }

    #[test]
    fn unknown_keys_and_contradictions_are_errors() {
        let e = JobSpec::from_yaml(Some(Task::Ct), &yaml("veiws: 10\n"), "cfg.yaml").unwrap_err();
        assert!(format!("{e:#}").contains("veiws"), "{e:#}");
        assert!(JobSpec::from_yaml(Some(Task::Ct), &yaml("task: mri\n"), "cfg.yaml").is_err());
        assert!(JobSpec::from_yaml(None, &yaml("steps: 3\n"), "cfg.yaml").is_err());
    }

    #[test]
    fn shipped_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            // Task configs only; training and network configs have their own readers.
            if ["ct", "mri", "mar"]
                .iter()
                .any(|t| name.starts_with(&format!("{t}.")) || name.starts_with(&format!("{t}_")))
            {
                JobSpec::from_config_file(None, &p).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                n += 1;
            }
        }
        assert!(n >= 6);
    }

    #[test]
    fn impossible_parameters_are_refused() {
        let mut s = JobSpec::for_task(Task::Ct);
        s.input = std::env::temp_dir();
        assert!(s.validate().is_ok());
        s.views = vec![0];
        assert!(s.validate().is_err());
        s.views = vec![181];
        assert!(s.validate().is_err());
        let mut m = JobSpec::for_task(Task::Mri);
        m.input = std::env::temp_dir();
        m.acceleration = vec![0.5];
        assert!(m.validate().is_err());
        m.acceleration = vec![4.0];
        m.center_fraction = 1.5;
        assert!(m.validate().is_err());
    }
}
