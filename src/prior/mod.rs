//! Score priors: `s(x, sigma) ~ grad_x log p_sigma(x)` for the VE perturbation
//! `p_sigma = p_data * N(0, sigma^2 I)` (method.md). One trait, four implementations:
//!
//! - [`ncsnpp::NcsnppPrior`]: the NCSN++ network, weights in safetensors + JSON sidecar;
//! - [`torchscript::TorchScriptPrior`]: any network scripted with `torch.jit` (docs/models.md);
//! - [`nearest::NearestNeighbourPrior`]: the training-free empirical score over a reference set
//!   (exact, or the KNN estimator of paper 000);
//! - [`gaussian::GaussianPrior`]: `N(mu, s^2 I)`, whose score is exact (closed-form checks).
//!
//! [`load_prior`] picks one from a name or path.

pub mod fit;
pub mod gaussian;
pub mod layers;
pub mod metadata;
pub mod ncsnpp;
pub mod ncsnpp_config;
pub mod nearest;
pub mod normalisation;
pub mod torchscript;

pub use normalisation::{Normalisation, Scaling};

use crate::sde::VeSde;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// A score model in model space (see [`Normalisation`]).
///
/// `score` returns `Result` (the lead's sketch had a bare `Tensor`): a TorchScript module or a
/// reference set can fail at run time (wrong output shape, device mismatch), and the sampler
/// must turn that into a one-line error rather than a panic.
pub trait ScoreModel: Send {
    /// `x`: `[B, C, H, W]` f32 on [`ScoreModel::device`]; `sigma`: `[B]` noise levels.
    /// Returns the score, same shape as `x`, on the same device.
    fn score(&self, x: &Tensor, sigma: &Tensor) -> Result<Tensor>;
    /// `[H, W]` the model works at.
    fn image_size(&self) -> [i64; 2];
    fn channels(&self) -> i64;
    /// The VE SDE (noise range) the model was built for.
    fn sde(&self) -> VeSde;
    fn sigma_min(&self) -> f64 {
        self.sde().sigma_min
    }
    fn sigma_max(&self) -> f64 {
        self.sde().sigma_max
    }
    /// How scanner values map to model space and back.
    fn normalisation(&self) -> &Normalisation;
    fn device(&self) -> Device;
    /// Reset any random state the estimator itself draws from (the KNN estimator), so that a
    /// sampler run with a given seed is reproducible; deterministic models ignore it.
    fn reseed(&self, _seed: u64) {}
    /// One line for logs and reports.
    fn describe(&self) -> String;
    /// For priors built from reference images (which can memorise them): each image of `x`
    /// (`[B, C, H, W]`, model space)'s relative distance `||x - x_i|| / ||x_i||` to its nearest
    /// reference `x_i`. None for trained models.
    fn nearest_reference_distance(&self, _x: &Tensor) -> Result<Option<Vec<f64>>> {
        Ok(None)
    }
    /// The prior-fit statistic's range over the model's validation images (`prior::fit`), when
    /// the model was calibrated.
    fn fit_range(&self) -> Option<&fit::FitRange> {
        None
    }
    /// In-plane pixel size (mm) of the grid the model learnt, with slices in RAS+ axis order,
    /// when its training recorded one (`regrid.rs`).
    fn pixel_mm(&self) -> Option<f64> {
        None
    }
}

/// Folders searched for a shipped model name, in order: `$SCORERECON_MODELS`, `./models`,
/// `models/` next to the executable and two levels up (a cargo `target/release` binary), and
/// the source tree's `models/`.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SCORERECON_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("models"));
    if let Ok(exe) = std::env::current_exe() {
        if let Some(d) = exe.parent() {
            dirs.push(d.join("models"));
            if let Some(up) = d.parent().and_then(|p| p.parent()) {
                dirs.push(up.join("models"));
            }
        }
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs
}

/// Which prior a job uses, as the user names it (`--model`, `model:`):
///
/// - `knn:FOLDER` / `empirical:FOLDER`: the nearest-neighbour prior over the images in FOLDER
///   (KNN estimator / exact empirical score);
/// - `PATH.safetensors`: NCSN++ weights with the sidecar `PATH.json`;
/// - `PATH.pt`: a TorchScript module with the sidecar `PATH.json`;
/// - `NAME`: a shipped model, `NAME.safetensors` or `NAME.pt` in one of [`model_dirs`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum PriorRef {
    Shipped(String),
    File(PathBuf),
    Nearest { folder: PathBuf, exact: bool },
}

impl PriorRef {
    /// Whether the prior is the nearest-neighbour one (which can memorise its references).
    pub fn is_nearest(&self) -> bool {
        matches!(self, PriorRef::Nearest { .. })
    }

    /// Load the prior onto `device`.
    pub fn load(&self, device: Device) -> Result<Box<dyn ScoreModel>> {
        match self {
            PriorRef::Nearest { folder, exact } => {
                let estimator = if *exact {
                    nearest::Estimator::Exact
                } else {
                    nearest::Estimator::default_knn()
                };
                Ok(Box::new(nearest::NearestNeighbourPrior::from_folder(
                    folder, estimator, device,
                )?))
            }
            PriorRef::File(path) => {
                let name = path.display();
                match path.extension().and_then(|e| e.to_str()) {
                    Some("safetensors") => Ok(Box::new(
                        ncsnpp::NcsnppPrior::load(path, device)
                            .with_context(|| format!("prior {name}"))?,
                    )),
                    _ => Ok(Box::new(
                        torchscript::TorchScriptPrior::load(path, device)
                            .with_context(|| format!("prior {name}"))?,
                    )),
                }
            }
            PriorRef::Shipped(name) => PriorRef::File(find_shipped(name)?).load(device),
        }
    }
}

impl std::str::FromStr for PriorRef {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(folder) = s.strip_prefix("knn:") {
            return Ok(PriorRef::Nearest {
                folder: folder.into(),
                exact: false,
            });
        }
        if let Some(folder) = s.strip_prefix("empirical:") {
            return Ok(PriorRef::Nearest {
                folder: folder.into(),
                exact: true,
            });
        }
        let path = Path::new(s);
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("safetensors" | "pt" | "pth")
        ) {
            return Ok(PriorRef::File(path.to_path_buf()));
        }
        if s.is_empty() || s.contains('/') || s.contains('\\') {
            bail!(
                "prior {s:?}: expected a .safetensors or .pt file, knn:FOLDER, empirical:FOLDER, \
                 or the name of a shipped model"
            );
        }
        Ok(PriorRef::Shipped(s.to_string()))
    }
}

impl std::fmt::Display for PriorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PriorRef::Shipped(name) => f.write_str(name),
            PriorRef::File(path) => write!(f, "{}", path.display()),
            PriorRef::Nearest { folder, exact } => {
                let prefix = if *exact { "empirical" } else { "knn" };
                write!(f, "{prefix}:{}", folder.display())
            }
        }
    }
}

impl From<PriorRef> for String {
    fn from(r: PriorRef) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for PriorRef {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

/// Resolve and load a prior named as [`PriorRef`] reads it.
pub fn load_prior(name_or_path: &str, device: Device) -> Result<Box<dyn ScoreModel>> {
    name_or_path.parse::<PriorRef>()?.load(device)
}

/// The file of a shipped model: `NAME.safetensors` or `NAME.pt` in one of [`model_dirs`].
pub fn find_shipped(name_or_path: &str) -> Result<PathBuf> {
    let dirs = model_dirs();
    for d in &dirs {
        for ext in ["safetensors", "pt"] {
            let candidate = d.join(format!("{name_or_path}.{ext}"));
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let mut known: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            match p.extension().and_then(|x| x.to_str()) {
                Some("safetensors") | Some("pt") => {
                    p.file_stem().map(|s| s.to_string_lossy().into_owned())
                }
                _ => None,
            }
        })
        .collect();
    known.sort();
    known.dedup();
    bail!(
        "prior {name_or_path}: no such model in {} (shipped models: {}); pass a .safetensors \
         or .pt path, or knn:FOLDER for the training-free prior",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}
