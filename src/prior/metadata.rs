//! The metadata sidecar of a score model: `model.json` next to `model.safetensors` (or
//! `model.pt`). Everything a sampler needs to know about a model that the weights do not say:
//! the architecture, the SDE it was trained for, the image size and channels, and the map from
//! HU / MR intensity to model space. Written by the training code, read by [`super::load_prior`].
//! The format is documented in docs/models.md; `format_version` guards future changes.

use super::ncsnpp_config::NcsnppConfig;
use super::normalisation::Normalisation;
use crate::sde::VeSde;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The sidecar format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// The NCSN++ network of `ncsnpp.rs`; weights in safetensors under the names it creates.
    Ncsnpp(NcsnppConfig),
    /// A TorchScript module following the convention of docs/models.md.
    Torchscript,
}

impl Architecture {
    /// The sidecar's `kind`, for messages (the whole configuration would be a page of it).
    pub fn kind(&self) -> &'static str {
        match self {
            Architecture::Ncsnpp(_) => "ncsnpp",
            Architecture::Torchscript => "torchscript",
        }
    }
}

/// Where the training data came from (free text plus counts; for reports and provenance).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// e.g. "cranium head CT, slices 10-100" or "MNI152 T1 axial slices".
    pub dataset: String,
    pub modality: String,
    pub n_images: usize,
    #[serde(default)]
    pub iterations: usize,
    #[serde(default)]
    pub ema_rate: Option<f64>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorMetadata {
    pub format_version: u32,
    pub architecture: Architecture,
    /// The VE SDE the model was trained for (its noise range).
    pub sde: VeSde,
    /// `[H, W]` the model expects.
    pub image_size: [i64; 2],
    pub channels: i64,
    pub normalisation: Normalisation,
    /// In-plane pixel size (mm) of the training slices, which were put in RAS+ axis order
    /// (`regrid.rs`); `--fit resample` brings a scan to it. Absent: slices as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_mm: Option<f64>,
    #[serde(default)]
    pub training: Option<TrainingSummary>,
    /// The prior-fit statistic over the validation images (`prior::fit`); absent until the
    /// model is calibrated (`scorerecon train` does it on its held-out images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_fit: Option<super::fit::FitRange>,
}

impl PriorMetadata {
    /// The sidecar path for a weights file: same stem, `.json`.
    pub fn sidecar_path(weights: &Path) -> PathBuf {
        weights.with_extension("json")
    }

    pub fn validate(&self) -> Result<()> {
        if self.format_version != FORMAT_VERSION {
            bail!(
                "metadata format_version {} is not supported by this build (expected {FORMAT_VERSION})",
                self.format_version
            );
        }
        VeSde::new(self.sde.sigma_min, self.sde.sigma_max).context("metadata sde")?;
        if self.image_size.iter().any(|s| *s < 1) || self.channels < 1 {
            bail!(
                "metadata: image_size {:?} and channels {} must be positive",
                self.image_size,
                self.channels
            );
        }
        self.normalisation.validate()?;
        if let Some(p) = self.pixel_mm {
            if !(p > 0.0 && p.is_finite()) {
                bail!("metadata: pixel_mm {p} must be a positive number");
            }
        }
        if let Architecture::Ncsnpp(cfg) = &self.architecture {
            if cfg.image_size != self.image_size[0] || self.image_size[0] != self.image_size[1] {
                bail!(
                    "metadata: NCSN++ config image_size {} does not match image_size {:?} \
                     (NCSN++ models are square)",
                    cfg.image_size,
                    self.image_size
                );
            }
            if cfg.channels != self.channels {
                bail!(
                    "metadata: NCSN++ config channels {} does not match channels {}",
                    cfg.channels,
                    self.channels
                );
            }
        }
        Ok(())
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "{}: cannot read the model's metadata sidecar (every weights file needs a JSON \
                 sidecar with the same name; see docs/models.md)",
                path.display()
            )
        })?;
        let meta: PriorMetadata = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid metadata sidecar", path.display()))?;
        meta.validate()
            .with_context(|| format!("{}: invalid metadata", path.display()))?;
        Ok(meta)
    }

    /// Write atomically (refusing to overwrite unless `force`).
    pub fn write(&self, path: &Path, force: bool) -> Result<()> {
        self.validate()?;
        let text = serde_json::to_string_pretty(self)?;
        crate::io::atomic::write_file(path, force, |tmp| {
            std::fs::write(tmp, text.as_bytes())
                .with_context(|| format!("{}: cannot write metadata", path.display()))
        })
    }
}
