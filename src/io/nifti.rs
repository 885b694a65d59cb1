//! NIfTI-1 in (`.nii`, `.nii.gz`, `.hdr`/`.img` pairs; either byte order; scl_slope/scl_inter
//! applied) and out (f32 `.nii` / `.nii.gz` with sform and qform). The nifti crate parses and
//! writes; the affine is chosen here the way nibabel's `img.affine` chooses it (sform, else
//! qform, else the scanner-less base affine), with the NIfTI-1 quaternion formulas.

use crate::io::WriteOptions;
use crate::volume::{Modality, Provenance, Volume};
use anyhow::{anyhow, bail, Context, Result};
use ndarray::ShapeBuilder;
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, ReaderOptions};
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
            "{}: not a NIfTI file: cannot read its header: {e}",
            path.display()
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
    let reader = ReaderOptions::new();
    let obj = match &image {
        Some(img) => reader.read_file_pair(path, img),
        None => reader.read_file(path),
    }
    .map_err(|e| anyhow!("{}: cannot read NIfTI: {e}", path.display()))?;
    let header = obj.header().clone();
    let dim = header
        .dim()
        .map_err(|e| anyhow!("{}: bad dim field: {e}", path.display()))?
        .to_vec();
    if dim.len() > 4 && dim[4..].iter().any(|&d| d > 1) {
        bail!(
            "{}: {}-D data (dim {:?}) is not supported: at most 4 dimensions",
            path.display(),
            dim.len(),
            dim
        );
    }
    // f64 first so scl_slope/scl_inter are applied in double precision, as nibabel does.
    let array = obj
        .into_volume()
        .into_ndarray::<f64>()
        .map_err(|e| anyhow!("{}: cannot decode voxels: {e}", path.display()))?;
    // nifti returns Fortran order (i fastest in memory, index [i, j, k, t]); the reversed axes in
    // standard layout are C order over (t, k, j, i), the Volume's layout.
    let data: Vec<f32> = array
        .reversed_axes()
        .as_standard_layout()
        .iter()
        .map(|&v| v as f32)
        .collect();
    let get = |i: usize| dim.get(i).copied().unwrap_or(1).max(1) as usize;
    let dims = [get(0), get(1), get(2), get(3)];
    let pixdim = |i: usize| {
        let p = header.pixdim[i] as f64;
        if i < 3 || p > 0.0 {
            p
        } else {
            1.0
        }
    };
    let spacing = [pixdim(1), pixdim(2), pixdim(3), pixdim(4)];
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
            rescale_slope: if header.scl_slope == 0.0 || !header.scl_slope.is_finite() {
                1.0
            } else {
                header.scl_slope as f64
            },
            rescale_intercept: if header.scl_slope == 0.0 || !header.scl_slope.is_finite() {
                0.0
            } else {
                header.scl_inter as f64
            },
            series_description: (!descrip.is_empty()).then_some(descrip),
            history: vec![format!("read NIfTI-1 {}", path.display())],
            ..Default::default()
        },
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
