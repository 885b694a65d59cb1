//! `TrainConfig`: every setting of one training run, from a YAML file (`configs/train_*.yaml`)
//! with command-line overrides on top. Unknown keys are errors, so a typo never silently falls
//! back to a default; impossible values are refused by [`TrainConfig::validate`] before any data
//! is read or any step is taken.

use crate::prior::ncsnpp::NcsnppConfig;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which scans the data set holds; it picks the normalisation (docs/training.md, "Normalisation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataModality {
    /// From the files (DICOM Modality tag); a NIfTI file does not say, so set ct or mr for those.
    Auto,
    /// Hounsfield units mapped to attenuation (background to zero).
    Ct,
    /// Intensities normalised per volume.
    Mr,
}

crate::names::named!(DataModality, "modality", { Auto => "auto", Ct => "ct", Mr => "mr" });

/// The NCSN++ network to train (`prior::ncsnpp::NcsnppConfig` less the image size and channels,
/// which follow the data). Defaults: a small network for CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Base number of feature channels.
    pub nf: i64,
    /// Channel multiplier per resolution (each halves the side).
    pub ch_mult: Vec<i64>,
    pub num_res_blocks: usize,
    /// Sides that get self-attention.
    pub attn_resolutions: Vec<i64>,
    pub dropout: f64,
    pub fourier_scale: f64,
    pub skip_rescale: bool,
    pub init_scale: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            nf: 16,
            ch_mult: vec![1, 2, 2, 2],
            num_res_blocks: 1,
            attn_resolutions: vec![],
            dropout: 0.0,
            fourier_scale: 16.0,
            skip_rescale: true,
            init_scale: 0.0,
        }
    }
}

impl ModelConfig {
    /// The full NCSN++ config for square `image_size` single-channel images in [0, 1].
    pub fn ncsnpp(&self, image_size: i64) -> NcsnppConfig {
        NcsnppConfig {
            image_size,
            channels: 1,
            nf: self.nf,
            ch_mult: self.ch_mult.clone(),
            num_res_blocks: self.num_res_blocks,
            attn_resolutions: self.attn_resolutions.clone(),
            dropout: self.dropout,
            fourier_scale: self.fourier_scale,
            skip_rescale: self.skip_rescale,
            centered: false,
            init_scale: self.init_scale,
        }
    }
}

/// One training run. Field names are the YAML keys and `--set` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    // ---- data (data.rs)
    /// Folders of DICOM series / NIfTI volumes (mixed), or single files.
    pub data: Vec<PathBuf>,
    /// Random-ellipse phantom slices (`phantom::random_ellipses`, CT only) added to the data;
    /// `val_fraction` of them are held out. 0: none.
    pub phantoms: usize,
    pub modality: DataModality,
    /// Side of the square slices the model sees, after `downsample`.
    pub image_size: i64,
    /// Integer factor by which slices are averaged down before cropping (256 -> 128 with 2).
    pub downsample: i64,
    /// In-plane pixel size (mm) every volume is resampled to, after its axes are put in RAS+
    /// order (`regrid.rs`): scans of other resolutions and axis orders then share one scale and
    /// orientation, and the model records it so that `--fit resample` puts a scan on the same
    /// grid. Null: slices as stored, averaged down by `downsample`.
    pub pixel_mm: Option<f64>,
    /// CT window mapped to [0, 1]: `x = (HU - hu_min) / (hu_max - hu_min)`, negatives to 0
    /// (`prior::Normalisation::CtAttenuation`).
    pub hu_min: f64,
    pub hu_max: f64,
    /// MR: each volume is divided by this percentile of its voxels.
    pub mr_percentile: f64,
    /// Slices whose fraction of pixels above 0.05 (model space) is below this are skipped
    /// (empty slices above the head teach nothing).
    pub min_foreground: f64,
    /// Training crops are taken at random positions (else centred) when a slice is larger.
    pub random_crop: bool,
    /// Random left-right flips (anatomy is roughly symmetric); up-down flips are off by default.
    pub flip_lr: bool,
    pub flip_ud: bool,
    /// Share of the data held out for validation: whole volumes when there are several, else a
    /// contiguous slab of slices.
    pub val_fraction: f64,
    /// Single volume: where the held-out slab sits, as a fraction of the slice axis.
    pub val_position: f64,
    /// Single volume: slices left out on each side of the slab (neighbours are near copies).
    pub val_gap: usize,
    /// Random deformations of the training images (`augment.rs`); off by default.
    pub augment: super::augment::AugmentConfig,

    // ---- noise (VE SDE)
    pub sigma_min: f64,
    /// None: the largest pairwise distance between training slices (chapter 6, technique 1).
    pub sigma_max: Option<f64>,
    /// Slices used to estimate sigma_max.
    pub sigma_max_subsample: usize,
    /// Smallest time of `t ~ U(eps, 1)`.
    pub t_eps: f64,

    // ---- optimisation
    pub steps: u64,
    pub batch_size: i64,
    pub lr: f64,
    /// Steps of linear learning-rate warm-up.
    pub warmup: u64,
    /// Global gradient-norm clip (0: off).
    pub grad_clip: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    pub ema_decay: f64,
    /// Weight of the consistency regulariser of paper 003 (0: off).
    pub consistency: f64,
    /// Reverse-SDE steps from t to t' for the regulariser (paper: 6).
    pub consistency_steps: usize,
    /// t' ~ U[t - window, t].
    pub consistency_window: f64,

    // ---- run
    pub seed: u64,
    pub device: String,
    /// Autocast the network's forward pass on CUDA (ignored with a warning elsewhere).
    pub mixed_precision: bool,
    pub checkpoint_every: u64,
    pub val_every: u64,
    /// Validation batches (of `batch_size`) per evaluation.
    pub val_batches: usize,
    /// Start from these weights (a model written by `scorerecon train`: `NAME.safetensors` with
    /// its sidecar, the same network) instead of a random initialisation: fine-tuning.
    pub init: Option<PathBuf>,

    pub model: ModelConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: vec![],
            phantoms: 0,
            modality: DataModality::Auto,
            image_size: 64,
            downsample: 1,
            pixel_mm: None,
            hu_min: -1000.0,
            hu_max: 2000.0,
            mr_percentile: 99.5,
            min_foreground: 0.05,
            random_crop: true,
            flip_lr: true,
            flip_ud: false,
            val_fraction: 0.1,
            val_position: 0.5,
            val_gap: 4,
            augment: Default::default(),
            sigma_min: 0.01,
            sigma_max: None,
            sigma_max_subsample: 256,
            t_eps: crate::sde::T_EPS,
            steps: 1000,
            batch_size: 8,
            lr: 2e-4,
            warmup: 100,
            grad_clip: 1.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            ema_decay: 0.999,
            consistency: 0.0,
            consistency_steps: 6,
            consistency_window: 0.1,
            seed: 0,
            device: "auto".into(),
            mixed_precision: false,
            checkpoint_every: 500,
            val_every: 100,
            val_batches: 4,
            init: None,
            model: ModelConfig::default(),
        }
    }
}

/// Settings that may change when a run is resumed (they do not change what a step computes).
pub const RESUMABLE_CHANGES: [&str; 5] = [
    "steps",
    "checkpoint_every",
    "val_every",
    "val_batches",
    "device",
];

impl TrainConfig {
    /// Defaults, then `overrides` (a YAML mapping) key by key; nested keys with dots
    /// (`model.nf`) reach into sub-mappings.
    pub fn from_yaml(overrides: &serde_yaml_ng::Mapping, origin: &str) -> Result<Self> {
        let mut base = serde_yaml_ng::to_value(TrainConfig::default())?;
        for (k, v) in overrides {
            let key = k
                .as_str()
                .with_context(|| format!("{origin}: keys must be strings"))?;
            set_nested(&mut base, key, v).with_context(|| origin.to_string())?;
        }
        serde_yaml_ng::from_value(base).with_context(|| format!("{origin}: invalid settings"))
    }

    /// Read a YAML config file on top of the defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        let m = crate::io::yaml::read_mapping(path, "config")?;
        Self::from_yaml(&m, &path.display().to_string())
    }

    /// Apply `KEY=VALUE` overrides (VALUE is YAML: `lr=1e-4`, `data=[a, b]`, `model.nf=32`).
    pub fn apply_sets(&mut self, sets: &[String]) -> Result<()> {
        if sets.is_empty() {
            return Ok(());
        }
        let mut v = serde_yaml_ng::to_value(&*self)?;
        for s in sets {
            let (key, value) = s
                .split_once('=')
                .with_context(|| format!("--set {s}: expected KEY=VALUE"))?;
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(value)
                .with_context(|| format!("--set {s}: the value is not valid YAML"))?;
            set_path(&mut v, key.trim(), value).with_context(|| format!("--set {s}"))?;
        }
        *self = serde_yaml_ng::from_value(v).context("--set: invalid settings")?;
        Ok(())
    }

    /// Reject impossible parameters before any data is read.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f64| -> Result<()> {
            if !(v > 0.0 && v.is_finite()) {
                bail!("{name} {v}: must be a positive number");
            }
            Ok(())
        };
        let unit = |name: &str, v: f64| -> Result<()> {
            if !(0.0..=1.0).contains(&v) {
                bail!("{name} {v}: must lie in [0, 1]");
            }
            Ok(())
        };
        if self.data.is_empty() && self.phantoms == 0 {
            bail!("no training data: give --data FOLDER (DICOM series / NIfTI volumes) or phantoms: N");
        }
        positive("lr", self.lr)?;
        positive("sigma_min", self.sigma_min)?;
        if let Some(s) = self.sigma_max {
            if !(s > self.sigma_min && s.is_finite()) {
                bail!(
                    "sigma_max {s}: must exceed sigma_min ({}) (or leave it out to estimate it from the data)",
                    self.sigma_min
                );
            }
        }
        positive("adam_eps", self.adam_eps)?;
        if !(self.t_eps > 0.0 && self.t_eps < 1.0) {
            bail!("t_eps {}: must lie in (0, 1)", self.t_eps);
        }
        for (name, b) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&b) {
                bail!("{name} {b}: must lie in [0, 1)");
            }
        }
        unit("ema_decay", self.ema_decay)?;
        self.augment.validate()?;
        unit("min_foreground", self.min_foreground)?;
        unit("val_position", self.val_position)?;
        if !(0.0..1.0).contains(&self.val_fraction) {
            bail!("val_fraction {}: must lie in [0, 1)", self.val_fraction);
        }
        if self.grad_clip.is_nan() || self.grad_clip < 0.0 {
            bail!(
                "grad_clip {}: must be >= 0 (0 turns clipping off)",
                self.grad_clip
            );
        }
        if self.consistency.is_nan() || self.consistency < 0.0 {
            bail!(
                "consistency {}: must be >= 0 (0 turns the regulariser off)",
                self.consistency
            );
        }
        if self.consistency > 0.0 {
            if self.consistency_steps == 0 {
                bail!("consistency_steps 0: the regulariser needs at least one reverse-SDE step");
            }
            if !(self.consistency_window > 0.0 && self.consistency_window < 1.0) {
                bail!(
                    "consistency_window {}: must lie in (0, 1)",
                    self.consistency_window
                );
            }
        }
        if self.steps == 0 {
            bail!("steps 0: at least one training step is needed");
        }
        if self.batch_size < 1 {
            bail!("batch_size {}: must be at least 1", self.batch_size);
        }
        if self.image_size < 8 {
            bail!("image_size {}: must be at least 8", self.image_size);
        }
        if self.downsample < 1 {
            bail!("downsample {}: must be at least 1", self.downsample);
        }
        if let Some(p) = self.pixel_mm {
            positive("pixel_mm", p)?;
            if self.downsample != 1 {
                bail!(
                    "pixel_mm {p} and downsample {}: give one of them (pixel_mm resamples to a pixel size, downsample averages by a factor)",
                    self.downsample
                );
            }
        }
        if !(self.hu_min.is_finite() && self.hu_max.is_finite() && self.hu_max > self.hu_min) {
            bail!("hu_max {} must exceed hu_min {}", self.hu_max, self.hu_min);
        }
        if !(self.mr_percentile > 0.0 && self.mr_percentile <= 100.0) {
            bail!("mr_percentile {}: must lie in (0, 100]", self.mr_percentile);
        }
        if self.checkpoint_every == 0 {
            bail!("checkpoint_every 0: must be at least 1");
        }
        if self.sigma_max.is_none() && self.sigma_max_subsample < 2 {
            bail!(
                "sigma_max_subsample {}: needs at least 2 slices",
                self.sigma_max_subsample
            );
        }
        crate::tensor::parse_device(&self.device).with_context(|| "device".to_string())?;
        self.model
            .ncsnpp(self.image_size)
            .validate()
            .context("model")?;
        Ok(())
    }

    /// Keys whose values differ between two configs (top level; `model` as a whole).
    pub fn differences(&self, other: &TrainConfig) -> Vec<String> {
        let (a, b) = (
            serde_yaml_ng::to_value(self).unwrap_or_default(),
            serde_yaml_ng::to_value(other).unwrap_or_default(),
        );
        let (Some(a), Some(b)) = (a.as_mapping(), b.as_mapping()) else {
            return vec![];
        };
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .filter_map(|(k, _)| k.as_str().map(String::from))
            .collect()
    }
}

/// Set `key` to `value`, merging a mapping into the existing sub-mapping key by key (so
/// `model: {nf: 8}` keeps the other model settings and an unknown nested key is named).
fn set_nested(
    root: &mut serde_yaml_ng::Value,
    key: &str,
    value: &serde_yaml_ng::Value,
) -> Result<()> {
    match value {
        serde_yaml_ng::Value::Mapping(m) => {
            for (k, v) in m {
                let sub = k
                    .as_str()
                    .with_context(|| format!("`{key}`: keys must be strings"))?;
                set_nested(root, &format!("{key}.{sub}"), v)?;
            }
            Ok(())
        }
        v => set_path(root, key, v.clone()),
    }
}

/// Set `key` (dotted for nested mappings) in `root`, refusing keys the config does not have.
fn set_path(root: &mut serde_yaml_ng::Value, key: &str, value: serde_yaml_ng::Value) -> Result<()> {
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let m = node
            .as_mapping_mut()
            .with_context(|| format!("`{key}`: `{}` has no sub-settings", parts[..i].join(".")))?;
        let k = serde_yaml_ng::Value::String(part.to_string());
        if !m.contains_key(&k) {
            let known: Vec<&str> = m.keys().filter_map(|k| k.as_str()).collect();
            bail!("unknown setting `{key}` (known: {})", known.join(", "));
        }
        if i + 1 == parts.len() {
            // A scalar where a list is expected means a list of one (`data: scans/`).
            let value = match (m.get(&k), value) {
                (
                    Some(serde_yaml_ng::Value::Sequence(_)),
                    v @ serde_yaml_ng::Value::Sequence(_),
                ) => v,
                (Some(serde_yaml_ng::Value::Sequence(_)), v) => {
                    serde_yaml_ng::Value::Sequence(vec![v])
                }
                // Optional numbers are null by default; any value may replace them.
                (_, v) => v,
            };
            m.insert(k, value);
            return Ok(());
        }
        node = m.get_mut(&k).expect("checked above");
    }
    Ok(())
}

/// The folder-independent paths of one run's outputs: `--out models/NAME` gives
/// `models/NAME.safetensors`, `NAME.json` (metadata sidecar), `NAME.loss.csv`, `NAME.loss.svg`,
/// `NAME.config.yaml` and the checkpoint folder `NAME.ckpt/`.
#[derive(Debug, Clone)]
pub struct OutputPaths {
    pub prefix: PathBuf,
}

impl OutputPaths {
    pub fn new(prefix: &Path) -> Self {
        OutputPaths {
            prefix: prefix.to_path_buf(),
        }
    }
    fn with(&self, suffix: &str) -> PathBuf {
        let mut s = self.prefix.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    }
    pub fn weights(&self) -> PathBuf {
        self.with(".safetensors")
    }
    pub fn metadata(&self) -> PathBuf {
        self.with(".json")
    }
    pub fn loss_csv(&self) -> PathBuf {
        self.with(".loss.csv")
    }
    pub fn loss_svg(&self) -> PathBuf {
        self.with(".loss.svg")
    }
    pub fn config(&self) -> PathBuf {
        self.with(".config.yaml")
    }
    /// Unconditional samples of the trained model (`--preview N`).
    pub fn samples(&self) -> PathBuf {
        self.with(".samples.png")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.with(".ckpt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> serde_yaml_ng::Mapping {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn overrides_apply_nested_and_scalars_become_lists() {
        let mut c =
            TrainConfig::from_yaml(&yaml("data: scans\nlr: 1.0e-3\nmodel:\n  nf: 8\n"), "t")
                .unwrap();
        assert_eq!(c.data, vec![PathBuf::from("scans")]);
        assert_eq!(c.lr, 1e-3);
        assert_eq!(c.model.nf, 8);
        assert_eq!(c.model.ch_mult, ModelConfig::default().ch_mult);
        c.apply_sets(&["model.nf=4".into(), "sigma_max=50".into(), "steps=7".into()])
            .unwrap();
        assert_eq!((c.model.nf, c.sigma_max, c.steps), (4, Some(50.0), 7));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = TrainConfig::from_yaml(&yaml("lrate: 1\n"), "cfg.yaml").unwrap_err();
        assert!(format!("{e:#}").contains("lrate"), "{e:#}");
        let e = TrainConfig::from_yaml(&yaml("model:\n  width: 3\n"), "cfg.yaml").unwrap_err();
        assert!(format!("{e:#}").contains("model.width"), "{e:#}");
        let mut c = TrainConfig {
            data: vec!["x".into()],
            device: "cpu".into(),
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        c.lr = -1e-4;
        let e = c.validate().unwrap_err();
        assert!(format!("{e:#}").contains("lr -0.0001"), "{e:#}");
        c.lr = 1e-4;
        c.sigma_max = Some(0.001);
        assert!(c.validate().is_err());
    }
}
