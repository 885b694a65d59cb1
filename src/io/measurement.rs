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
//! readable by anything. A user's own data may instead be NRRD (`.nrrd`, `.nhdr`) or headerless
//! little-endian float32 (`.raw`, `.f32`, C order over `shape`): `data_file` and `mask_file` are
//! read by their names (`read_values`). Writers go through `io::atomic`: the data and mask first, the sidecar
//! last, so a sidecar on disk always names complete files.

use super::atomic;
use crate::ops::ct::Geometry;
use crate::simulate::CtTask;
use anyhow::{bail, ensure, Context, Result};
use ndarray::{Array3, ShapeBuilder};
use nifti::{NiftiHeader, NiftiType};
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
    let data_path = inside_folder(json_path, "data_file", &meta.data_file)?;
    let mask_path = inside_folder(json_path, "mask_file", &meta.mask_file)?;
    let data = read_values(
        &data_path,
        meta.shape,
        Role::Data {
            complex: meta.complex,
        },
    )?;
    let mask = read_values(&mask_path, meta.shape, Role::Mask)?;
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
    check_fields(&meta).with_context(|| format!("{}", json_path.display()))?;
    Ok(meta)
}

/// A data path a sidecar names, which must be a plain file name or a relative path that stays
/// inside the sidecar's folder (after symlinks): a sidecar from elsewhere must not make us open
/// `/etc/hostname` or `../../secret`.
fn inside_folder(json_path: &Path, field: &str, name: &str) -> Result<PathBuf> {
    let dir = match json_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let rel = Path::new(name);
    let plain = !name.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    ensure!(
        plain,
        "{}: {field} {name:?} must name a file inside the measurement's folder (no absolute path, no \"..\"): move the file next to the sidecar and give its name",
        json_path.display()
    );
    let path = dir.join(rel);
    if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize()) {
        ensure!(
            real.starts_with(&root),
            "{}: {field} {name:?} is a symbolic link out of the measurement's folder (to {}): copy the file into the folder",
            json_path.display(),
            real.display()
        );
    }
    Ok(path)
}

/// Every sidecar field in range, before any data file is opened (and before a model is
/// loaded): sizes bounded by memory, counts positive, physical quantities finite and positive.
fn check_fields(meta: &MeasurementMeta) -> Result<()> {
    let [s, r, c] = meta.shape;
    ensure!(
        s >= 1 && r >= 1 && c >= 1,
        "shape {:?}: every extent must be at least 1",
        meta.shape
    );
    let per = if meta.complex { 8.0 } else { 4.0 };
    // The data, the mask and a few working copies of each on the way in.
    crate::limits::check_memory(
        &format!("shape {:?}", meta.shape),
        s as f64 * r as f64 * c as f64 * (per + 4.0) * 4.0,
    )?;
    ensure!(
        meta.slices.len() == s,
        "slices lists {} source slice(s), the shape {:?} has {s}",
        meta.slices.len(),
        meta.shape
    );
    let finite_pos = |v: f64| v.is_finite() && v > 0.0;
    if let Some(ct) = &meta.ct {
        let g = &ct.geometry;
        g.validate()?;
        crate::limits::check_memory(
            &format!("ct.geometry.image_size {}", g.image_size),
            g.image_size as f64 * g.image_size as f64 * 4.0 * 16.0,
        )?;
        ensure!(
            g.n_det <= 8 * g.image_size.max(1),
            "ct.geometry.n_det {}: more than 8 bins per image pixel ({}): the sidecar is damaged",
            g.n_det,
            g.image_size
        );
        ensure!(
            finite_pos(ct.pixel_spacing_mm),
            "ct.pixel_spacing_mm {}: must be a positive number of mm",
            ct.pixel_spacing_mm
        );
        if let Some(p) = ct.photons {
            ensure!(
                p.is_finite() && p >= 1.0,
                "ct.photons {p}: the incident photon count must be at least 1"
            );
        }
        let n_angles = g.angles_deg.len();
        if let Some(rows) = &ct.rows {
            ensure!(!rows.is_empty(), "ct.rows is empty: no angle was measured");
            if let Some(bad) = rows.iter().find(|&&k| k >= n_angles) {
                bail!("ct.rows holds angle index {bad}, but the geometry has {n_angles} angles (indices 0..{n_angles})");
            }
        }
        match ct.task {
            CtTask::SparseView { views } => ensure!(
                views >= 1 && views <= n_angles,
                "ct.task sparse-view: views {views}: must lie in 1..={n_angles} (the geometry's angles)"
            ),
            CtTask::LimitedAngle { wedge_deg, start_deg } => {
                let arc = g.arc_deg();
                ensure!(
                    wedge_deg.is_finite() && wedge_deg > 0.0 && wedge_deg <= arc + 1e-9 && start_deg.is_finite(),
                    "ct.task limited-angle: wedge {wedge_deg} from {start_deg} degrees: the wedge must lie in (0, {arc:.2}] (the {} scan's arc)",
                    if g.fan.is_some() { "fan-beam" } else { "parallel-beam" }
                )
            }
            CtTask::Mar { threshold_hu, dilation } => ensure!(
                threshold_hu.is_finite() && dilation <= 64,
                "ct.task mar: threshold {threshold_hu} HU, dilation {dilation}: need a finite threshold and a dilation of at most 64 pixels"
            ),
        }
        // The data's extents against the geometry, before the data file is opened.
        ensure!(
            !meta.complex,
            "a CT sinogram is real; the sidecar says complex"
        );
        ensure!(
            r == n_angles && c == g.n_det,
            "shape {:?} ({s} slices x {r} angle rows x {c} bins) does not match the geometry's {n_angles} angles x {} detector bins",
            meta.shape,
            g.n_det
        );
    }
    if let Some(m) = &meta.mri {
        if let Some(a) = m.acceleration {
            ensure!(
                a.is_finite() && a >= 1.0,
                "mri.acceleration {a}: must be at least 1"
            );
        }
        if let Some(f) = m.center_fraction {
            ensure!(
                f.is_finite() && f > 0.0 && f <= 1.0,
                "mri.center_fraction {f}: must lie in (0, 1]"
            );
        }
        if let Some(d) = m.snr_db {
            ensure!(
                d.is_finite(),
                "mri.snr_db {d}: must be a finite number of dB"
            );
        }
        if let Some(p) = m.pixel_spacing_mm {
            ensure!(
                p.iter().all(|&v| finite_pos(v)),
                "mri.pixel_spacing_mm {p:?}: must be positive numbers of mm"
            );
        }
    }
    Ok(())
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
    ensure!(
        mask.contains(&1.0),
        "the mask is all zero: nothing was measured"
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

/// How a measurement's data or mask file is stored, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataFormat {
    /// `.nii`, `.nii.gz` (and any name not below: the NIfTI reader says what it is not).
    Nifti,
    /// `.nrrd`, `.nhdr` (through `io::nrrd`).
    Nrrd,
    /// `.raw`, `.f32`: little-endian float32, C order over the sidecar's `shape`, no header.
    RawF32,
}

impl DataFormat {
    fn of(path: &Path) -> DataFormat {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
            DataFormat::Nrrd
        } else if name.ends_with(".raw") || name.ends_with(".f32") {
            DataFormat::RawF32
        } else {
            DataFormat::Nifti
        }
    }
}

/// What a file holds: the data (complex or real) or the mask.
#[derive(Debug, Clone, Copy)]
enum Role {
    Data { complex: bool },
    Mask,
}

/// The values of a data or mask file as f32 in C order over `shape` (complex data: interleaved
/// re, im), whichever format its name says (`DataFormat`), with the format's own checks: NIfTI
/// dims and data type (float32, complex64 when complex; a mask may be uint8), NRRD sizes, a raw
/// file's exact byte count.
fn read_values(path: &Path, shape: [usize; 3], role: Role) -> Result<Vec<f32>> {
    let [s, r, c] = shape;
    let complex = matches!(role, Role::Data { complex: true });
    match DataFormat::of(path) {
        DataFormat::Nifti => {
            let (values, data_type) = read_nifti_values(path, shape)?;
            if let Role::Data { complex } = role {
                let expected = if complex {
                    NiftiType::Complex64
                } else {
                    NiftiType::Float32
                };
                ensure!(
                    data_type == expected,
                    "{}: data type {}, the sidecar says {} (\"complex\": {complex})",
                    path.display(),
                    super::nifti::type_name(data_type),
                    super::nifti::type_name(expected),
                );
            }
            Ok(values)
        }
        DataFormat::Nrrd => {
            ensure!(
                !complex,
                "{}: complex k-space is read from NIfTI complex64 or raw float32 (re, im) pairs; NRRD has no complex type",
                path.display()
            );
            super::nrrd::read_samples(path, &[c, r, s])
        }
        DataFormat::RawF32 => read_raw_f32(path, s * r * c * if complex { 2 } else { 1 }, shape),
    }
}

/// `count` little-endian float32 values from a headerless file, which must hold exactly that
/// many bytes (checked before it is read).
fn read_raw_f32(path: &Path, count: usize, shape: [usize; 3]) -> Result<Vec<f32>> {
    let need = count as u64 * 4;
    let mismatch = |have: u64| {
        anyhow::anyhow!(
            "{}: {have} bytes, but raw float32 data of the sidecar's shape {shape:?} need exactly {need} ({count} little-endian float32 values); the file is truncated or the shape is wrong",
            path.display()
        )
    };
    let have = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read the raw data", path.display()))?
        .len();
    if have != need {
        return Err(mismatch(have));
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the raw data", path.display()))?;
    if bytes.len() as u64 != need {
        return Err(mismatch(bytes.len() as u64));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A NIfTI-1 file's values as f32 in C order over `shape` (complex: interleaved), after its
/// scaling, and its stored data type.
fn read_nifti_values(path: &Path, shape: [usize; 3]) -> Result<(Vec<f32>, NiftiType)> {
    let raw = super::nifti::read_raw(path)?;
    let [s, r, c] = shape;
    let dims = raw.dims.clone();
    let mut want = vec![c, r, s];
    while want.len() > dims.len() && want.last() == Some(&1) {
        want.pop();
    }
    ensure!(
        dims == want,
        "{}: dims {dims:?}, the sidecar's shape {shape:?} needs {want:?}",
        path.display()
    );
    let data_type = raw.datatype;
    let header = raw.header;
    let raw = raw.bytes;
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
            "{}: data type {} is not used by measurement files (float32, complex64, uint8 mask)",
            path.display(),
            super::nifti::type_name(other)
        ),
    };
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    // As nibabel: a zero or non-finite slope means the values are not scaled.
    if slope != 0.0
        && slope.is_finite()
        && (slope != 1.0 || inter != 0.0)
        && data_type != NiftiType::Complex64
    {
        for v in values.iter_mut() {
            *v = *v * slope + inter;
        }
    }
    Ok((values, data_type))
}
