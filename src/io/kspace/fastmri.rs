//! fastMRI HDF5: `kspace` (complex64 as h5py's compound {r, i}, [slices, coils, rows, cols] or
//! single-coil [slices, rows, cols]), optional `mask` (float or bool, 1-D over cols, or 2-D
//! [rows, cols]), `reconstruction_rss` / `reconstruction_esc` (float [slices, h, w]),
//! `ismrmrd_header` (XML; its reconSpace gives `recon_matrix` and `fov_mm`), and the writer.

use super::ismrmrd::{minimal_header, parse_header, read_string};
use super::{guarded, h5err, open_h5, rss, KspaceFormat, RawKspace};
use anyhow::{bail, Context, Result};
use hdf5::types::{TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::H5Type;
use hdf5_metno as hdf5;
use ndarray::{Array2, Array3, Array4, Axis};
use num_complex::Complex32;
use std::path::Path;

/// A complex number as the ISMRMRD library (and some converters) store it: {real, imag}.
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
struct RealImag {
    real: f32,
    imag: f32,
}

/// The complex layouts read: h5py's {r, i} and {real, imag}, of float32 or float64.
enum ComplexLayout {
    RI,
    RealImag,
}

fn complex_layout(t: &TypeDescriptor) -> Option<ComplexLayout> {
    let TypeDescriptor::Compound(c) = t else {
        return None;
    };
    if c.fields.len() != 2
        || !c
            .fields
            .iter()
            .all(|f| matches!(f.ty, TypeDescriptor::Float(_)))
    {
        return None;
    }
    let mut names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    match names.as_slice() {
        ["i", "r"] => Some(ComplexLayout::RI),
        ["imag", "real"] => Some(ComplexLayout::RealImag),
        _ => None,
    }
}

/// Read a fastMRI HDF5 file.
pub fn read_fastmri(path: &Path) -> Result<RawKspace> {
    guarded(path, || read_inner(path))
}

fn read_inner(path: &Path) -> Result<RawKspace> {
    let p = path.display();
    let file = open_h5(path)?;
    if !file.link_exists("kspace") {
        bail!("{p}: no `kspace` dataset (not a fastMRI file)");
    }
    let ds = file
        .dataset("kspace")
        .map_err(h5err(path, "`kspace` is not a dataset"))?;
    let shape = ds.shape();
    let dims: [usize; 4] = match *shape.as_slice() {
        [s, r, c] => [s, 1, r, c],
        [s, n, r, c] => [s, n, r, c],
        _ => bail!(
            "{p}: `kspace` has shape {shape:?}; expected [slices, coils, rows, cols] or single-coil [slices, rows, cols]"
        ),
    };
    if dims.contains(&0) {
        bail!("{p}: `kspace` is empty (shape {shape:?})");
    }
    let dtype = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5err(path, "`kspace`: unreadable type"))?;
    let layout = complex_layout(&dtype).ok_or_else(|| {
        anyhow::anyhow!("{p}: `kspace` is {dtype}, not complex (a compound of two floats {{r, i}}, as h5py writes complex64)")
    })?;
    let count: f64 = dims.iter().map(|&d| d as f64).product();
    crate::limits::check_memory(&format!("{p}: `kspace` of shape {shape:?}"), count * 8.0)?;
    let values: Vec<Complex32> = match layout {
        ComplexLayout::RI => super::read_whole::<Complex32>(&ds),
        ComplexLayout::RealImag => ds.read_raw::<RealImag>().map(|v| {
            v.into_iter()
                .map(|c| Complex32::new(c.real, c.imag))
                .collect()
        }),
    }
    .map_err(h5err(path, "cannot read `kspace` (damaged?)"))?;
    let kspace = Array4::from_shape_vec(dims, values)
        .with_context(|| format!("{p}: `kspace` holds fewer values than its shape"))?;
    let [slices, _, rows, cols] = dims;

    let mask = if file.link_exists("mask") {
        Some(read_mask(path, &file, rows, cols)?)
    } else {
        None
    };

    let mut reference = None;
    for name in ["reconstruction_rss", "reconstruction_esc"] {
        if file.link_exists(name) {
            let r = read_reference(path, &file, name)?;
            if r.dim().0 != slices {
                bail!("{p}: `{name}` has {} slices, `kspace` {slices}", r.dim().0);
            }
            reference = Some((name.to_string(), r));
            break;
        }
    }

    let (mut recon_matrix, mut fov_mm) = (None, None);
    if file.link_exists("ismrmrd_header") {
        let xml = file
            .dataset("ismrmrd_header")
            .map_err(h5err(path, "`ismrmrd_header` is not a dataset"))
            .and_then(|d| read_string(path, &d, "ismrmrd_header"))?;
        // The header only adds the recon matrix and FOV: a damaged one is a warning.
        match parse_header(&xml) {
            Ok(h) => {
                recon_matrix = Some([h.recon[0], h.recon[1]]);
                fov_mm = h.recon_fov;
            }
            Err(e) => crate::io::warn(&format!(
                "{p}: `ismrmrd_header` cannot be read ({e}); going on without the recon matrix and field of view"
            )),
        }
    }
    Ok(RawKspace {
        kspace,
        mask,
        reference,
        format: KspaceFormat::FastMri,
        recon_matrix,
        fov_mm,
        source: Some(path.to_path_buf()),
    })
}

/// `mask`: float, integer or bool; 1-D over cols (the same for every row) or 2-D [rows, cols].
fn read_mask(path: &Path, file: &hdf5::File, rows: usize, cols: usize) -> Result<Array2<f32>> {
    let p = path.display();
    let ds = file
        .dataset("mask")
        .map_err(h5err(path, "`mask` is not a dataset"))?;
    let shape = ds.shape();
    match *shape.as_slice() {
        [n] if n == cols => {}
        [r, c] if r == rows && c == cols => {}
        _ => bail!(
            "{p}: `mask` has shape {shape:?}, but `kspace` has {rows} rows x {cols} cols: expected [{cols}] (over the phase-encode axis) or [{rows}, {cols}]"
        ),
    }
    let dtype = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5err(path, "`mask`: unreadable type"))?;
    let values: Vec<f32> = match dtype {
        TypeDescriptor::Boolean => ds
            .read_raw::<bool>()
            .map(|v| v.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect()),
        TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            ds.read_raw::<f32>()
        }
        other => bail!("{p}: `mask` is {other}; expected float, integer or bool"),
    }
    .map_err(h5err(path, "cannot read `mask`"))?;
    if values.iter().any(|v| !v.is_finite()) {
        bail!("{p}: `mask` holds values that are not finite");
    }
    let m = if shape.len() == 1 {
        let line = ndarray::Array1::from(values);
        line.insert_axis(Axis(0))
            .broadcast((rows, cols))
            .map(|b| b.to_owned())
    } else {
        Array2::from_shape_vec((rows, cols), values).ok()
    };
    m.with_context(|| format!("{p}: `mask` holds fewer values than its shape"))
}

fn read_reference(path: &Path, file: &hdf5::File, name: &str) -> Result<Array3<f32>> {
    let p = path.display();
    let ds = file
        .dataset(name)
        .map_err(h5err(path, &format!("`{name}` is not a dataset")))?;
    let shape = ds.shape();
    if shape.len() != 3 {
        bail!("{p}: `{name}` has shape {shape:?}; expected [slices, h, w]");
    }
    let dtype = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5err(path, &format!("`{name}`: unreadable type")))?;
    if !matches!(dtype, TypeDescriptor::Float(_)) {
        bail!("{p}: `{name}` is {dtype}, not float");
    }
    let count: f64 = shape.iter().map(|&d| d as f64).product();
    crate::limits::check_memory(&format!("{p}: `{name}` of shape {shape:?}"), count * 4.0)?;
    let values =
        super::read_whole::<f32>(&ds).map_err(h5err(path, &format!("cannot read `{name}`")))?;
    Array3::from_shape_vec((shape[0], shape[1], shape[2]), values)
        .with_context(|| format!("{p}: `{name}` holds fewer values than its shape"))
}

/// The writer behind [`super::write_fastmri`].
pub(crate) fn write(path: &Path, k: &RawKspace, force: bool) -> Result<()> {
    let p = path.display();
    let (slices, coils, rows, cols) = k.kspace.dim();
    if slices * coils * rows * cols == 0 {
        bail!("{p}: refusing to write empty k-space ({slices} x {coils} x {rows} x {cols})");
    }
    if let Some(m) = &k.mask {
        if m.dim() != (rows, cols) {
            bail!(
                "{p}: the mask is {:?}, the k-space {rows} x {cols}",
                m.dim()
            );
        }
    }
    if let Some((name, r)) = &k.reference {
        if r.dim().0 != slices {
            bail!(
                "{p}: the reference `{name}` has {} slices, the k-space {slices}",
                r.dim().0
            );
        }
    }
    if let Some(src) = &k.source {
        crate::io::atomic::check_not_input(path, &[src.as_path()])?;
    }
    // max and norm as fastMRI defines them: of the reference volume (else of the RSS).
    let (max, norm) = {
        let computed;
        let vol = match &k.reference {
            Some((_, r)) => r,
            None => {
                computed = rss(&k.kspace, k.recon_matrix);
                &computed
            }
        };
        let max = vol.iter().fold(0f32, |a, &b| a.max(b)) as f64;
        let norm = vol
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        (max, norm)
    };
    let recon = k.recon_matrix.unwrap_or([rows, cols]);
    // Without a known FOV, 1 mm pixels (documented in docs/formats.md).
    let recon_fov = k.fov_mm.unwrap_or([recon[0] as f64, recon[1] as f64, 1.0]);
    let encoded_fov = [
        recon_fov[0] * rows as f64 / recon[0].max(1) as f64,
        recon_fov[1] * cols as f64 / recon[1].max(1) as f64,
        recon_fov[2],
    ];
    let header = minimal_header([rows, cols], recon, encoded_fov, recon_fov, slices);

    crate::io::atomic::write_file(path, force, |tmp| {
        let e = |what: &str| h5err(path, what);
        let file = hdf5::File::create(tmp).map_err(e("cannot create the HDF5 file"))?;
        // hdf5-metno speaks another ndarray version: datasets are written from flat slices.
        let kdata = k.kspace.as_standard_layout();
        let kshape: Vec<usize> = if coils == 1 {
            vec![slices, rows, cols]
        } else {
            vec![slices, coils, rows, cols]
        };
        write_flat(&file, "kspace", &kshape, kdata.as_slice().unwrap_or(&[]))
            .map_err(e("cannot write `kspace`"))?;
        if let Some(m) = &k.mask {
            let m = m.as_standard_layout();
            let flat = m.as_slice().unwrap_or(&[]);
            if flat.chunks(cols).all(|r| r == &flat[..cols]) {
                write_flat(&file, "mask", &[cols], &flat[..cols])
            } else {
                write_flat(&file, "mask", &[rows, cols], flat)
            }
            .map_err(e("cannot write `mask`"))?;
        }
        if let Some((name, r)) = &k.reference {
            let name = if name == "reconstruction_esc" {
                "reconstruction_esc"
            } else {
                "reconstruction_rss"
            };
            let (a, b, c) = r.dim();
            let r = r.as_standard_layout();
            write_flat(&file, name, &[a, b, c], r.as_slice().unwrap_or(&[]))
                .map_err(e(&format!("cannot write `{name}`")))?;
        }
        let xml = VarLenAscii::from_ascii(&header)
            .map_err(|err| anyhow::anyhow!("{p}: the XML header is not ASCII: {err}"))?;
        file.new_dataset::<VarLenAscii>()
            .create("ismrmrd_header")
            .and_then(|d| d.write_scalar(&xml))
            .map_err(e("cannot write `ismrmrd_header`"))?;
        let unknown: VarLenUnicode = "unknown"
            .parse()
            .map_err(|err| anyhow::anyhow!("{p}: {err}"))?;
        let empty: VarLenUnicode = "".parse().map_err(|err| anyhow::anyhow!("{p}: {err}"))?;
        for (name, v) in [("acquisition", &unknown), ("patient_id", &empty)] {
            file.new_attr::<VarLenUnicode>()
                .create(name)
                .and_then(|a| a.write_scalar(v))
                .map_err(e(&format!("cannot write attribute `{name}`")))?;
        }
        for (name, v) in [("max", max), ("norm", norm)] {
            file.new_attr::<f64>()
                .create(name)
                .and_then(|a| a.write_scalar(&v))
                .map_err(e(&format!("cannot write attribute `{name}`")))?;
        }
        file.flush().map_err(e("cannot flush the HDF5 file"))?;
        file.close().map_err(e("cannot close the HDF5 file"))?;
        Ok(())
    })
}

fn write_flat<T: H5Type>(
    file: &hdf5::File,
    name: &str,
    shape: &[usize],
    data: &[T],
) -> hdf5::Result<()> {
    file.new_dataset::<T>()
        .shape(shape)
        .create(name)?
        .write_raw(data)
}
