//! NIfTI-1 in (`.nii`, `.nii.gz`, `.hdr`/`.img` pairs; either byte order; scl_slope/scl_inter
//! applied) and out (f32 `.nii` / `.nii.gz` with sform and qform). The nifti crate parses and
//! writes; the affine is chosen here the way nibabel's `img.affine` chooses it (sform, else
//! qform, else the scanner-less base affine), with the NIfTI-1 quaternion formulas.

use crate::io::WriteOptions;
use crate::volume::{Modality, Provenance, Volume};
use anyhow::{anyhow, bail, Context, Result};
use ndarray::ShapeBuilder;
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiHeader, NiftiType};
use std::io::Read;
use std::path::{Path, PathBuf};

/// NIFTI_XFORM_SCANNER_ANAT: the code written for both sform and qform.
const XFORM_SCANNER_ANAT: i16 = 1;
/// xyzt_units: millimetres (2) and seconds (8).
const UNITS_MM_SEC: u8 = 2 | 8;

/// The `.img` that goes with a `.hdr` (or `.hdr.gz`).
fn image_of_pair(hdr: &Path) -> Option<PathBuf> {
    let name = hdr.file_name()?.to_string_lossy().to_string();
    let stem = name
        .strip_suffix(".hdr.gz")
        .or_else(|| name.strip_suffix(".hdr"))?;
    [".img", ".img.gz"]
        .iter()
        .map(|ext| hdr.with_file_name(format!("{stem}{ext}")))
        .find(|p| p.exists())
}

/// The first four bytes (sizeof_hdr) after gunzip: 348 is NIfTI-1, 540 NIfTI-2, in either order.
fn sizeof_hdr(path: &Path) -> Result<i32> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut head = [0u8; 4];
    let gz = path.to_string_lossy().ends_with(".gz");
    let r = if gz {
        flate2::read::GzDecoder::new(file).read_exact(&mut head)
    } else {
        let mut f = file;
        f.read_exact(&mut head)
    };
    r.map_err(|e| {
        anyhow!(
            "{}: not a NIfTI file: cannot read its header: {}",
            path.display(),
            io_words(&e)
        )
    })?;
    let (le, be) = (i32::from_le_bytes(head), i32::from_be_bytes(head));
    Ok(if le == 348 || le == 540 { le } else { be })
}

/// Read a NIfTI-1 file into a volume; voxels equal nibabel's `get_fdata()` rounded to f32.
/// The modality tag our writer puts at the start of `descrip` ("[CT] ...", "[MR] ...").
pub fn modality_from_descrip(descrip: &str) -> Modality {
    if descrip.starts_with("[CT]") {
        Modality::Ct
    } else if descrip.starts_with("[MR]") {
        Modality::Mr
    } else {
        Modality::Other
    }
}

pub fn read(path: &Path) -> Result<Volume> {
    let raw = read_raw(path)?;
    if let NiftiType::Complex64 | NiftiType::Complex128 = raw.datatype {
        bail!(
            "{}: complex voxels ({}) are not an image: for MRI k-space write a measurement file (NAME.json + NAME.nii.gz + NAME_mask.nii.gz, docs/formats.md) and pass the .json, or save the magnitude with nibabel (`np.abs(img.get_fdata(dtype=np.complex64))`)",
            path.display(),
            type_name(raw.datatype)
        );
    }
    let header = raw.header.clone();
    let dims = raw.dims4();
    let ndim = raw.ndim;
    let (slope, inter) = raw.scaling().unwrap_or((1.0, 0.0));
    let data = raw.values_f32(path)?;
    let pixdim = |i: usize| header.pixdim[i] as f64;
    // Axes the image does not have keep a unit spacing; the ones it has were checked positive.
    let spacing = std::array::from_fn(|a| {
        let p = pixdim(a + 1);
        if (a < ndim && a < 3) || (p.is_finite() && p > 0.0) {
            p
        } else {
            1.0
        }
    });
    let affine = best_affine(&header, &dims);
    let descrip = String::from_utf8_lossy(&header.descrip)
        .trim_end_matches('\0')
        .trim()
        .to_string();
    Ok(Volume {
        data,
        dims,
        spacing,
        affine,
        slice_positions: Vec::new(),
        // NIfTI has no modality field; files we (or scripts/setup.sh) write carry it as a
        // leading "[CT] " / "[MR] " tag in `descrip`. Anything else is Other: the caller (a
        // flag, or the task of a reconstruction command) decides.
        modality: modality_from_descrip(&descrip),
        provenance: Provenance {
            source_files: vec![path.display().to_string()],
            rescale_slope: slope,
            rescale_intercept: inter,
            series_description: (!descrip.is_empty()).then_some(descrip),
            history: vec![format!("read NIfTI-1 {}", path.display())],
            ..Default::default()
        },
    })
}

/// A NIfTI-1 file's header and voxel bytes, checked against each other: the data type is known
/// and its size is bitpix, the dims are positive, the voxel offset lies in the file, and the file
/// holds every voxel the dims declare. Nothing is decoded yet.
pub struct RawNifti {
    pub header: NiftiHeader,
    pub datatype: NiftiType,
    /// dim[0]: how many of `dims` the image has.
    pub ndim: usize,
    /// dim[1..=ndim].
    pub dims: Vec<usize>,
    /// The voxel bytes in the header's byte order.
    pub bytes: Vec<u8>,
}

impl RawNifti {
    /// [nx, ny, nz, nt] (missing axes 1; `read_raw` refused extents beyond the 4th).
    pub fn dims4(&self) -> [usize; 4] {
        std::array::from_fn(|a| self.dims.get(a).copied().unwrap_or(1))
    }

    /// (slope, intercept) when the header scales the stored values, as nibabel's
    /// `get_slope_inter`: a slope of 0, NaN or infinity means no scaling (None).
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let (slope, inter) = (self.header.scl_slope as f64, self.header.scl_inter as f64);
        (slope != 0.0 && slope.is_finite()).then_some((slope, inter))
    }

    /// The voxel values after scaling, as f32 in the Volume's C order over (t, k, j, i); equal to
    /// nibabel's `get_fdata()` rounded to f32.
    pub fn values_f32(self, path: &Path) -> Result<Vec<f32>> {
        let mut header = self.header.clone();
        // The nifti crate scales whenever scl_slope != 0 (NaN included); nibabel ignores a
        // non-finite slope, and so do we: the crate gets a header without one.
        if self.scaling().is_none() {
            header.scl_slope = 0.0;
            header.scl_inter = 0.0;
        }
        let volume = nifti::InMemNiftiVolume::from_reader(&self.bytes[..], &header)
            .map_err(|e| anyhow!("{}: cannot decode voxels: {e}", path.display()))?;
        // f64 first so scl_slope/scl_inter are applied in double precision, as nibabel does.
        let array = volume
            .into_ndarray::<f64>()
            .map_err(|e| anyhow!("{}: cannot decode voxels: {e}", path.display()))?;
        // nifti returns Fortran order (i fastest in memory, index [i, j, k, t]); the reversed
        // axes in standard layout are C order over (t, k, j, i), the Volume's layout.
        Ok(array
            .reversed_axes()
            .as_standard_layout()
            .iter()
            .map(|&v| v as f32)
            .collect())
    }
}

/// A reader over a file, gunzipped when its name ends in `.gz`, and the file's length when it
/// is not compressed (a bound on what it can hold).
fn open_maybe_gz(path: &Path) -> Result<(Box<dyn Read>, Option<u64>)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = file.metadata().map(|m| m.len()).ok();
    if path.to_string_lossy().ends_with(".gz") {
        Ok((
            Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file))),
            None,
        ))
    } else {
        Ok((Box::new(std::io::BufReader::new(file)), len))
    }
}

/// A data type as nibabel names it ("int16", "complex64").
pub fn type_name(t: NiftiType) -> String {
    format!("{t:?}").to_lowercase()
}

/// An I/O error in words (the nifti crate's errors print as Rust debug text).
fn io_words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the file ends early (truncated?)".into(),
        _ => e.to_string(),
    }
}

/// Read and check a NIfTI-1 header (`.nii`, `.nii.gz`, `.hdr`): everything `read_raw` checks
/// that needs no voxel data. Cheap: what a command checks before it loads a model.
pub fn check_header(path: &Path) -> Result<()> {
    let (header, image) = read_header(path)?;
    let (_, _, dims) = check_fields(path, &header)?;
    let bytes = data_bytes(path, &header, &dims)?;
    let data_path = image.as_deref().unwrap_or(path);
    let offset = vox_offset(data_path, &header, image.is_some())?;
    if !data_path.to_string_lossy().ends_with(".gz") {
        let len = std::fs::metadata(data_path)
            .with_context(|| format!("{}: cannot open", data_path.display()))?
            .len();
        check_fits(data_path, offset, bytes, len)?;
    }
    Ok(())
}

/// The header (of `path`, or of the `.hdr` of a pair) and the `.img` path of a pair.
fn read_header(path: &Path) -> Result<(NiftiHeader, Option<PathBuf>)> {
    let is_pair = {
        let n = path.to_string_lossy();
        n.ends_with(".hdr") || n.ends_with(".hdr.gz")
    };
    let image = if is_pair {
        Some(image_of_pair(path).ok_or_else(|| {
            anyhow!(
                "{}: the .img file that holds this header's voxels is missing (looked for .img and .img.gz next to it)",
                path.display()
            )
        })?)
    } else {
        None
    };
    match sizeof_hdr(path)? {
        348 => {}
        540 => bail!(
            "{}: NIfTI-2 is not supported; convert it to NIfTI-1 with nibabel: `python -c \"import nibabel as nb; i = nb.load('in.nii.gz'); nb.save(nb.Nifti1Image(i.dataobj, i.affine, i.header), 'out.nii.gz')\"`",
            path.display()
        ),
        n => bail!(
            "{}: not a NIfTI-1 file (sizeof_hdr is {n}, not 348)",
            path.display()
        ),
    }
    let (reader, _) = open_maybe_gz(path)?;
    let header = NiftiHeader::from_reader(reader).map_err(|e| match e {
        nifti::NiftiError::Io(io) => anyhow!(
            "{}: cannot read the NIfTI header: {}",
            path.display(),
            io_words(&io)
        ),
        e => anyhow!("{}: not a valid NIfTI-1 header: {e}", path.display()),
    })?;
    Ok((header, image))
}

/// The checks on header fields alone: data type vs bitpix, dims, pixdims, scaling, affine.
/// Returns the data type, dim[0] and dim[1..=dim[0]].
fn check_fields(path: &Path, h: &NiftiHeader) -> Result<(NiftiType, usize, Vec<usize>)> {
    let p = path.display();
    let datatype = h.data_type().map_err(|_| {
        anyhow!(
            "{p}: unknown NIfTI datatype code {}: the file is damaged or not NIfTI-1",
            h.datatype
        )
    })?;
    match datatype {
        NiftiType::Rgb24 | NiftiType::Rgba32 => bail!(
            "{p}: colour voxels ({}) are not supported: only grayscale images; convert to one channel first",
            type_name(datatype)
        ),
        NiftiType::Float128 | NiftiType::Complex256 => bail!(
            "{p}: datatype {} is not supported: save it as float32 or float64",
            type_name(datatype)
        ),
        _ => {}
    }
    let bits = datatype.size_of() * 8;
    if h.bitpix as i32 != bits as i32 {
        bail!(
            "{p}: the header disagrees with itself: datatype {} has {bits} bits per voxel, bitpix says {}; the file is damaged (rewrite it with nibabel, which sets bitpix from the datatype)",
            type_name(datatype),
            h.bitpix
        );
    }
    let dim: Vec<i64> = h.dim.iter().map(|&d| d as i16 as i64).collect();
    if !(1..=7).contains(&dim[0]) {
        bail!(
            "{p}: dim[0] = {} (the number of dimensions) must lie in 1..=7: the header is damaged",
            dim[0]
        );
    }
    let ndim = dim[0] as usize;
    if let Some(i) = (1..=ndim).find(|&i| dim[i] < 1) {
        bail!(
            "{p}: dim[{i}] = {} (the extent of axis {}) must be at least 1: the header is damaged",
            dim[i],
            i - 1
        );
    }
    let dims: Vec<usize> = (1..=ndim).map(|i| dim[i] as usize).collect();
    if dims.len() > 4 && dims[4..].iter().any(|&d| d > 1) {
        bail!(
            "{p}: {ndim}-D data (dims {}) is not supported: at most 4 dimensions",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" x ")
        );
    }
    for i in 1..=ndim.min(3) {
        let v = h.pixdim[i];
        if !(v.is_finite() && v > 0.0) {
            bail!(
                "{p}: pixdim[{i}] = {v} (the voxel size along axis {}) must be a positive number of mm: fix the header (nibabel: `img.header.set_zooms(...)`)",
                i - 1
            );
        }
    }
    let (slope, inter) = (h.scl_slope, h.scl_inter);
    if slope != 0.0 && slope.is_finite() && !inter.is_finite() {
        bail!("{p}: scl_slope {slope} with scl_inter {inter}: the intercept must be a finite number (nibabel refuses it too)");
    }
    let rows = [h.srow_x, h.srow_y, h.srow_z];
    if h.sform_code > 0 && rows.iter().flatten().any(|v| !v.is_finite()) {
        bail!("{p}: the sform (srow_x/y/z) holds a non-finite value: fix the header or set sform_code 0");
    }
    let q = [
        h.quatern_b,
        h.quatern_c,
        h.quatern_d,
        h.quatern_x,
        h.quatern_y,
        h.quatern_z,
    ];
    if h.sform_code <= 0 && h.qform_code > 0 && q.iter().any(|v| !v.is_finite()) {
        bail!("{p}: the qform (quatern_b/c/d, qoffset) holds a non-finite value: fix the header or set qform_code 0");
    }
    Ok((datatype, ndim, dims))
}

/// Bytes of voxel data the dims declare, refused when reading them (with the f64 and f32 copies
/// decoding makes) needs more memory than this machine has: a header is a few bytes a damaged
/// file can set to anything, and a gzip stream's length is not known before it is read.
fn data_bytes(path: &Path, h: &NiftiHeader, dims: &[usize]) -> Result<u64> {
    let size = h.data_type().map(|t| t.size_of() as u64).unwrap_or(1);
    let voxels = dims.iter().fold(1.0, |a, &d| a * d as f64);
    crate::limits::check_memory(
        &format!(
            "{}: dims {}",
            path.display(),
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" x ")
        ),
        voxels * (size as f64 + 12.0),
    )
    .map_err(|e| anyhow!("{e:#} (or the header is damaged)"))?;
    Ok(voxels as u64 * size)
}

/// Where the voxels start: vox_offset, which for a single `.nii` must lie past the 352 bytes of
/// header and extender (nibabel refuses less too).
fn vox_offset(path: &Path, h: &NiftiHeader, pair: bool) -> Result<u64> {
    let v = h.vox_offset;
    let min = if pair { 0.0 } else { 352.0 };
    if !v.is_finite() || v < min || v.fract() != 0.0 {
        bail!(
            "{}: vox_offset {v} (where the voxels start) must be a whole number of bytes, at least {min}{}: the header is damaged",
            path.display(),
            if pair { "" } else { " (past the header)" }
        );
    }
    Ok(v as u64)
}

/// The data file of `len` bytes must hold `bytes` of voxels from `offset` (vox_offset) on.
fn check_fits(data_path: &Path, offset: u64, bytes: u64, len: u64) -> Result<()> {
    if offset.saturating_add(bytes) > len {
        bail!(
            "{}: the file is {len} bytes, but its voxels start at byte {offset} (vox_offset) and the header's dims need {bytes} bytes: truncated, or the header is damaged",
            data_path.display()
        );
    }
    Ok(())
}

/// Read a NIfTI-1 file's header and voxel bytes, every size checked before anything is
/// allocated (`RawNifti`). The nifti crate's own reader is not used for the data: it ignores
/// vox_offset when there are no extensions, and panics when bitpix and the data type disagree.
pub fn read_raw(path: &Path) -> Result<RawNifti> {
    let (header, image) = read_header(path)?;
    let (datatype, ndim, dims) = check_fields(path, &header)?;
    let bytes = data_bytes(path, &header, &dims)?;
    let pair = image.is_some();
    let data_path = image.as_deref().unwrap_or(path);
    let offset = vox_offset(data_path, &header, pair)?;
    let (reader, len) = open_maybe_gz(data_path)?;
    if let Some(len) = len {
        check_fits(data_path, offset, bytes, len)?;
    }
    let mut reader = reader;
    // A single file's stream is read from its start: skip the header and extensions too.
    let skipped = std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())
        .map_err(|e| anyhow!("{}: cannot read: {}", data_path.display(), io_words(&e)))?;
    let mut data = Vec::new();
    data.try_reserve_exact(bytes as usize).map_err(|_| {
        anyhow!(
            "{}: not enough memory for the voxel data ({})",
            path.display(),
            crate::limits::human_bytes(bytes as f64)
        )
    })?;
    let got = if skipped == offset {
        reader.take(bytes).read_to_end(&mut data).map_err(|e| {
            anyhow!(
                "{}: cannot read the voxel data: {}",
                data_path.display(),
                io_words(&e)
            )
        })?
    } else {
        0
    };
    if (got as u64) < bytes {
        bail!(
            "{}: truncated: the voxels start at byte {offset} (vox_offset) and the header's dims need {bytes} bytes of them, but the file ends after {}",
            data_path.display(),
            if skipped < offset { format!("{skipped} bytes") } else { format!("{got} bytes of voxel data") }
        );
    }
    Ok(RawNifti {
        header,
        datatype,
        ndim,
        dims,
        bytes: data,
    })
}

/// nibabel's `get_best_affine`: sform when its code is set, else qform, else the base affine.
pub fn best_affine(h: &NiftiHeader, dims: &[usize; 4]) -> [[f64; 4]; 4] {
    if h.sform_code > 0 {
        let mut a = [[0.0; 4]; 4];
        for (r, row) in [h.srow_x, h.srow_y, h.srow_z].iter().enumerate() {
            for c in 0..4 {
                a[r][c] = row[c] as f64;
            }
        }
        a[3][3] = 1.0;
        a
    } else if h.qform_code > 0 {
        qform_affine(h)
    } else {
        // ANALYZE-style: x flipped, centred on the volume (nibabel's shape_zoom_affine).
        let z = [h.pixdim[1] as f64, h.pixdim[2] as f64, h.pixdim[3] as f64];
        let mut a = [[0.0; 4]; 4];
        let sign = [-1.0, 1.0, 1.0];
        for i in 0..3 {
            a[i][i] = sign[i] * z[i];
            a[i][3] = -(dims[i] as f64 - 1.0) / 2.0 * sign[i] * z[i];
        }
        a[3][3] = 1.0;
        a
    }
}

/// The qform affine: rotation from the quaternion (b, c, d), a = sqrt(1 - b^2 - c^2 - d^2),
/// columns scaled by pixdim and qfac (NIfTI-1 standard, method 2).
pub fn qform_affine(h: &NiftiHeader) -> [[f64; 4]; 4] {
    let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
    let w2 = 1.0 - (b * b + c * c + d * d);
    // Rounding in the stored f32 may push w2 slightly negative: treat as 0 (nibabel does too).
    let a = if w2 < 0.0 { 0.0 } else { w2.sqrt() };
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let zooms = [
        h.pixdim[1] as f64,
        h.pixdim[2] as f64,
        h.pixdim[3] as f64 * qfac,
    ];
    let mut m = [[0.0; 4]; 4];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = r[i][j] * zooms[j];
        }
    }
    m[0][3] = h.quatern_x as f64;
    m[1][3] = h.quatern_y as f64;
    m[2][3] = h.quatern_z as f64;
    m[3][3] = 1.0;
    m
}

/// Quaternion (b, c, d) and qfac of the rotation part of `a` (NIfTI-1 `mat44_to_quatern`).
fn affine_to_quaternion(a: &[[f64; 4]; 4]) -> ([f64; 3], f64) {
    let mut r = [[0.0; 3]; 3];
    for j in 0..3 {
        let n = (0..3).map(|i| a[i][j] * a[i][j]).sum::<f64>().sqrt();
        let n = if n > 0.0 { n } else { 1.0 };
        for i in 0..3 {
            r[i][j] = a[i][j] / n;
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
        -1.0
    } else {
        1.0
    };
    let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2]);
    let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2]);
    let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2]);
    let trace = r11 + r22 + r33 + 1.0;
    let (mut qa, mut qb, mut qc, mut qd);
    if trace > 0.5 {
        qa = 0.5 * trace.sqrt();
        qb = 0.25 * (r32 - r23) / qa;
        qc = 0.25 * (r13 - r31) / qa;
        qd = 0.25 * (r21 - r12) / qa;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            qb = 0.5 * xd.sqrt();
            qc = 0.25 * (r12 + r21) / qb;
            qd = 0.25 * (r13 + r31) / qb;
            qa = 0.25 * (r32 - r23) / qb;
        } else if yd > 1.0 {
            qc = 0.5 * yd.sqrt();
            qb = 0.25 * (r12 + r21) / qc;
            qd = 0.25 * (r23 + r32) / qc;
            qa = 0.25 * (r13 - r31) / qc;
        } else {
            qd = 0.5 * zd.sqrt();
            qb = 0.25 * (r13 + r31) / qd;
            qc = 0.25 * (r23 + r32) / qd;
            qa = 0.25 * (r21 - r12) / qd;
        }
        if qa < 0.0 {
            qb = -qb;
            qc = -qc;
            qd = -qd;
            qa = -qa;
        }
    }
    let _ = qa;
    ([qb, qc, qd], qfac)
}

/// Write `vol` as f32 NIfTI-1 (`.nii`, or gzip for `.nii.gz`), sform and qform from the affine.
pub fn write(vol: &Volume, path: &Path, opts: &WriteOptions) -> Result<()> {
    let [nx, ny, nz, nt] = vol.dims;
    let mut h = NiftiHeader::default();
    let a = &vol.affine;
    h.srow_x = a[0].map(|v| v as f32);
    h.srow_y = a[1].map(|v| v as f32);
    h.srow_z = a[2].map(|v| v as f32);
    let ([qb, qc, qd], qfac) = affine_to_quaternion(a);
    h.quatern_b = qb as f32;
    h.quatern_c = qc as f32;
    h.quatern_d = qd as f32;
    h.quatern_x = a[0][3] as f32;
    h.quatern_y = a[1][3] as f32;
    h.quatern_z = a[2][3] as f32;
    h.sform_code = XFORM_SCANNER_ANAT;
    h.qform_code = XFORM_SCANNER_ANAT;
    h.pixdim = [
        qfac as f32,
        vol.spacing[0] as f32,
        vol.spacing[1] as f32,
        vol.spacing[2] as f32,
        vol.spacing[3] as f32,
        1.0,
        1.0,
        1.0,
    ];
    h.xyzt_units = UNITS_MM_SEC;
    let descrip = opts
        .series_description
        .clone()
        .or_else(|| vol.provenance.series_description.clone())
        .unwrap_or_else(|| format!("scorerecon {}", crate::version()));
    let descrip = match vol.modality {
        Modality::Ct | Modality::Mr if modality_from_descrip(&descrip) != vol.modality => {
            format!("[{}] {descrip}", vol.modality.dicom_code())
        }
        _ => descrip,
    };
    let mut bytes: Vec<u8> = descrip.bytes().filter(|b| b.is_ascii()).take(79).collect();
    bytes.resize(80, 0);
    h.descrip = bytes;
    // Fortran order [i, j, k(, t)]: our C order over (t, k, j, i) is exactly that memory.
    let shape: Vec<usize> = if nt > 1 {
        vec![nx, ny, nz, nt]
    } else {
        vec![nx, ny, nz]
    };
    let array = ndarray::ArrayView::from_shape(ndarray::IxDyn(&shape).f(), &vol.data)
        .map_err(|e| anyhow!("{}: volume shape {:?}: {e}", path.display(), vol.dims))?;
    crate::io::atomic::write_file(path, opts.force, |tmp| {
        WriterOptions::new(tmp)
            .reference_header(&h)
            .write_nifti(&array)
            .map_err(|e| anyhow!("{}: cannot write NIfTI: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternion_round_trip_with_flip() {
        // An oblique rotation with a left-handed (qfac = -1) third axis.
        let (t, s) = (0.3f64, [0.9, 1.1, 2.5]);
        let (c, sn) = (t.cos(), t.sin());
        let rot = [[c, -sn, 0.0], [sn, c, 0.0], [0.0, 0.0, -1.0]];
        let mut a = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] = rot[i][j] * s[j];
            }
        }
        a[0][3] = 10.0;
        a[3][3] = 1.0;
        let ([b, cq, d], qfac) = affine_to_quaternion(&a);
        assert_eq!(qfac, -1.0);
        let h = NiftiHeader {
            quatern_b: b as f32,
            quatern_c: cq as f32,
            quatern_d: d as f32,
            quatern_x: 10.0,
            pixdim: [qfac as f32, 0.9, 1.1, 2.5, 1.0, 1.0, 1.0, 1.0],
            ..Default::default()
        };
        let back = qform_affine(&h);
        for i in 0..4 {
            for j in 0..4 {
                assert!((back[i][j] - a[i][j]).abs() < 1e-6, "{back:?} vs {a:?}");
            }
        }
    }
}
