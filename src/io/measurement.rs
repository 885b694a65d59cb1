//! Measurement files: what `scorerecon simulate` writes and the reconstruction commands read
//! (docs/formats.md, "Measurement files").
//!
//! A measurement `NAME` is three files side by side:
//! - `NAME.json`, the sidecar and the file users pass around: format tag and version,
//!   modality, geometry, task, units, noise, seed, source and history; it names the other two;
//! - `NAME.nii.gz`, the data `P^-1(Lambda) y`, zero-filled over T's whole domain, as NIfTI-1
//!   float32 (CT sinogram: dims `(n_det, n_angles, n_slices)`, detector bin fastest) or
//!   complex64 (MRI k-space: `(nx, ny, n_slices)`);
//! - `NAME_mask.nii.gz`, `Lambda` as uint8 0/1 with the same dims.
//!
//! NIfTI keeps the arrays readable by nibabel, ITK, FSL or any viewer; JSON keeps the geometry
//! readable by anything. Writers go through `io::atomic`: the data and mask first, the sidecar
//! last, so a sidecar on disk always names complete files.

use super::atomic;
use crate::ops::ct::Geometry;
use crate::simulate::CtTask;
use anyhow::{bail, ensure, Context, Result};
use ndarray::{Array3, ShapeBuilder};
use nifti::{NiftiHeader, NiftiObject, NiftiType, ReaderOptions};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FORMAT_TAG: &str = "scorerecon-measurement";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeasurementModality {
    Ct,
    Mri,
}

/// What the CT data are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtMeasurement {
    /// Parallel-beam geometry of the full angle set (`T`).
    pub geometry: Geometry,
    pub task: CtTask,
    /// Measured angle indices for sparse-view and limited-angle data (the mask says the same).
    pub rows: Option<Vec<usize>>,
    /// Pixel spacing of the image in mm: `2 mu_water pixel_spacing_mm` turns a line integral
    /// into `integral mu dl`.
    pub pixel_spacing_mm: f64,
    /// Incident photons per bin of the simulated scan (`None`: noise-free).
    pub photons: Option<f64>,
    /// How the sinogram was made (monochromatic / polychromatic spectrum).
    pub physics: String,
}

/// What MRI k-space data are. Every field may be missing in a user's own sidecar: what is
/// missing is estimated or assumed, and the reconstruction report says which.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MriMeasurement {
    /// Mask kind (`ops::mri::masks::MaskKind` name), acceleration and centre fraction it was made
    /// with; the mask file is what counts.
    pub mask: Option<String>,
    pub acceleration: Option<f64>,
    pub center_fraction: Option<f64>,
    /// SNR (dB) of added complex Gaussian noise, if any was added.
    pub snr_db: Option<f64>,
    /// The data are exact (simulated without noise): the reconstruction may then end with an
    /// exact projection onto `A x = y`. False unless stated.
    pub noise_free: bool,
    /// In-plane pixel spacing of the image, mm (rows, columns).
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// A percentile of the whole source volume, in the data's intensity units: MR priors
    /// divide each volume by it (`prior::Normalisation::MrPerVolume`), and one slice's k-space
    /// cannot tell it.
    pub intensity_scale: Option<IntensityScale>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntensityScale {
    pub percentile: f64,
    pub value: f64,
}

/// The sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasurementMeta {
    pub format: String,
    pub version: u32,
    pub modality: MeasurementModality,
    /// Data and mask file names, relative to the sidecar's folder.
    pub data_file: String,
    pub mask_file: String,
    /// `[n_slices, rows, columns]` in C order (CT: slice, angle, detector bin).
    pub shape: [usize; 3],
    /// Whether the data are complex (MRI k-space).
    pub complex: bool,
    /// The meaning of the values, in words.
    pub units: String,
    pub ct: Option<CtMeasurement>,
    /// What MRI k-space data are.
    #[serde(default)]
    pub mri: Option<MriMeasurement>,
    pub seed: Option<u64>,
    /// Input file or phantom the measurement was simulated from.
    pub source: String,
    /// Slice indices of the source, one per measured slice.
    pub slices: Vec<usize>,
    pub created_by: String,
    #[serde(default)]
    pub history: Vec<String>,
}

/// A measurement in memory.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub meta: MeasurementMeta,
    /// C order over `meta.shape`; complex data interleave (re, im).
    pub data: Vec<f32>,
    /// `Lambda`, C order over `meta.shape`, 0 or 1.
    pub mask: Vec<f32>,
}

/// Data and mask paths of the measurement whose sidecar is `json_path` (`NAME.json`).
pub fn companion_paths(json_path: &Path) -> Result<(PathBuf, PathBuf)> {
    let name = json_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .filter(|n| !n.is_empty())
        .with_context(|| {
            format!(
                "{}: a measurement is named by its sidecar, NAME.json",
                json_path.display()
            )
        })?;
    Ok((
        json_path.with_file_name(format!("{name}.nii.gz")),
        json_path.with_file_name(format!("{name}_mask.nii.gz")),
    ))
}

/// Write `m` as `NAME.json` + `NAME.nii.gz` + `NAME_mask.nii.gz` next to `json_path`.
pub fn write_measurement(json_path: &Path, m: &Measurement, force: bool) -> Result<()> {
    let (data_path, mask_path) = companion_paths(json_path)?;
    for p in [json_path, &data_path, &mask_path] {
        atomic::check_overwrite(p, force)?;
    }
    let mut meta = m.meta.clone();
    meta.data_file = file_name(&data_path);
    meta.mask_file = file_name(&mask_path);
    check_consistent(&meta, &m.data, &m.mask)?;
    let [s, r, c] = meta.shape;
    // NIfTI's first axis varies fastest: (columns, rows, slices) in Fortran order is our C order.
    let dims = (c, r, s).f();
    atomic::write_file(&data_path, force, |tmp| {
        let mut header = NiftiHeader::default();
        header.set_description_str(
            format!("scorerecon {:?} measurement", meta.modality).to_lowercase(),
        )?;
        let w = nifti::writer::WriterOptions::new(tmp).reference_header(&header);
        if meta.complex {
            let pairs: Vec<[f32; 2]> = m.data.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
            w.write_nifti_with_type(&Array3::from_shape_vec(dims, pairs)?, NiftiType::Complex64)?;
        } else {
            w.write_nifti(&Array3::from_shape_vec(dims, m.data.clone())?)?;
        }
        Ok(())
    })
    .with_context(|| format!("{}: cannot write the measurement data", data_path.display()))?;
    atomic::write_file(&mask_path, force, |tmp| {
        let mask: Vec<u8> = m.mask.iter().map(|&v| u8::from(v > 0.5)).collect();
        nifti::writer::WriterOptions::new(tmp).write_nifti(&Array3::from_shape_vec(dims, mask)?)?;
        Ok(())
    })
    .with_context(|| format!("{}: cannot write the mask", mask_path.display()))?;
    atomic::write_file(json_path, force, |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(&meta)? + "\n")?;
        Ok(())
    })
    .with_context(|| format!("{}: cannot write the sidecar", json_path.display()))
}

/// Read a measurement from its sidecar `NAME.json`, checking that the three files agree.
pub fn read_measurement(json_path: &Path) -> Result<Measurement> {
    let meta = read_sidecar(json_path)?;
    let dir = json_path.parent().unwrap_or(Path::new("."));
    let data_path = dir.join(&meta.data_file);
    let mask_path = dir.join(&meta.mask_file);
    let (data, data_type) = read_nifti_values(&data_path, meta.shape)?;
    let expected = if meta.complex {
        NiftiType::Complex64
    } else {
        NiftiType::Float32
    };
    ensure!(
        data_type == expected,
        "{}: data type {data_type:?}, the sidecar says {expected:?}",
        data_path.display()
    );
    let (mask, _) = read_nifti_values(&mask_path, meta.shape)?;
    check_consistent(&meta, &data, &mask).with_context(|| format!("{}", json_path.display()))?;
    Ok(Measurement { meta, data, mask })
}

/// The sidecar alone (format tag and version checked), for what needs only the geometry: the
/// data files are not read.
pub fn read_sidecar(json_path: &Path) -> Result<MeasurementMeta> {
    let text = std::fs::read_to_string(json_path).with_context(|| {
        format!(
            "{}: cannot read the measurement sidecar",
            json_path.display()
        )
    })?;
    let meta: MeasurementMeta = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a scorerecon measurement sidecar (JSON with format, version, modality, ...)",
            json_path.display()
        )
    })?;
    ensure!(
        meta.format == FORMAT_TAG,
        "{}: format is {:?}, expected {FORMAT_TAG:?}",
        json_path.display(),
        meta.format
    );
    ensure!(
        meta.version == FORMAT_VERSION,
        "{}: measurement format version {} is not supported (this build reads version {FORMAT_VERSION})",
        json_path.display(),
        meta.version
    );
    Ok(meta)
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The checks both directions share: sizes, finite data, a 0/1 mask, a geometry that matches.
fn check_consistent(meta: &MeasurementMeta, data: &[f32], mask: &[f32]) -> Result<()> {
    let count: usize = meta.shape.iter().product();
    ensure!(count > 0, "measurement shape {:?} is empty", meta.shape);
    let per = if meta.complex { 2 } else { 1 };
    ensure!(
        data.len() == count * per,
        "the data hold {} values, the shape {:?} needs {}",
        data.len(),
        meta.shape,
        count * per
    );
    ensure!(
        mask.len() == count,
        "the mask holds {} values, the shape {:?} needs {count}",
        mask.len(),
        meta.shape
    );
    if let Some(k) = data.iter().position(|v| !v.is_finite()) {
        bail!("the data hold a non-finite value (NaN or infinity) at index {k}");
    }
    ensure!(
        mask.iter().all(|&v| v == 0.0 || v == 1.0),
        "the mask must hold only 0 and 1"
    );
    match (meta.modality, &meta.ct) {
        (MeasurementModality::Ct, Some(ct)) => {
            ct.geometry.validate()?;
            ensure!(
                !meta.complex,
                "a CT sinogram is real; the sidecar says complex"
            );
            ensure!(
                meta.shape[1] == ct.geometry.n_angles() && meta.shape[2] == ct.geometry.n_det,
                "shape {:?} does not match the geometry ({} angles x {} detector bins)",
                meta.shape,
                ct.geometry.n_angles(),
                ct.geometry.n_det
            );
        }
        (MeasurementModality::Ct, None) => bail!("a CT measurement needs its \"ct\" geometry"),
        (MeasurementModality::Mri, _) => {
            ensure!(
                meta.complex,
                "MRI k-space is complex; the sidecar says real"
            );
            ensure!(
                meta.ct.is_none(),
                "an MRI measurement carries no CT geometry"
            );
            if let Some(IntensityScale { percentile, value }) =
                meta.mri.as_ref().and_then(|m| m.intensity_scale)
            {
                ensure!(
                    percentile > 0.0 && percentile <= 100.0 && value > 0.0 && value.is_finite(),
                    "intensity_scale: percentile {percentile} / value {value} (need a percentile in (0, 100] and a positive value)"
                );
            }
        }
    }
    Ok(())
}

/// A NIfTI-1 file's values as f32 in C order over `shape` (complex: interleaved), after its
/// scaling, and its stored data type.
fn read_nifti_values(path: &Path, shape: [usize; 3]) -> Result<(Vec<f32>, NiftiType)> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .with_context(|| format!("{}: cannot read as NIfTI-1", path.display()))?;
    let header = obj.header().clone();
    let dim = header
        .dim()
        .with_context(|| format!("{}: invalid dimensions", path.display()))?;
    let [s, r, c] = shape;
    let dims: Vec<usize> = dim.iter().map(|&d| d as usize).collect();
    let mut want = vec![c, r, s];
    while want.len() > dims.len() && want.last() == Some(&1) {
        want.pop();
    }
    ensure!(
        dims == want,
        "{}: dims {dims:?}, the sidecar's shape {shape:?} needs {want:?}",
        path.display()
    );
    let data_type = header
        .data_type()
        .with_context(|| format!("{}: unknown NIfTI data type", path.display()))?;
    let raw = obj.into_volume().into_raw_data();
    let big = header.endianness == nifti::Endianness::Big;
    let f32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if big {
            f32::from_be_bytes(a)
        } else {
            f32::from_le_bytes(a)
        }
    };
    let mut values: Vec<f32> = match data_type {
        NiftiType::Float32 | NiftiType::Complex64 => raw.chunks_exact(4).map(f32_at).collect(),
        NiftiType::Uint8 => raw.iter().map(|&b| f32::from(b)).collect(),
        other => bail!(
            "{}: data type {other:?} is not used by measurement files (float32, complex64, uint8 mask)",
            path.display()
        ),
    };
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    if slope != 0.0 && (slope != 1.0 || inter != 0.0) && data_type != NiftiType::Complex64 {
        for v in values.iter_mut() {
            *v = *v * slope + inter;
        }
    }
    Ok((values, data_type))
}
