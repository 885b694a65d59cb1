//! `scorerecon simulate`: the options; the simulation and its measurement folder are
//! `crate::simulate::files`.

use crate::ops::ct::fbp::Filter;
use crate::ops::ct::metal::DEFAULT_METAL_THRESHOLD_HU;
use crate::ops::mri::masks::MaskKind;
use crate::simulate::files::{self, PhantomKind, Task};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// CT volume in HU: a DICOM file, a DICOM series folder, a NIfTI or a NRRD file.
    #[arg(long, required_unless_present = "phantom", conflicts_with = "phantom")]
    pub input: Option<PathBuf>,
    /// An analytic phantom instead of an input.
    #[arg(long, value_parser = crate::cli::named::<PhantomKind>())]
    pub phantom: Option<PhantomKind>,
    /// Slice of the input (default: the middle one).
    #[arg(long)]
    pub slice: Option<usize>,
    /// Phantom size in pixels (square).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Phantom pixel spacing in mm (inputs use their own).
    #[arg(long, default_value_t = 1.0)]
    pub pixel_mm: f64,
    /// The measurement process.
    #[arg(long, value_parser = crate::cli::named::<Task>())]
    pub task: Task,
    /// Measured views for sparse-view CT: indices floor(k * full / views).
    #[arg(long, default_value_t = 23)]
    pub views: usize,
    /// Angles of the full set, equally spaced over [0, 180) degrees (parallel) or the fan-beam
    /// scan's arc.
    #[arg(long, default_value_t = 180)]
    pub full_views: usize,
    #[command(flatten)]
    pub beam: super::recon::BeamArgs,
    /// Wedge of limited-angle CT, degrees.
    #[arg(long, default_value_t = 90.0)]
    pub wedge: f64,
    /// Start of the wedge, degrees.
    #[arg(long, default_value_t = 0.0)]
    pub wedge_start: f64,
    /// Incident photons per detector bin (Poisson noise). Default: noise-free, except MAR,
    /// which simulates 1e6 so that photon starvation behind metal shows.
    #[arg(long)]
    pub photons: Option<f64>,
    /// Seed of the noise and of the random-ellipse phantom.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// HU above which a voxel counts as metal (MAR).
    #[arg(long, default_value_t = DEFAULT_METAL_THRESHOLD_HU)]
    pub metal_threshold: f64,
    /// MRI: acceleration factor R.
    #[arg(long, default_value_t = 4.0)]
    pub acceleration: f64,
    /// MRI: fraction of the central k-space lines sampled fully.
    #[arg(long, default_value_t = 0.08)]
    pub center_fraction: f64,
    /// MRI: undersampling mask.
    #[arg(long, default_value = "equispaced", value_parser = crate::cli::named::<MaskKind>())]
    pub mask: MaskKind,
    /// MRI: complex Gaussian k-space noise at this SNR in dB (default: noise-free).
    #[arg(long)]
    pub snr_db: Option<f64>,
    /// MRI: average the slice down by this integer factor first (a prior's grid: 2 for the
    /// shipped 128x128 brain prior and the 1 mm MNI template).
    #[arg(long, default_value_t = 1)]
    pub downsample: usize,
    /// MRI: zero-pad the (averaged) slice, centred, to N x N before measuring (a prior's size).
    #[arg(long, value_name = "N")]
    pub pad_to: Option<usize>,
    /// MRI: receive coils of the simulated scanner; more than 1 writes `kspace.h5` in fastMRI's
    /// layout (coil sensitivities, image phase and correlated noise: docs/operators-mri.md).
    #[arg(long, default_value_t = 1)]
    pub coils: usize,
    /// FBP filter of the written FBP image.
    #[arg(long, default_value = "ramp", value_parser = crate::cli::named::<Filter>())]
    pub filter: Filter,
    /// Output folder (created whole or not at all).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: SimulateArgs) -> anyhow::Result<()> {
    let input = a.input.clone();
    let done = files::run(&files::SimulateArgs {
        input: a.input,
        phantom: a.phantom,
        slice: a.slice,
        size: a.size,
        pixel_mm: a.pixel_mm,
        task: a.task,
        views: a.views,
        full_views: a.full_views,
        fan: a.beam.fan_spec(),
        wedge: a.wedge,
        wedge_start: a.wedge_start,
        photons: a.photons,
        seed: a.seed,
        metal_threshold: a.metal_threshold,
        acceleration: a.acceleration,
        center_fraction: a.center_fraction,
        mask: a.mask,
        snr_db: a.snr_db,
        downsample: a.downsample,
        pad_to: a.pad_to,
        coils: a.coils,
        filter: a.filter,
        out: a.out,
        force: a.force,
    })
    .map_err(|e| match &input {
        Some(p) => crate::pipeline::naming(p, e),
        None => e,
    })?;
    println!("{done}");
    Ok(())
}
