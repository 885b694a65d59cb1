//! `JobSpec`: everything one reconstruction job needs, typed, from the command line, a YAML config
//! (`--config`, `configs/*.yaml`) or a batch manifest. Precedence: built-in task defaults < config
//! file < explicit settings. Unknown keys, and keys of another task (`acceleration` for `ct`), are
//! errors, so a typo never silently falls back to a default; [`JobSpec::validate`] checks every
//! rule of every stage before any file is read or anything is computed.

use crate::classic::BaselineKind;
use crate::ops::mri::masks::{MaskKind, MaskSpec};
use crate::prior::PriorRef;
use crate::sampler::{SamplerKind, SamplerOptions};
use crate::tensor::DeviceChoice;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};
use std::path::{Path, PathBuf};

/// A setting that cannot work, found before any work: the command line's usage error (exit 2).
#[derive(Debug)]
pub struct InvalidSettings(pub String);

impl std::fmt::Display for InvalidSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidSettings {}

/// Return an [`InvalidSettings`] error from the enclosing function.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(InvalidSettings(format!($($arg)*)).into())
    };
}

/// Refuse unless `cond` holds.
macro_rules! require {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            refuse!($($arg)*);
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Sparse-view (or limited-angle) CT from a parallel-beam sinogram.
    Ct,
    /// Undersampled single-coil MRI from Cartesian k-space.
    Mri,
    /// Metal artifact removal: the metal trace of the sinogram is treated as missing.
    Mar,
}

/// Settings every task has (`config` names a task config inside a manifest entry).
const COMMON_KEYS: [&str; 25] = [
    "task",
    "config",
    "input",
    "series",
    "slices",
    "all_slices",
    "model",
    "sampler",
    "steps",
    "corrector_steps",
    "snr",
    "lambda",
    "dds_eta",
    "dds_cg_iterations",
    "dds_fresh",
    "dds_start_sigma",
    "samples",
    "seed",
    "device",
    "batch_size",
    "baselines",
    "tv_weight",
    "fit",
    "quiet",
    "anonymise",
];

/// The CT beam geometry's settings (`ct` and `mar`; a measurement file fixes them).
pub const BEAM_KEYS: [&str; 8] = [
    "geometry",
    "detector",
    "source_to_isocentre_mm",
    "source_to_detector_mm",
    "detector_spacing_mm",
    "detector_bins",
    "detector_offset",
    "scan",
];

impl Task {
    /// The settings of this task beyond the common ones and the beam's (`BEAM_KEYS`).
    pub fn own_keys(self) -> &'static [&'static str] {
        match self {
            Task::Ct => &[
                "views",
                "full_views",
                "limited_angle",
                "photons",
                "window",
                "rebin",
            ],
            Task::Mar => &[
                "full_views",
                "rebin",
                "photons",
                "metal_threshold",
                "insert_metal",
                "window",
            ],
            Task::Mri => &["acceleration", "center_fraction", "mask", "snr_db", "coils"],
        }
    }

    /// Whether `key` is a setting of this task.
    pub fn has_key(self, key: &str) -> bool {
        COMMON_KEYS.contains(&key)
            || self.own_keys().contains(&key)
            || (self != Task::Mri && BEAM_KEYS.contains(&key))
    }

    /// The shipped prior a job of this task uses unless told otherwise (models/*.md).
    pub fn default_prior(self) -> PriorRef {
        PriorRef::Shipped(
            match self {
                Task::Ct | Task::Mar => "ct_body_128",
                Task::Mri => "mri_head_128",
            }
            .into(),
        )
    }

    /// The baselines that make sense for the task's measurement.
    pub fn baselines(self) -> &'static [BaselineKind] {
        match self {
            Task::Ct => &[BaselineKind::Fbp, BaselineKind::FistaTv],
            Task::Mar => &[BaselineKind::Fbp, BaselineKind::FistaTv, BaselineKind::Li],
            Task::Mri => &[
                BaselineKind::ZeroFilled,
                BaselineKind::Rss,
                BaselineKind::Sense,
                BaselineKind::Tv,
            ],
        }
    }
}

crate::names::named!(Task, "task", { Ct => "ct", Mri => "mri", Mar => "mar" });

/// How an image whose size differs from the prior's is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Refuse it.
    #[default]
    Error,
    /// Centred zero-padding (smaller slices), cropped back afterwards.
    Pad,
    /// Average down by the smallest integer factor that fits, then pad; outputs on that grid.
    Resample,
}

crate::names::named!(Fit, "--fit", { Error => "error", Pad => "pad", Resample => "resample" });

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
    /// CT/MAR: parallel or fan beam; the `fan` settings below describe the scanner.
    pub geometry: crate::ops::ct::Beam,
    pub detector: crate::ops::ct::Detector,
    pub source_to_isocentre_mm: f64,
    pub source_to_detector_mm: f64,
    /// Bin pitch on the detector; None: one image pixel at the isocentre.
    pub detector_spacing_mm: Option<f64>,
    /// None: as many bins as cover the image.
    pub detector_bins: Option<usize>,
    /// Detector shift in bins (a quarter-detector offset is 0.25).
    pub detector_offset: f64,
    pub scan: crate::ops::ct::Scan,
    /// CT/MAR: rebin fan-beam data to parallel beam (`fan::rebin_to_parallel_masked`) and
    /// reconstruct with the parallel-beam operator.
    pub rebin: bool,

    // MRI
    pub acceleration: Vec<f64>,
    pub center_fraction: f64,
    pub mask: MaskKind,
    /// Complex Gaussian noise on simulated k-space, as SNR in dB (None: noise-free).
    pub snr_db: Option<f64>,
    /// Receive coils of the simulated scanner (1: single-coil, the FFT operator; more: the
    /// multi-coil SENSE operator with maps estimated from the calibration region).
    pub coils: usize,

    // MAR
    pub metal_threshold: f64,
    /// Insert simulated metal into the (metal-free) input and simulate a polychromatic scan.
    pub insert_metal: bool,
    /// CT/MAR: the report's display window (`auto` = soft tissue; `brain` for head CT).
    pub window: crate::io::WindowPreset,

    // Prior and sampler
    /// A shipped prior by name, a `.safetensors` or TorchScript file, or `knn:FOLDER`; the
    /// task's default prior unless set.
    pub model: Option<PriorRef>,
    pub sampler: SamplerKind,
    pub steps: usize,
    pub corrector_steps: usize,
    pub snr: f64,
    pub lambda: f64,
    /// DDS: DDIM stochasticity of the re-noise, 0 (deterministic) to 1 (ancestral).
    pub dds_eta: f64,
    /// DDS: conjugate-gradient iterations of the data step per level.
    pub dds_cg_iterations: usize,
    /// DDS: share of the re-noise drawn fresh, 0 (DDIM's eta rule) to 1 (all fresh).
    pub dds_fresh: f64,
    /// DDS: first noise level of the warm start (model units); 0: pure noise at sigma_max.
    pub dds_start_sigma: f64,
    /// Posterior samples per slice; more than one gives a mean and a per-pixel std map.
    pub samples: usize,
    pub seed: u64,
    pub device: DeviceChoice,
    /// Slices (times samples) sampled together on the device.
    pub batch_size: usize,
    /// Classical baselines to run next to the score-based reconstruction.
    pub baselines: Vec<BaselineKind>,
    /// TV weight of fista_tv / tv relative to `||A||^2 * data range`; None: tuned on a
    /// validation slice of the input (maximum SSIM), see docs/baselines.md.
    pub tv_weight: Option<f64>,
    pub fit: Fit,
    pub quiet: bool,
    /// Leave patient tags out of derived DICOM and input paths out of metrics.json and the
    /// reports (docs/user-guide.md, "Anonymised outputs").
    #[serde(default)]
    pub anonymise: bool,
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
            geometry: crate::ops::ct::Beam::Parallel,
            detector: crate::ops::ct::Detector::Curved,
            source_to_isocentre_mm: crate::ops::ct::geometry::DEFAULT_SOURCE_TO_ISOCENTRE_MM,
            source_to_detector_mm: crate::ops::ct::geometry::DEFAULT_SOURCE_TO_DETECTOR_MM,
            detector_spacing_mm: None,
            detector_bins: None,
            detector_offset: 0.0,
            scan: crate::ops::ct::Scan::Full,
            rebin: false,
            acceleration: vec![4.0],
            center_fraction: 0.08,
            mask: MaskKind::Equispaced,
            snr_db: None,
            coils: 1,
            metal_threshold: crate::ops::ct::metal::DEFAULT_METAL_THRESHOLD_HU,
            insert_metal: false,
            window: crate::io::WindowPreset::Auto,
            model: None,
            sampler: SamplerKind::Pc,
            steps: 200,
            corrector_steps: 1,
            snr: 0.246,
            lambda: 0.841,
            dds_eta: SamplerOptions::default().dds_eta,
            dds_cg_iterations: SamplerOptions::default().dds_cg_iterations,
            dds_fresh: SamplerOptions::default().dds_fresh,
            dds_start_sigma: SamplerOptions::default().dds_start_sigma,
            samples: 1,
            seed: 0,
            device: DeviceChoice::Auto,
            batch_size: 8,
            baselines: vec![],
            tv_weight: None,
            fit: Fit::Error,
            quiet: false,
            anonymise: false,
        }
    }
}

/// A YAML settings file as a mapping; a file that is not one is a usage error.
pub fn read_yaml_mapping(path: &Path, what: &str) -> Result<Mapping> {
    crate::io::yaml::read_mapping(path, what).map_err(|e| InvalidSettings(format!("{e:#}")).into())
}

impl JobSpec {
    /// The fan-beam scanner of a `--geometry fan` job; None for parallel beam.
    pub fn fan_spec(&self) -> Option<crate::ops::ct::FanSpec> {
        (self.geometry == crate::ops::ct::Beam::Fan).then_some(crate::ops::ct::FanSpec {
            source_to_isocentre_mm: self.source_to_isocentre_mm,
            source_to_detector_mm: self.source_to_detector_mm,
            detector: self.detector,
            detector_spacing_mm: self.detector_spacing_mm,
            n_det: self.detector_bins,
            detector_offset: self.detector_offset,
            scan: self.scan,
        })
    }

    /// The paper's tuned values per task (method.md, "Tuned hyper-parameters"), the task's
    /// baselines and its default prior.
    pub fn for_task(task: Task) -> Self {
        let mut s = JobSpec {
            task,
            model: Some(task.default_prior()),
            ..Default::default()
        };
        match task {
            Task::Ct => {
                s.snr = 0.246;
                s.lambda = 0.841;
                s.baselines = vec![BaselineKind::Fbp, BaselineKind::FistaTv];
            }
            Task::Mar => {
                s.snr = 0.209;
                s.lambda = 0.227;
                // DDS: fresh re-noise beat the DDIM rule on the MAR tuning slice (CT_small with
                // inserted metal, +0.9 dB; docs/sampling.md, "Warm start and fresh noise").
                s.dds_fresh = 1.0;
                s.baselines = vec![BaselineKind::Fbp, BaselineKind::Li];
            }
            Task::Mri => {
                s.snr = 0.577;
                s.lambda = 0.982;
                // DDS re-noises with fresh noise: the hard k-space replacement leaves the
                // network's noise estimate carrying the aliasing of the data step forward
                // (docs/sampling.md, "Warm start and fresh noise").
                s.dds_fresh = 1.0;
                s.baselines = vec![BaselineKind::ZeroFilled, BaselineKind::Tv];
            }
        }
        s
    }

    /// Task defaults, then `overrides` (a YAML mapping: a config file or a manifest entry), key by
    /// key. `config: FILE` (a manifest entry naming a task config) puts the file's settings under
    /// the entry's own keys.
    pub fn from_yaml(task: Option<Task>, overrides: &Mapping, origin: &str) -> Result<Self> {
        let expanded;
        let overrides = match overrides.get("config") {
            Some(v) => {
                let Some(path) = v.as_str() else {
                    refuse!("{origin}: `config` must be a file path");
                };
                let mut merged = read_yaml_mapping(Path::new(path), "config")
                    .with_context(|| format!("{origin}: config {path}"))?;
                require!(
                    !merged.contains_key("config"),
                    "{origin}: {path}: a config cannot name another config"
                );
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
            (None, Some(v)) => match v.as_str().map(str::parse::<Task>) {
                Some(Ok(t)) => t,
                _ => refuse!("{origin}: `task` must be ct, mri or mar"),
            },
            (None, None) => refuse!("{origin}: no `task` given (ct, mri or mar)"),
        };
        let mut base = serde_yaml_ng::to_value(Self::for_task(task))?;
        let Value::Mapping(m) = &mut base else {
            unreachable!("a JobSpec serialises to a mapping")
        };
        for (k, v) in overrides {
            let key = k.as_str().unwrap_or_default();
            if key == "task" && v.as_str() != Some(task.name()) {
                refuse!(
                    "{origin}: `task: {}` contradicts the `{}` command",
                    v.as_str().unwrap_or("?"),
                    task.name()
                );
            }
            if m.contains_key(key) && !task.has_key(key) {
                let owner = [Task::Ct, Task::Mar, Task::Mri]
                    .into_iter()
                    .filter(|t| t.has_key(key))
                    .map(Task::name)
                    .collect::<Vec<_>>()
                    .join("/");
                refuse!(
                    "{origin}: `{key}` is a {owner} setting; the {} task does not use it",
                    task.name()
                );
            }
            // Scalars are accepted where lists are expected (`views: 23` = `views: [23]`).
            let v = match (m.get(k), v) {
                (Some(Value::Sequence(_)), Value::Sequence(_)) => v.clone(),
                (Some(Value::Sequence(_)), scalar) => Value::Sequence(vec![scalar.clone()]),
                _ => v.clone(),
            };
            m.insert(k.clone(), v);
        }
        match serde_yaml_ng::from_value::<JobSpec>(base.clone()) {
            Ok(mut spec) => {
                // Multi-coil MRI (simulated coils or raw k-space) compares against the coil
                // baselines unless the user chose: zero-filled RSS, SENSE and TV with coils.
                if task == Task::Mri
                    && !overrides.contains_key("baselines")
                    && (spec.coils > 1 || crate::io::kspace::is_kspace_file(&spec.input))
                {
                    spec.baselines = vec![BaselineKind::Rss, BaselineKind::Sense, BaselineKind::Tv];
                }
                Ok(spec)
            }
            Err(e) => {
                // serde names the type but not the key: find the key whose value does not fit.
                let defaults = serde_yaml_ng::to_value(Self::for_task(task))?;
                let culprit = base.as_mapping().into_iter().flatten().find(|(k, v)| {
                    let mut one = defaults.clone();
                    if let Value::Mapping(d) = &mut one {
                        d.insert((*k).clone(), (*v).clone());
                    }
                    serde_yaml_ng::from_value::<JobSpec>(one).is_err()
                });
                match culprit {
                    Some((k, v)) => refuse!(
                        "{origin}: `{}: {}`: {}; see docs/user-guide.md for the key's values",
                        k.as_str().unwrap_or("?"),
                        serde_yaml_ng::to_string(v).unwrap_or_default().trim(),
                        // Rust's type names mean nothing to a user.
                        e.to_string()
                            .replace("expected usize", "expected a whole number >= 0")
                            .replace("expected u64", "expected a whole number >= 0")
                            .replace("expected f64", "expected a number")
                    ),
                    None => refuse!("{origin}: invalid settings: {e}"),
                }
            }
        }
    }

    /// Read a YAML config file on top of the task defaults.
    pub fn from_config_file(task: Option<Task>, path: &Path) -> Result<Self> {
        let m = read_yaml_mapping(path, "config")?;
        Self::from_yaml(task, &m, &path.display().to_string())
    }

    /// The sampler's options for this job (`noise_free`: the measurement is exact).
    pub fn sampler_options(&self, noise_free: bool) -> SamplerOptions {
        SamplerOptions {
            sampler: self.sampler,
            steps: self.steps,
            corrector_steps: self.corrector_steps,
            snr: self.snr,
            lambda: self.lambda,
            dds_eta: self.dds_eta,
            dds_cg_iterations: self.dds_cg_iterations,
            dds_fresh: self.dds_fresh,
            dds_start_sigma: self.dds_start_sigma,
            seed: self.seed,
            samples: self.samples,
            batch: self.batch_size,
            noise_free_measurement: noise_free,
            progress: !self.quiet,
            ..Default::default()
        }
    }

    /// The MRI mask of one acceleration of the sweep.
    pub fn mask_spec(&self, acceleration: f64) -> MaskSpec {
        MaskSpec {
            kind: self.mask,
            acceleration,
            center_fraction: self.center_fraction,
            seed: self.seed,
        }
    }

    /// The settings of this task only, for `metrics.json` and reports.
    pub fn settings_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a JobSpec serialises");
        if let serde_json::Value::Object(m) = &mut v {
            m.retain(|k, _| self.task.has_key(k));
        }
        v
    }

    /// Every rule of every stage that needs no file: checked before any work starts, so a bad
    /// setting costs nothing and leaves nothing behind.
    pub fn validate(&self) -> Result<()> {
        require!(
            !self.input.as_os_str().is_empty(),
            "no input given (--input PATH)"
        );
        require!(
            self.input.exists(),
            "{}: no such file or folder",
            self.input.display()
        );
        require!(
            (0.0..=1.0).contains(&self.lambda),
            "--lambda {}: must lie in [0, 1] (0 ignores the measurement, 1 enforces it exactly)",
            self.lambda
        );
        require!(
            self.snr.is_finite() && self.snr > 0.0,
            "--snr {}: must be a positive number",
            self.snr
        );
        require!(
            self.samples >= 1,
            "--samples 0: at least one posterior sample is needed"
        );
        require!(self.batch_size >= 1, "--batch-size 0: must be at least 1");
        if let Err(e) = self.sampler_options(true).validate() {
            refuse!(
                "--sampler {} --steps {}: {e:#}",
                self.sampler.name(),
                self.steps
            );
        }
        if let Some(k) = (1..self.slices.len())
            .map(|i| self.slices[i])
            .find(|k| self.slices.iter().filter(|s| *s == k).count() > 1)
        {
            refuse!(
                "--slice {k} is given twice ({:?}): each slice is reconstructed once",
                self.slices
            );
        }
        if let Some(w) = self.tv_weight {
            require!(
                w.is_finite() && w >= 0.0,
                "--tv-weight {w}: must be a number >= 0 (relative to ||A||^2 x data range)"
            );
        }
        for b in &self.baselines {
            require!(
                self.task.baselines().contains(b),
                "--baselines {}: not a {} baseline (expected {})",
                b.name(),
                self.task.name(),
                self.task
                    .baselines()
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        // Typed counts against the memory they need, at the smallest prior grid (64 x 64): what
        // no machine holds is refused now, with the number, not as an abort in the allocator.
        let side = 64.0f64;
        if let Err(e) = crate::limits::check_memory(
            &format!(
                "--samples {} x --batch-size {}",
                self.samples, self.batch_size
            ),
            self.samples as f64 * self.batch_size as f64 * side * side * 4.0 * 8.0,
        ) {
            refuse!("{e:#}");
        }
        match self.task {
            Task::Ct | Task::Mar => {
                require!(
                    self.full_views >= 1,
                    "--full-views 0: the full angle set needs at least one view"
                );
                if let Err(e) = crate::limits::check_memory(
                    &format!("--full-views {}", self.full_views),
                    self.full_views as f64 * (side * std::f64::consts::SQRT_2).ceil() * 4.0 * 16.0,
                ) {
                    refuse!("{e:#}");
                }
                if let Some(p) = self.photons {
                    require!(
                        p.is_finite() && p >= 1.0,
                        "--photons {p}: the incident photon count must be at least 1"
                    );
                }
                // A measurement file's beam comes from the file (`pipeline::check_flags`).
                let measurement_file = self.input.extension().is_some_and(|e| e == "json");
                require!(
                    !self.rebin || self.geometry == crate::ops::ct::Beam::Fan || measurement_file,
                    "--rebin turns fan-beam data into parallel beam; this job is parallel beam (give --geometry fan, or leave --rebin out)"
                );
                if self.geometry == crate::ops::ct::Beam::Fan {
                    let pos = |v: f64| v.is_finite() && v > 0.0;
                    require!(
                        pos(self.source_to_isocentre_mm),
                        "--source-to-isocentre-mm {}: must be a positive distance",
                        self.source_to_isocentre_mm
                    );
                    require!(
                        pos(self.source_to_detector_mm)
                            && self.source_to_detector_mm > self.source_to_isocentre_mm,
                        "--source-to-detector-mm {}: must exceed --source-to-isocentre-mm {}",
                        self.source_to_detector_mm,
                        self.source_to_isocentre_mm
                    );
                    if let Some(d) = self.detector_spacing_mm {
                        require!(pos(d), "--detector-spacing-mm {d}: must be positive");
                    }
                    if let Some(b) = self.detector_bins {
                        require!(b >= 2, "--detector-bins {b}: need at least 2");
                    }
                    require!(
                        self.detector_offset.is_finite(),
                        "--detector-offset {}: not a number",
                        self.detector_offset
                    );
                }
            }
            Task::Mri => {}
        }
        match self.task {
            Task::Ct => {
                require!(!self.views.is_empty(), "--views: give at least one count");
                for &v in &self.views {
                    require!(
                        v >= 1 && v <= self.full_views,
                        "--views {v}: must lie in 1..={} (the full angle set)",
                        self.full_views
                    );
                }
                if let Some(w) = self.limited_angle {
                    // Parallel beam repeats itself after 180 degrees; a fan-beam scan covers its
                    // arc (360, or 180 plus the fan angle: that bound is checked with the
                    // geometry, `geometry::limited_angle_rows_over`).
                    let (arc, beam) = match self.geometry {
                        crate::ops::ct::Beam::Parallel => (180.0, "parallel beam"),
                        crate::ops::ct::Beam::Fan => (360.0, "a fan-beam scan"),
                    };
                    require!(
                        w.is_finite() && w > 0.0 && w <= arc,
                        "--limited-angle {w}: the wedge must be in (0, {arc}] degrees for {beam}{}",
                        if arc < 360.0 {
                            " (fan beam, --geometry fan, allows up to its scan's arc: 360 for a full scan, 180 plus the fan angle for a short one)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Task::Mar => {
                require!(
                    self.metal_threshold.is_finite(),
                    "--metal-threshold {}: not a number",
                    self.metal_threshold
                );
                // Metal lies above bone (~2000 HU); no CT value, extended scale included, lies
                // outside (0, 65535] HU, so such a threshold could only fail after the work.
                require!(
                    self.metal_threshold > 0.0 && self.metal_threshold <= 65535.0,
                    "--metal-threshold {}: no CT value can reach it; give a threshold in HU in (0, 65535], above bone (e.g. 3000)",
                    self.metal_threshold
                );
            }
            Task::Mri => {
                require!(
                    !self.acceleration.is_empty(),
                    "--acceleration: give at least one factor"
                );
                for &r in &self.acceleration {
                    if let Err(e) = self.mask_spec(r).validate() {
                        refuse!(
                            "--acceleration {r} / --center-fraction {}: {e:#}",
                            self.center_fraction
                        );
                    }
                }
                if let Some(s) = self.snr_db {
                    require!(
                        s.is_finite(),
                        "--snr-db {s}: must be a finite number of decibels"
                    );
                }
                require!(
                    (1..=64).contains(&self.coils),
                    "--coils {}: give 1 (single-coil) to 64 receive coils",
                    self.coils
                );
            }
        }
        Ok(())
    }
}

/// Where a job writes: `--out DIR`.
pub fn default_out(task: Task) -> PathBuf {
    PathBuf::from(format!("out/{}", task.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Mapping {
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
    fn dds_re_noise_and_warm_start_per_task_and_checked() {
        let fresh = |t| JobSpec::for_task(t).sampler_options(true).dds_fresh;
        assert_eq!(
            (fresh(Task::Ct), fresh(Task::Mri), fresh(Task::Mar)),
            (0.0, 1.0, 1.0)
        );
        let s = JobSpec::from_yaml(
            Some(Task::Ct),
            &yaml("sampler: dds\nsteps: 25\ndds_fresh: 0.5\ndds_start_sigma: 2\n"),
            "t",
        )
        .unwrap();
        let o = s.sampler_options(true);
        assert_eq!((o.dds_fresh, o.dds_start_sigma), (0.5, 2.0));
        for bad in ["dds_fresh: 1.5", "dds_fresh: -0.1", "dds_start_sigma: -1"] {
            let spec = JobSpec::from_yaml(Some(Task::Mri), &yaml(bad), "t").unwrap();
            let err = spec
                .sampler_options(true)
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains("dds_fresh in [0, 1]"), "{bad}: {err}");
        }
    }

    #[test]
    fn overrides_apply_and_scalars_become_lists() {
        let s = JobSpec::from_yaml(Some(Task::Ct), &yaml("views: 10\nsteps: 50\n"), "t").unwrap();
        assert_eq!(s.views, vec![10]);
        assert_eq!(s.steps, 50);
        assert_eq!(s.lambda, 0.841);
        let s = JobSpec::from_yaml(
            Some(Task::Mri),
            &yaml("sampler: score-sde\nmask: equispaced_fraction\nbaselines: [zero-filled]\n"),
            "t",
        )
        .unwrap();
        assert_eq!(s.sampler, SamplerKind::ScoreSde);
        assert_eq!(s.mask, MaskKind::EquispacedFraction);
        assert_eq!(s.baselines, vec![BaselineKind::ZeroFilled]);
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
    fn unknown_keys_foreign_keys_and_contradictions_are_errors() {
        let e = JobSpec::from_yaml(Some(Task::Ct), &yaml("veiws: 10\n"), "cfg.yaml").unwrap_err();
        assert!(format!("{e:#}").contains("veiws"), "{e:#}");
        assert!(JobSpec::from_yaml(Some(Task::Ct), &yaml("task: mri\n"), "cfg.yaml").is_err());
        assert!(JobSpec::from_yaml(None, &yaml("steps: 3\n"), "cfg.yaml").is_err());
        let e = JobSpec::from_yaml(Some(Task::Ct), &yaml("acceleration: 8\n"), "c").unwrap_err();
        assert!(e.downcast_ref::<InvalidSettings>().is_some());
        assert!(
            format!("{e}").contains("`acceleration` is a mri setting"),
            "{e}"
        );
        let e = JobSpec::from_yaml(Some(Task::Mri), &yaml("photons: 1e5\n"), "c").unwrap_err();
        assert!(format!("{e}").contains("ct/mar setting"), "{e}");
        let e = JobSpec::from_yaml(Some(Task::Ct), &yaml("sampler: nonsense\n"), "c").unwrap_err();
        assert!(format!("{e}").contains("nonsense"), "{e}");
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
        s.views = vec![23];
        // The sampler's own rules are checked here too, before any work.
        s.steps = 1;
        let e = s.validate().unwrap_err();
        assert!(e.downcast_ref::<InvalidSettings>().is_some());
        assert!(format!("{e}").contains("steps"), "{e}");
        s.steps = 200;
        s.lambda = 2.0;
        assert!(s.validate().is_err());
        s.lambda = 0.5;
        s.baselines = vec![BaselineKind::Tv];
        assert!(s.validate().is_err());
        let mut m = JobSpec::for_task(Task::Mri);
        m.input = std::env::temp_dir();
        m.acceleration = vec![0.5];
        assert!(m.validate().is_err());
        m.acceleration = vec![4.0];
        m.center_fraction = 1.5;
        assert!(m.validate().is_err());
        // The centre alone may not exceed the 1/R budget.
        m.center_fraction = 0.3;
        assert!(m.validate().is_err());
    }

    #[test]
    fn metrics_record_the_tasks_own_settings() {
        let s = JobSpec::for_task(Task::Ct).settings_json();
        assert!(s.get("views").is_some() && s.get("sampler").is_some());
        assert!(s.get("acceleration").is_none() && s.get("metal_threshold").is_none());
        assert_eq!(s["sampler"], "pc");
        assert_eq!(s["baselines"], serde_json::json!(["fbp", "fista_tv"]));
    }
}
