//! `scorerecon ct | mri | mar`: each task's own options (a shared group flattened into each), one
//! pipeline (`crate::pipeline`). Every setting is optional here so that a config file (`--config`)
//! and the task's defaults fill the rest: defaults < config file < flags. A flag of another task
//! is not an option of this command (clap refuses it). The defaults shown in `--help` are read off
//! `JobSpec::for_task` (`cli::command`).

use crate::classic::BaselineKind;
use crate::io::WindowPreset;
use crate::job::{read_yaml_mapping, Fit, InvalidSettings, JobSpec, Task};
use crate::ops::mri::masks::MaskKind;
use crate::pipeline::{self, GivenFlags};
use crate::prior::PriorRef;
use crate::sampler::SamplerKind;
use crate::tensor::DeviceChoice;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};
use std::path::PathBuf;

/// Options of every reconstruction task.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
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
    /// Prior: a shipped name (models/), a .safetensors or TorchScript file, or knn:FOLDER.
    #[arg(long)]
    pub model: Option<PriorRef>,
    /// Posterior sampler (docs/sampling.md).
    #[arg(long, value_parser = crate::cli::named::<SamplerKind>())]
    pub sampler: Option<SamplerKind>,
    /// Noise levels N of the sampler (each a predictor step; score evaluations add corrector
    /// steps); at least 40 for pc, 200 for ode, 5 for dds (SamplerKind::min_steps).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Langevin corrector steps per noise level (pc, ald, langevin, score-sde).
    #[arg(long)]
    pub corrector_steps: Option<usize>,
    /// Langevin corrector signal-to-noise ratio (the paper's eta).
    #[arg(long)]
    pub snr: Option<f64>,
    /// Weight of the measurement in the proximal step (0 = ignore, 1 = enforce).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// DDS: DDIM stochasticity of the re-noise, 0 (deterministic) to 1 (ancestral).
    #[arg(long)]
    pub dds_eta: Option<f64>,
    /// DDS: conjugate-gradient iterations K of the data step per level.
    #[arg(long)]
    pub dds_cg_iterations: Option<usize>,
    /// DDS: share of the re-noise drawn fresh, 0 (DDIM's eta rule; CT, MAR) to 1 (MRI).
    #[arg(long)]
    pub dds_fresh: Option<f64>,
    /// DDS: first noise level of the warm start in model units (default 0.3); 0: pure noise
    /// at the prior's sigma_max.
    #[arg(long)]
    pub dds_start_sigma: Option<f64>,
    /// Posterior samples per slice (>1 adds a mean and a per-pixel std map).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Seed of every random draw (noise, masks, sampler): same seed, same outputs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the tensors live.
    #[arg(long, value_parser = crate::cli::named::<DeviceChoice>())]
    pub device: Option<DeviceChoice>,
    /// Slices (times samples) sent through the network together.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Classical baselines, comma-separated; `none` for none.
    #[arg(long, value_delimiter = ',')]
    pub baselines: Vec<String>,
    /// TV weight of fista-tv / tv relative to ||A||^2 x data range (default: tuned on a
    /// validation slice of the input, maximising SSIM).
    #[arg(long)]
    pub tv_weight: Option<f64>,
    /// What to do when the image size differs from the model's: refuse (error), zero-pad
    /// smaller slices (pad), or put the scan on the prior's grid as its training data were, then
    /// pad (resample: a prior that records a pixel size gets the scan in RAS+ axis order at that
    /// pixel size; others average larger slices down by an integer factor).
    #[arg(long, value_parser = crate::cli::named::<Fit>())]
    pub fit: Option<Fit>,
    /// No progress (bars on a terminal, timestamped lines otherwise).
    #[arg(long)]
    pub quiet: bool,
    /// Leave the patient tags (name, ID, birth date, sex, age, accession number, referring
    /// physician) out of derived DICOM, and input paths out of metrics.json and the reports.
    #[arg(long)]
    pub anonymise: bool,
}

/// The CT beam geometry (`ct`, `mar`; `simulate` has its own copy with defaults).
#[derive(Args, Debug, Clone, Default)]
pub struct BeamArgs {
    /// Parallel beam (angles over [0, 180)) or the fan beam of a clinical scanner (angles over
    /// its scan: 360 degrees, or 180 plus the fan angle with --scan short).
    #[arg(long, value_parser = crate::cli::named::<crate::ops::ct::Beam>())]
    pub geometry: Option<crate::ops::ct::Beam>,
    /// Fan beam: curved (equiangular arc, clinical scanners) or flat (equispaced) detector.
    #[arg(long, value_parser = crate::cli::named::<crate::ops::ct::Detector>())]
    pub detector: Option<crate::ops::ct::Detector>,
    /// Fan beam: source to isocentre, mm (default 595, a typical head/body scanner).
    #[arg(long, allow_hyphen_values = true)]
    pub source_to_isocentre_mm: Option<f64>,
    /// Fan beam: source to detector, mm (default 1085.6).
    #[arg(long, allow_hyphen_values = true)]
    pub source_to_detector_mm: Option<f64>,
    /// Fan beam: bin pitch on the detector, mm (default: one image pixel at the isocentre).
    #[arg(long, allow_hyphen_values = true)]
    pub detector_spacing_mm: Option<f64>,
    /// Fan beam: detector bins (default: as many as cover the image).
    #[arg(long)]
    pub detector_bins: Option<usize>,
    /// Fan beam: detector shift in bins (0.25: a quarter-detector offset).
    #[arg(long, allow_hyphen_values = true)]
    pub detector_offset: Option<f64>,
    /// Fan beam: full (360 degrees) or short scan (180 plus the fan angle, Parker weights).
    #[arg(long, value_parser = crate::cli::named::<crate::ops::ct::Scan>())]
    pub scan: Option<crate::ops::ct::Scan>,
    /// Fan beam: rebin the fan-beam data (simulated, or a measurement file's) to parallel beam
    /// and reconstruct with the parallel-beam operator, baselines and sampler.
    #[arg(long)]
    pub rebin: bool,
}

impl BeamArgs {
    /// The scanner these flags describe, defaults filled in; None for parallel beam.
    pub fn fan_spec(&self) -> Option<crate::ops::ct::FanSpec> {
        let d = crate::ops::ct::FanSpec::default();
        (self.geometry == Some(crate::ops::ct::Beam::Fan)).then(|| crate::ops::ct::FanSpec {
            source_to_isocentre_mm: self
                .source_to_isocentre_mm
                .unwrap_or(d.source_to_isocentre_mm),
            source_to_detector_mm: self
                .source_to_detector_mm
                .unwrap_or(d.source_to_detector_mm),
            detector: self.detector.unwrap_or(d.detector),
            detector_spacing_mm: self.detector_spacing_mm,
            n_det: self.detector_bins,
            detector_offset: self.detector_offset.unwrap_or(d.detector_offset),
            scan: self.scan.unwrap_or(d.scan),
        })
    }

    fn add(&self, g: &mut Given) {
        g.opt("geometry", &self.geometry);
        g.opt("detector", &self.detector);
        g.opt("source_to_isocentre_mm", &self.source_to_isocentre_mm);
        g.opt("source_to_detector_mm", &self.source_to_detector_mm);
        g.opt("detector_spacing_mm", &self.detector_spacing_mm);
        g.opt("detector_bins", &self.detector_bins);
        g.opt("detector_offset", &self.detector_offset);
        g.opt("scan", &self.scan);
        g.flag("rebin", self.rebin);
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct CtArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub beam: BeamArgs,
    /// Measured views; a comma-separated list makes a sweep (e.g. 10,23,45,90).
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<usize>,
    /// Size of the full angle set, over [0, 180) degrees (parallel) or the fan-beam scan's arc.
    #[arg(long)]
    pub full_views: Option<usize>,
    /// Limited-angle wedge in degrees instead of sparse views.
    #[arg(long)]
    pub limited_angle: Option<f64>,
    /// Incident photons per bin for Poisson noise on the simulated sinogram (default: noise-free).
    #[arg(long)]
    pub photons: Option<f64>,
    /// Display window of the report's tiles: soft-tissue (40/400 HU; auto), brain (40/80 HU, for
    /// head CT), bone, lung.
    #[arg(long, value_parser = crate::cli::named::<WindowPreset>())]
    pub window: Option<WindowPreset>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct MriArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Acceleration factor(s); a comma-separated list makes a sweep.
    #[arg(long, value_delimiter = ',')]
    pub acceleration: Vec<f64>,
    /// Fully sampled fraction of the central k-space lines.
    #[arg(long)]
    pub center_fraction: Option<f64>,
    /// Undersampling mask.
    #[arg(long, value_parser = crate::cli::named::<MaskKind>())]
    pub mask: Option<MaskKind>,
    /// Complex Gaussian k-space noise, SNR in dB (default: noise-free).
    #[arg(long)]
    pub snr_db: Option<f64>,
    /// Receive coils of the simulated scanner: 1 (single-coil) or more (multi-coil SENSE,
    /// coil maps by ESPIRiT from the calibration region).
    #[arg(long)]
    pub coils: Option<usize>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct MarArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub beam: BeamArgs,
    /// Size of the full angle set, over [0, 180) degrees (parallel) or the fan-beam scan's arc.
    #[arg(long)]
    pub full_views: Option<usize>,
    /// Incident photons per bin for Poisson noise on the simulated sinogram (default: noise-free).
    #[arg(long)]
    pub photons: Option<f64>,
    /// Metal threshold in HU.
    #[arg(long)]
    pub metal_threshold: Option<f64>,
    /// Insert simulated metal into a metal-free input and simulate a polychromatic scan.
    #[arg(long)]
    pub insert_metal: bool,
    /// Display window of the report's tiles: soft-tissue (40/400 HU; auto), brain (40/80 HU, for
    /// head CT), bone, lung.
    #[arg(long, value_parser = crate::cli::named::<WindowPreset>())]
    pub window: Option<WindowPreset>,
}

/// The settings a user wrote on the command line, as YAML keys of `JobSpec`.
pub struct Given(Mapping);

impl Given {
    fn put(&mut self, key: &str, v: impl Serialize) {
        let v = serde_yaml_ng::to_value(v).expect("settings serialise");
        self.0.insert(Value::String(key.into()), v);
    }
    fn opt(&mut self, key: &str, v: &Option<impl Serialize>) {
        if let Some(v) = v {
            self.put(key, v);
        }
    }
    fn list<T: Serialize>(&mut self, key: &str, v: &[T]) {
        if !v.is_empty() {
            self.put(key, v);
        }
    }
    fn flag(&mut self, key: &str, on: bool) {
        if on {
            self.put(key, true);
        }
    }
}

impl CommonArgs {
    fn given(&self) -> Result<Given> {
        let mut g = Given(Mapping::new());
        g.opt("input", &self.input);
        g.opt("series", &self.series);
        g.list("slices", &self.slice);
        g.flag("all_slices", self.all_slices);
        g.opt("model", &self.model);
        g.opt("sampler", &self.sampler);
        g.opt("steps", &self.steps);
        g.opt("corrector_steps", &self.corrector_steps);
        g.opt("snr", &self.snr);
        g.opt("lambda", &self.lambda);
        g.opt("dds_eta", &self.dds_eta);
        g.opt("dds_cg_iterations", &self.dds_cg_iterations);
        g.opt("dds_fresh", &self.dds_fresh);
        g.opt("dds_start_sigma", &self.dds_start_sigma);
        g.opt("samples", &self.samples);
        g.opt("seed", &self.seed);
        g.opt("device", &self.device);
        g.opt("batch_size", &self.batch_size);
        g.opt("tv_weight", &self.tv_weight);
        g.opt("fit", &self.fit);
        g.flag("quiet", self.quiet);
        g.flag("anonymise", self.anonymise);
        if !self.baselines.is_empty() {
            let mut kinds = Vec::new();
            for b in self.baselines.iter().filter(|b| b.as_str() != "none") {
                match b.parse::<BaselineKind>() {
                    Ok(k) => kinds.push(k),
                    Err(e) => return Err(InvalidSettings(format!("--baselines {e}")).into()),
                }
            }
            g.put("baselines", kinds);
        }
        Ok(g)
    }
}

/// What `ct`, `mri` and `mar` have in common for running.
pub trait TaskArgs {
    const TASK: Task;
    fn common(&self) -> &CommonArgs;
    /// The task's own flags the user gave.
    fn add_own(&self, g: &mut Given);
}

impl TaskArgs for CtArgs {
    const TASK: Task = Task::Ct;
    fn common(&self) -> &CommonArgs {
        &self.common
    }
    fn add_own(&self, g: &mut Given) {
        self.beam.add(g);
        g.list("views", &self.views);
        g.opt("full_views", &self.full_views);
        g.opt("limited_angle", &self.limited_angle);
        g.opt("photons", &self.photons);
        g.opt("window", &self.window);
    }
}

impl TaskArgs for MriArgs {
    const TASK: Task = Task::Mri;
    fn common(&self) -> &CommonArgs {
        &self.common
    }
    fn add_own(&self, g: &mut Given) {
        g.list("acceleration", &self.acceleration);
        g.opt("center_fraction", &self.center_fraction);
        g.opt("mask", &self.mask);
        g.opt("snr_db", &self.snr_db);
        g.opt("coils", &self.coils);
    }
}

impl TaskArgs for MarArgs {
    const TASK: Task = Task::Mar;
    fn common(&self) -> &CommonArgs {
        &self.common
    }
    fn add_own(&self, g: &mut Given) {
        self.beam.add(g);
        g.opt("full_views", &self.full_views);
        g.opt("photons", &self.photons);
        g.opt("metal_threshold", &self.metal_threshold);
        g.flag("insert_metal", self.insert_metal);
        g.opt("window", &self.window);
    }
}

/// The flags the user gave, as YAML settings.
fn given<A: TaskArgs>(args: &A) -> Result<Mapping> {
    let mut g = args.common().given()?;
    args.add_own(&mut g);
    Ok(g.0)
}

/// Defaults < config file < flags, validated.
pub fn to_spec<A: TaskArgs>(args: &A) -> Result<JobSpec> {
    let common = args.common();
    let mut merged = match &common.config {
        Some(p) => {
            let config = read_yaml_mapping(p, "config")?;
            // Every value the file holds must parse, also those a flag overrides: `steps: -5`
            // is a mistake in the file whether or not `--steps` is given today.
            JobSpec::from_yaml(Some(A::TASK), &config, &p.display().to_string())?;
            config
        }
        None => Mapping::new(),
    };
    merged.extend(given(args)?);
    let origin = common
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "command line".into());
    let spec = JobSpec::from_yaml(Some(A::TASK), &merged, &origin)?;
    spec.validate()?;
    Ok(spec)
}

pub fn run<A: TaskArgs>(args: A) -> Result<()> {
    let spec = to_spec(&args)?;
    pipeline::check_flags(&spec, &GivenFlags::of(&spec, &given(&args)?))?;
    let out = args
        .common()
        .out
        .clone()
        .unwrap_or_else(|| crate::job::default_out(A::TASK));
    let report = pipeline::run_to_dir(&spec, &out, args.common().force)?;
    pipeline::print_summary(&report, &out);
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
        let args = CtArgs {
            common: CommonArgs {
                input: Some(dir.path().to_path_buf()),
                config: Some(cfg),
                steps: Some(SamplerKind::Ode.min_steps() + 7),
                sampler: Some(SamplerKind::Ode),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = to_spec(&args).unwrap();
        assert_eq!(s.steps, SamplerKind::Ode.min_steps() + 7);
        assert_eq!(s.snr, 0.3);
        assert_eq!(s.views, vec![10, 23]);
        assert_eq!(s.lambda, 0.841);
        assert_eq!(s.sampler, SamplerKind::Ode);
    }
}
