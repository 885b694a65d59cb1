//! A simulation written as a measurement folder (`scorerecon simulate`): what a scanner would
//! measure from a slice of a volume or a phantom, as a measurement file (docs/formats.md) with
//! the direct reconstruction (FBP / zero-filled) and the image measured beside it.

use super::mri::{measure_kspace, measure_multicoil, MriSimulationSpec};
use crate::io::kspace::{write_fastmri, KspaceFormat, RawKspace};
use crate::io::measurement::{
    self, CtMeasurement, IntensityScale, Measurement, MeasurementMeta, MeasurementModality,
    MriMeasurement,
};
use crate::io::{self, atomic, Format, ReadOptions};
use crate::ops::ct::fbp::Filter;
use crate::ops::ct::hu;
use crate::ops::ct::metal::DEFAULT_DILATION;
use crate::ops::mri::masks::{MaskKind, MaskSpec};
use crate::phantom;
use crate::prior::Normalisation;
use crate::simulate::{self, CtSimulationSpec, CtTask};
use crate::volume::{Modality, Volume};
use anyhow::{bail, ensure, Context, Result};
use std::path::PathBuf;
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhantomKind {
    /// The modified Shepp-Logan head (phantoms/shepp-logan.yaml).
    SheppLogan,
    /// Random ellipses in a water body, from --seed.
    Ellipses,
    /// Shepp-Logan with two titanium implants (phantoms/metal.yaml).
    Metal,
}

crate::names::named!(PhantomKind, "--phantom", {
    SheppLogan => "shepp-logan",
    Ellipses => "ellipses",
    Metal => "metal",
});

/// The measurement processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// CT from `--views` equally spaced angles of the `--full-views` set.
    SparseView,
    /// CT from a `--wedge` of angles starting at `--wedge-start`.
    LimitedAngle,
    /// CT of the slice with metal (inserted when the slice has none): polychromatic scan,
    /// Lambda = everything but the metal trace.
    Mar,
    /// Single-coil Cartesian MRI of an MR slice: centred orthonormal FFT of the (real) image,
    /// Lambda from --mask / --acceleration / --center-fraction.
    Mri,
}

crate::names::named!(Task, "--task", {
    SparseView => "sparse-view",
    LimitedAngle => "limited-angle",
    Mar => "mar",
    Mri => "mri",
});

/// What to simulate and where to write it (the `simulate` command's options).
#[derive(Debug, Clone)]
pub struct SimulateArgs {
    /// CT volume in HU: a DICOM file, a DICOM series folder, or a NIfTI file.
    pub input: Option<PathBuf>,
    /// An analytic phantom instead of an input.
    pub phantom: Option<PhantomKind>,
    /// Slice of the input (default: the middle one).
    pub slice: Option<usize>,
    /// Phantom size in pixels (square).
    pub size: usize,
    /// Phantom pixel spacing in mm (inputs use their own).
    pub pixel_mm: f64,
    pub task: Task,
    /// Measured views for sparse-view CT: indices floor(k * full / views).
    pub views: usize,
    /// Angles of the full set, equally spaced over [0, 180) degrees (parallel) or the fan-beam
    /// scan's arc.
    pub full_views: usize,
    /// Fan beam from this scanner; None: parallel beam.
    pub fan: Option<crate::ops::ct::FanSpec>,
    /// Wedge of limited-angle CT, degrees.
    pub wedge: f64,
    /// Start of the wedge, degrees.
    pub wedge_start: f64,
    /// Incident photons per detector bin (Poisson noise). Default: noise-free, except MAR,
    /// which simulates 1e6 so that photon starvation behind metal shows.
    pub photons: Option<f64>,
    /// Seed of the noise and of the random-ellipse phantom.
    pub seed: u64,
    /// HU above which a voxel counts as metal (MAR).
    pub metal_threshold: f64,
    /// MRI: acceleration factor R.
    pub acceleration: f64,
    /// MRI: fraction of the central k-space lines sampled fully.
    pub center_fraction: f64,
    /// MRI: undersampling mask (equispaced, equispaced-fraction, random, gaussian, poisson).
    pub mask: MaskKind,
    /// MRI: complex Gaussian k-space noise at this SNR in dB (default: noise-free).
    pub snr_db: Option<f64>,
    /// MRI: average the slice down by this integer factor first (a prior's grid: 2 for the
    /// shipped 128x128 brain prior and the 1 mm MNI template).
    pub downsample: usize,
    /// MRI: zero-pad the (averaged) slice, centred, to N x N before measuring (a prior's size).
    pub pad_to: Option<usize>,
    /// MRI: receive coils; more than 1 writes a fastMRI-style HDF5 file (`kspace.h5`).
    pub coils: usize,
    /// FBP filter of the written FBP image.
    pub filter: Filter,
    /// Output folder (created whole or not at all).
    pub out: PathBuf,
    /// Replace an existing output folder.
    pub force: bool,
}

/// The slice to measure: HU values, its side, pixel spacing, where it came from, and the
/// volume it belongs to (for geometry in the outputs).
struct Source {
    hu: Vec<f32>,
    n: usize,
    pixel_mm: f64,
    description: String,
    slice: usize,
    metal: Vec<simulate::MetalObject>,
    volume: Volume,
}

fn load_source(args: &SimulateArgs) -> Result<Source> {
    if let Some(kind) = args.phantom {
        ensure!(
            args.pixel_mm.is_finite() && args.pixel_mm > 0.0,
            "--pixel-mm {}: must be a positive number",
            args.pixel_mm
        );
        let (hu_slice, metal) = phantom::phantom_hu(kind.name(), args.size, args.seed)?;
        let n = args.size;
        let mut volume = Volume::new(
            hu_slice.clone(),
            [n, n, 1, 1],
            [args.pixel_mm, args.pixel_mm, args.pixel_mm],
            Modality::Ct,
        );
        volume
            .provenance
            .history
            .push(format!("phantom {}", kind.name()));
        return Ok(Source {
            hu: hu_slice,
            n,
            pixel_mm: args.pixel_mm,
            description: format!("phantom:{}", kind.name()),
            slice: 0,
            metal,
            volume,
        });
    }
    let path = args
        .input
        .as_ref()
        .context("simulate: give an input (--input) or a phantom (--phantom)")?;
    let vol = io::read_volume(path, &ReadOptions::default())?;
    if vol.modality == Modality::Mr {
        bail!(
            "{}: an MR volume; CT simulation needs CT in HU (for k-space use --task mri)",
            path.display()
        );
    }
    ensure!(
        vol.nx() == vol.ny(),
        "{}: slices are {}x{}; the parallel-beam CT operator needs square slices (crop or pad first)",
        path.display(),
        vol.nx(),
        vol.ny()
    );
    let k = chosen_slice(args, &vol, path)?;
    let pixel_mm = vol.spacing[0];
    ensure!(
        pixel_mm.is_finite() && pixel_mm > 0.0,
        "{}: pixel spacing {pixel_mm} mm is not usable",
        path.display()
    );
    let volume = vol.select_slices(&[k])?;
    Ok(Source {
        hu: volume.data.clone(),
        n: vol.nx(),
        pixel_mm,
        description: path.display().to_string(),
        slice: k,
        metal: Vec::new(),
        volume,
    })
}

/// Simulate `args` and write the measurement folder `args.out` whole (or nothing); returns what
/// was written, in a line for the user.
pub fn run(args: &SimulateArgs) -> Result<String> {
    if let Some(input) = &args.input {
        atomic::check_not_input(&args.out, &[input])?;
    }
    atomic::check_overwrite(&args.out, args.force)?;
    check_sizes(args, args.phantom.map(|_| args.size))?;
    ensure!(
        (1..=64).contains(&args.coils),
        "--coils {}: give 1 (single-coil) to 64 receive coils",
        args.coils
    );
    ensure!(
        args.coils == 1 || args.task == Task::Mri,
        "--coils {}: receive coils are MRI's; CT has none",
        args.coils
    );
    if args.task == Task::Mri {
        return run_mri(args);
    }
    let source = load_source(args)?;
    check_sizes(args, Some(source.n))?;
    let task = match args.task {
        Task::SparseView => CtTask::SparseView { views: args.views },
        Task::LimitedAngle => CtTask::LimitedAngle {
            wedge_deg: args.wedge,
            start_deg: args.wedge_start,
        },
        Task::Mar => CtTask::Mar {
            threshold_hu: args.metal_threshold,
            dilation: DEFAULT_DILATION,
        },
        Task::Mri => unreachable!("run_mri handles MRI"),
    };
    let photons = match (args.photons, args.task) {
        (Some(p), _) => Some(p),
        (None, Task::Mar) => Some(1e6),
        (None, _) => None,
    };
    let metal = if args.task == Task::Mar && source.metal.is_empty() {
        simulate::default_metal(&source.hu, source.n, source.pixel_mm)?
    } else {
        source.metal.clone()
    };
    let spec = CtSimulationSpec {
        task: task.clone(),
        full_views: args.full_views,
        photons,
        seed: args.seed,
        pixel_mm: source.pixel_mm,
        filter: args.filter,
        fan: args.fan.clone(),
    };
    let sim = simulate::simulate_ct(&spec, &source.hu, source.n, &metal)?;
    let physics = match args.task {
        Task::Mar => format!(
            "polychromatic (120 kVp tungsten spectrum, 9 bins), water/bone split of the tissue, {} metal object(s)",
            metal.len()
        ),
        _ => format!(
            "monochromatic at {} keV (line integrals of the attenuation scale)",
            hu::EFFECTIVE_ENERGY_KEV
        ),
    };
    let g = sim.geometry.clone();
    let meta = MeasurementMeta {
        format: measurement::FORMAT_TAG.into(),
        version: measurement::FORMAT_VERSION,
        modality: MeasurementModality::Ct,
        data_file: String::new(),
        mask_file: String::new(),
        shape: [1, g.n_angles(), g.n_det],
        complex: false,
        units: "line integrals, in pixel units, of the attenuation scale x = (HU + 1000) / 2000 \
                = mu / (2 mu_water), mu_water = 0.01937 / mm at 70 keV"
            .into(),
        ct: Some(CtMeasurement {
            geometry: g.clone(),
            task,
            rows: sim.rows.clone(),
            pixel_spacing_mm: source.pixel_mm,
            photons,
            physics,
        }),
        mri: None,
        seed: Some(args.seed),
        source: source.description.clone(),
        slices: vec![source.slice],
        created_by: format!("scorerecon {}", crate::version()),
        history: source.volume.provenance.history.clone(),
    };
    let m = Measurement {
        meta,
        data: sim.sinogram.clone(),
        mask: sim.mask.clone(),
    };
    let to_hu = |x: &[f32]| -> Vec<f32> {
        x.iter()
            .map(|&v| hu::unit_to_hu(f64::from(v)) as f32)
            .collect()
    };
    let mut fbp = source.volume.with_data(to_hu(&sim.fbp));
    fbp.modality = Modality::Ct;
    fbp.provenance.history.push(format!(
        "FBP ({}) of a simulated {:?} measurement",
        args.filter.name(),
        args.task
    ));
    let mut reference = source.volume.with_data(to_hu(&sim.reference));
    reference.modality = Modality::Ct;
    reference
        .provenance
        .history
        .push("the image measured by the simulation".into());
    let kept = sim.mask.iter().filter(|&&v| v > 0.0).count();
    write_simulation(
        args,
        &m,
        &[
            (&fbp, "fbp.nii.gz", Format::Nifti),
            (&fbp, "fbp.png", Format::Png),
            (&reference, "reference.nii.gz", Format::Nifti),
        ],
    )?;
    Ok(format!(
        "{}: {:?} from {} (slice {}), {} of {} sinogram bins measured; wrote measurement.json, fbp.nii.gz, fbp.png, reference.nii.gz",
        args.out.display(),
        args.task,
        source.description,
        source.slice,
        kept,
        sim.mask.len()
    ))
}

/// `--slice`, or the middle slice, checked against the volume.
fn chosen_slice(args: &SimulateArgs, vol: &Volume, path: &std::path::Path) -> Result<usize> {
    let k = args.slice.unwrap_or(vol.nz() / 2);
    ensure!(
        k < vol.nz(),
        "--slice {k}: {} has {} slices (0..{})",
        path.display(),
        vol.nz(),
        vol.nz().saturating_sub(1)
    );
    Ok(k)
}

/// The output folder, whole or not at all: the measurement and the images beside it.
fn write_simulation(
    args: &SimulateArgs,
    m: &Measurement,
    images: &[(&Volume, &str, Format)],
) -> Result<()> {
    atomic::write_dir(&args.out, args.force, |dir| {
        measurement::write_measurement(&dir.join("measurement.json"), m, false)
            .with_context(|| format!("{}: cannot write the measurement", args.out.display()))?;
        for &(vol, name, format) in images {
            // Errors name the final path; the files are written in a temporary sibling folder.
            io::write_volume(vol, &dir.join(name), Some(format), false).with_context(|| {
                format!("{}: cannot write the image", args.out.join(name).display())
            })?;
        }
        Ok(())
    })
}

/// `--task mri`: the k-space of one MR slice (averaged down and padded as asked), written with
/// the zero-filled image and the image measured, in the input's intensity units.
/// The typed sizes against the memory they need, before anything is allocated: the image
/// (`--size`, or the input's `n` once read), the full sinogram (`--full-views` x detector bins)
/// and MRI's `--pad-to`. The factors count the working copies a simulation holds at once.
fn check_sizes(args: &SimulateArgs, n: Option<usize>) -> Result<()> {
    let f = |v: usize| v as f64;
    if let Some(n) = n {
        let what = match args.phantom {
            Some(_) => format!("--size {n}"),
            None => format!("the input's {n}x{n} slices"),
        };
        crate::limits::check_memory(&what, f(n) * f(n) * 4.0 * 16.0)?;
        if args.task != Task::Mri {
            let n_det = (std::f64::consts::SQRT_2 * f(n)).ceil();
            crate::limits::check_memory(
                &format!("--full-views {} of a {n}x{n} image", args.full_views),
                f(args.full_views) * n_det * 4.0 * 16.0,
            )?;
        }
    }
    if let Some(p) = args.pad_to {
        crate::limits::check_memory(&format!("--pad-to {p}"), f(p) * f(p) * 8.0 * 16.0)?;
    }
    Ok(())
}

fn run_mri(args: &SimulateArgs) -> Result<String> {
    let Some(path) = args.input.as_ref() else {
        bail!("--task mri needs an MR image (--input); the phantoms are CT phantoms");
    };
    ensure!(
        args.downsample >= 1,
        "--downsample {}: must be at least 1",
        args.downsample
    );
    let vol = io::read_volume(path, &ReadOptions::default())?;
    ensure!(
        vol.modality != Modality::Ct,
        "{}: a CT volume (HU); --task mri needs an MR image",
        path.display()
    );
    ensure!(
        vol.nt() == 1,
        "{}: a 4-D volume ({} frames); simulate one frame at a time",
        path.display(),
        vol.nt()
    );
    let k = chosen_slice(args, &vol, path)?;
    // MR priors divide each volume by a percentile of all its voxels at full resolution (as
    // training and `scorerecon mri` on an image do); one slice's k-space cannot tell it, so the
    // sidecar carries it.
    let percentile = match Normalisation::mr_default() {
        Normalisation::MrPerVolume { percentile } => percentile,
        _ => unreachable!("the default MR normalisation is per volume"),
    };
    let scale = Normalisation::mr_default()
        .fit(&vol.data)
        .with_context(|| format!("{}", path.display()))?
        .scale;
    let mut slice = vol.select_slices(&[k])?;
    if args.downsample > 1 {
        ensure!(
            slice.nx() >= args.downsample && slice.ny() >= args.downsample,
            "--downsample {}: larger than the {}x{} slice",
            args.downsample,
            slice.nx(),
            slice.ny()
        );
        slice = slice.average_down(args.downsample);
    }
    let (h, w) = (slice.ny(), slice.nx());
    let (mh, mw) = match args.pad_to {
        None => (h, w),
        Some(n) => {
            ensure!(
                n >= h && n >= w,
                "--pad-to {n}: the slice is {w}x{h} after --downsample {}; padding cannot shrink it",
                args.downsample
            );
            (n, n)
        }
    };
    let padding = crate::tensor::Padding { h, w, mh, mw };
    let x = padding.pad(&crate::tensor::slices_to_tensor(
        &slice,
        &[0],
        tch::Device::Cpu,
    )?);
    let sim_spec = MriSimulationSpec {
        mask: MaskSpec {
            kind: args.mask,
            acceleration: args.acceleration,
            center_fraction: args.center_fraction,
            seed: args.seed,
        },
        snr_db: args.snr_db,
        seed: args.seed,
    };
    let spacing = [slice.spacing[1], slice.spacing[0]];
    let image = |t: &Tensor, what: &str| -> Volume {
        let mut v = Volume::new(
            crate::tensor::tensor_to_vec(t),
            [mw, mh, 1, 1],
            [spacing[1], spacing[0], slice.spacing[2]],
            Modality::Mr,
        );
        v.provenance = slice.provenance.clone();
        v.provenance.history.push(what.to_string());
        v
    };
    if args.coils > 1 {
        let sim = measure_multicoil(&sim_spec, args.coils, &x)?;
        let kspace = tensor_to_array4(&sim.kspace)?;
        let mask_values = crate::tensor::tensor_to_vec(&sim.mask);
        let mask = ndarray::Array2::from_shape_vec((mh, mw), mask_values.clone())?;
        let rss = ndarray::Array3::from_shape_vec((1, mh, mw), crate::tensor::tensor_to_vec(&x))?;
        let raw = RawKspace {
            kspace,
            mask: Some(mask),
            // The simulated maps have a unit root sum of squares, so the fully sampled RSS is the
            // image measured (simulate/coils.rs).
            reference: Some(("reconstruction_rss".into(), rss)),
            format: KspaceFormat::FastMri,
            recon_matrix: Some([mh, mw]),
            fov_mm: Some([
                spacing[0] * mh as f64,
                spacing[1] * mw as f64,
                slice.spacing[2],
            ]),
            source: None,
        };
        let reference = image(&x, "the image measured by the simulation");
        atomic::write_dir(&args.out, args.force, |dir| {
            write_fastmri(&dir.join("kspace.h5"), &raw, false)
                .with_context(|| format!("{}: cannot write kspace.h5", args.out.display()))?;
            io::write_volume(
                &reference,
                &dir.join("reference.nii.gz"),
                Some(Format::Nifti),
                false,
            )
            .with_context(|| format!("{}: cannot write reference.nii.gz", args.out.display()))?;
            Ok(())
        })?;
        let kept = mask_values.iter().filter(|&&v| v > 0.0).count();
        return Ok(format!(
            "{}: MRI {}x ({}), {} coils, from {} (slice {k}, {mw}x{mh}), {kept} of {} k-space \
             samples measured per coil; wrote kspace.h5 (fastMRI layout), reference.nii.gz",
            args.out.display(),
            args.acceleration,
            args.mask.name(),
            args.coils,
            path.display(),
            mask_values.len()
        ));
    }
    let (op, y, _) = measure_kspace(&sim_spec, &x)?;
    let zero_filled = op.transform.inverse_masked(&y, &op.mask);
    let interleaved =
        Vec::<f32>::try_from(y.view_as_real().contiguous().flatten(0, -1)).context("k-space")?;
    let mask_values = Vec::<f32>::try_from(
        op.mask
            .expand([1, 1, mh as i64, mw as i64], false)
            .contiguous()
            .flatten(0, -1),
    )?;
    let meta = MeasurementMeta {
        format: measurement::FORMAT_TAG.into(),
        version: measurement::FORMAT_VERSION,
        modality: MeasurementModality::Mri,
        data_file: String::new(),
        mask_file: String::new(),
        shape: [1, mh, mw],
        complex: true,
        units: "k-space of the image in the input's intensity units: centred orthonormal 2-D FFT, \
                fftshift(fft2(ifftshift(x), norm='ortho')), rows then columns"
            .into(),
        ct: None,
        mri: Some(MriMeasurement {
            mask: Some(args.mask.name().to_string()),
            acceleration: Some(args.acceleration),
            center_fraction: Some(args.center_fraction),
            snr_db: args.snr_db,
            noise_free: args.snr_db.is_none(),
            pixel_spacing_mm: Some(spacing),
            intensity_scale: Some(IntensityScale {
                percentile,
                value: scale,
            }),
        }),
        seed: Some(args.seed),
        source: path.display().to_string(),
        slices: vec![k],
        created_by: format!("scorerecon {}", crate::version()),
        history: slice.provenance.history.clone(),
    };
    let m = Measurement {
        meta,
        data: interleaved,
        mask: mask_values,
    };
    let reference = image(&x, "the image measured by the simulation");
    let zf = image(
        &zero_filled,
        "zero-filled inverse FFT of a simulated k-space measurement",
    );
    write_simulation(
        args,
        &m,
        &[
            (&zf, "zero_filled.nii.gz", Format::Nifti),
            (&zf, "zero_filled.png", Format::Png),
            (&reference, "reference.nii.gz", Format::Nifti),
        ],
    )?;
    let kept = m.mask.iter().filter(|&&v| v > 0.0).count();
    Ok(format!(
        "{}: MRI {}x ({}) from {} (slice {k}, {mw}x{mh}), {kept} of {} k-space samples measured; wrote measurement.json, zero_filled.nii.gz, zero_filled.png, reference.nii.gz",
        args.out.display(),
        args.acceleration,
        args.mask.name(),
        path.display(),
        m.mask.len()
    ))
}

/// `[B, C, H, W]` complex k-space as the readers' `[slices, coils, rows, cols]` array.
fn tensor_to_array4(k: &Tensor) -> Result<ndarray::Array4<num_complex::Complex32>> {
    let size: Vec<usize> = k.size().iter().map(|&d| d as usize).collect();
    let parts = crate::tensor::tensor_to_vec(&k.view_as_real().contiguous());
    let values: Vec<num_complex::Complex32> = parts
        .chunks_exact(2)
        .map(|p| num_complex::Complex32::new(p[0], p[1]))
        .collect();
    Ok(ndarray::Array4::from_shape_vec(
        (size[0], size[1], size[2], size[3]),
        values,
    )?)
}
