//! Raw multi-coil k-space in and out: fastMRI HDF5 and ISMRMRD HDF5 (`fastmri.rs`,
//! `ismrmrd.rs`), Siemens twix (`twix.rs`), and the fastMRI-style writer.
//!
//! Every reader returns a [`RawKspace`] in fastMRI's layout: `[slices, coils, rows, cols]`,
//! readout along rows, phase encoding along cols, centred so that coil c's image is
//! `fftshift(ifft2(ifftshift(k), norm="ortho"))` (fastMRI's `ifft2c`). Layouts, what is refused,
//! and the writer: docs/formats.md, "Raw k-space".

pub mod fastmri;
pub mod ismrmrd;
pub mod twix;

use anyhow::{anyhow, bail, Context, Result};
use ndarray::{Array2, Array3, Array4, ArrayView2};
use num_complex::Complex32;
use rayon::prelude::*;
use rustfft::FftPlanner;
use std::path::{Path, PathBuf};

/// Which kind of file a [`RawKspace`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KspaceFormat {
    FastMri,
    Ismrmrd,
    Twix,
}

impl std::fmt::Display for KspaceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KspaceFormat::FastMri => "fastMRI HDF5",
            KspaceFormat::Ismrmrd => "ISMRMRD HDF5",
            KspaceFormat::Twix => "Siemens twix",
        })
    }
}

/// Raw k-space of one scan, whatever file it came from.
#[derive(Debug, Clone)]
pub struct RawKspace {
    /// [slices, coils, rows, cols] complex64, centred k-space (DC at index (rows/2, cols/2)) so
    /// that coil c's image is the centred orthonormal inverse FFT,
    /// fftshift(ifft2(ifftshift(k), norm="ortho")) — fastMRI's `ifft2c`. Readout along rows,
    /// phase encoding along cols (the last axis), as fastMRI stores it; a single-coil fastMRI
    /// file ([slices, rows, cols]) gives coils = 1. Readers of ISMRMRD/twix remove readout
    /// oversampling.
    pub kspace: Array4<Complex32>,
    /// [rows, cols], 1.0 = acquired, shared by every slice and coil; None = fully sampled.
    pub mask: Option<Array2<f32>>,
    /// A reference image the file carries, with its dataset name: fastMRI `reconstruction_rss`
    /// (or `reconstruction_esc`), [slices, h, w].
    pub reference: Option<(String, Array3<f32>)>,
    pub format: KspaceFormat,
    /// reconSpace matrix [rows, cols] from the ISMRMRD XML header where given (fastMRI's RSS is
    /// cropped to it).
    pub recon_matrix: Option<[usize; 2]>,
    /// Field of view in mm [rows, cols, slice thickness] from the header's reconSpace where given.
    pub fov_mm: Option<[f64; 3]>,
    /// The file this was read from (None when made in memory): `write_fastmri` never writes
    /// there, `--force` or not.
    pub source: Option<PathBuf>,
}

/// Whether `path` names a raw k-space file by its extension: `.h5`, `.hdf5` (fastMRI, ISMRMRD) or
/// `.dat` (Siemens twix), case-insensitive.
pub fn is_kspace_file(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| e == "h5" || e == "hdf5" || e == "dat")
}

/// Read raw k-space: `.dat` -> Siemens twix; `.h5`/`.hdf5` -> fastMRI when a `kspace` dataset
/// sits at the root, ISMRMRD when `/dataset/data` exists. Every error names the file.
pub fn read_kspace(path: &Path) -> Result<RawKspace> {
    if !path.is_file() {
        if path.exists() {
            bail!("{}: is a folder, not a raw k-space file", path.display());
        }
        bail!("{}: no such file", path.display());
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "dat" => twix::read_twix(path),
        "h5" | "hdf5" => guarded(path, || {
            let file = open_h5(path)?;
            if file.link_exists("kspace") {
                drop(file);
                fastmri::read_fastmri(path)
            } else if file.link_exists("dataset")
                && file.group("dataset").is_ok_and(|g| g.link_exists("data"))
            {
                drop(file);
                ismrmrd::read_ismrmrd(path)
            } else {
                let names = file.member_names().unwrap_or_default();
                bail!(
                    "{}: an HDF5 file with neither a `kspace` dataset at its root (fastMRI) nor `/dataset/data` (ISMRMRD); it holds {}",
                    path.display(),
                    if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
                )
            }
        }),
        _ => bail!(
            "{}: not a raw k-space file name; expected .h5 or .hdf5 (fastMRI, ISMRMRD) or .dat (Siemens twix)",
            path.display()
        ),
    }
}

/// Run a reader, turning a panic inside it (a library's assertion on a damaged file) into an
/// error that names the file, so no input can abort the program.
pub(crate) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            bail!(
                "{}: the HDF5 reader failed on this file ({msg})",
                path.display()
            )
        }
    }
}

/// HDF5's file signature, at offset 0 or (after a user block) 512, 1024, 2048, ...
const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Open an HDF5 file for reading, with an error that says what is wrong: not HDF5 at all, or
/// damaged (a truncated file fails here: its end lies before the end HDF5 recorded).
pub(crate) fn open_h5(path: &Path) -> Result<hdf5_metno::File> {
    if !has_hdf5_signature(path)? {
        bail!(
            "{}: not an HDF5 file (no HDF5 signature at its start)",
            path.display()
        );
    }
    hdf5_metno::File::open(path).map_err(|e| {
        anyhow!(
            "{}: cannot open this HDF5 file; damaged or truncated? ({e})",
            path.display()
        )
    })
}

fn has_hdf5_signature(path: &Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut offset = 0u64;
    loop {
        if offset + 8 > len {
            return Ok(false);
        }
        let mut buf = [0u8; 8];
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if &buf == HDF5_SIGNATURE {
            return Ok(true);
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
}

/// An HDF5 error as an anyhow error naming the file and what was being done.
pub(crate) fn h5err(path: &Path, what: &str) -> impl FnOnce(hdf5_metno::Error) -> anyhow::Error {
    let p = path.display().to_string();
    let what = what.to_string();
    move |e| anyhow!("{p}: {what}: {e}")
}

/// Read a whole dataset as `T` into a buffer of our own that is advised for transparent huge
/// pages before HDF5 fills it: the page faults of a fresh `Vec` cost 3x the read itself for a
/// fastMRI-sized file (docs/benchmarks.md, "Raw k-space reading"). On any failure the ordinary
/// `read_raw` runs instead, so its error carries HDF5's message.
pub(crate) fn read_whole<T: hdf5_metno::H5Type>(
    ds: &hdf5_metno::Dataset,
) -> hdf5_metno::Result<Vec<T>> {
    let n = ds.size();
    let Ok(mem) = hdf5_metno::Datatype::from_type::<T>() else {
        return ds.read_raw::<T>();
    };
    let convertible = ds.dtype().ok().and_then(|t| t.conv_path(&mem)).is_some();
    if n == 0 || !convertible {
        return ds.read_raw::<T>();
    }
    let mut buf: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let p = buf.as_mut_ptr() as usize;
        let start = p.div_ceil(PAGE) * PAGE;
        let end = (p + bytes) / PAGE * PAGE;
        if end > start {
            // SAFETY: advice on pages inside our own allocation; failure is harmless.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    // SAFETY: `buf` has room for the `n` elements of type `T` (whose HDF5 memory type is `mem`)
    // that H5Dread writes over the whole file and memory space; they are only exposed after
    // H5Dread reported success. The library lock is held as for every hdf5-metno call.
    let status = hdf5_metno::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dread(
            ds.id(),
            mem.id(),
            hdf5_sys::h5s::H5S_ALL,
            hdf5_sys::h5s::H5S_ALL,
            hdf5_sys::h5p::H5P_DEFAULT,
            buf.as_mut_ptr().cast(),
        )
    });
    if status < 0 {
        return ds.read_raw::<T>();
    }
    // SAFETY: H5Dread filled all `n` elements.
    unsafe { buf.set_len(n) };
    Ok(buf)
}

/// fastMRI's definition of the root-sum-of-squares image: sqrt(sum_c |ifft2c(k_c)|^2),
/// centre-cropped to `crop` ([rows, cols]) when given, as fastMRI's `center_crop` does (start
/// `(n - crop) / 2`); a crop larger than the image is clamped to it. f32 [slices, h, w].
pub fn rss(kspace: &Array4<Complex32>, crop: Option<[usize; 2]>) -> Array3<f32> {
    let (s, c, rows, cols) = kspace.dim();
    let [h, w] = crop.map_or([rows, cols], |[h, w]| [h.min(rows), w.min(cols)]);
    let (r0, c0) = ((rows - h) / 2, (cols - w) / 2);
    let slices: Vec<Array2<f32>> = (0..s)
        .into_par_iter()
        .map(|si| {
            let mut acc = Array2::<f32>::zeros((h, w));
            for ci in 0..c {
                let img = ifft2c(kspace.slice(ndarray::s![si, ci, .., ..]));
                for ((i, j), a) in acc.indexed_iter_mut() {
                    *a += img[[r0 + i, c0 + j]].norm_sqr();
                }
            }
            acc.mapv_inplace(f32::sqrt);
            acc
        })
        .collect();
    let mut out = Array3::<f32>::zeros((s, h, w));
    for (si, a) in slices.into_iter().enumerate() {
        out.slice_mut(ndarray::s![si, .., ..]).assign(&a);
    }
    out
}

/// fastMRI's `ifft2c`: fftshift(ifft2(ifftshift(k), norm="ortho")) over both axes.
pub fn ifft2c(k: ArrayView2<Complex32>) -> Array2<Complex32> {
    let mut a = k.to_owned();
    let (rows, cols) = a.dim();
    let mut planner = FftPlanner::<f32>::new();
    for mut row in a.rows_mut() {
        let mut v: Vec<Complex32> = row.iter().copied().collect();
        centered_fft(&mut planner, &mut v, true);
        row.iter_mut().zip(v).for_each(|(d, s)| *d = s);
    }
    let mut col = vec![Complex32::default(); rows];
    for j in 0..cols {
        for i in 0..rows {
            col[i] = a[[i, j]];
        }
        centered_fft(&mut planner, &mut col, true);
        for i in 0..rows {
            a[[i, j]] = col[i];
        }
    }
    a
}

/// The centred orthonormal 1-D FFT in place: fftshift(fft(ifftshift(x), norm="ortho")), or with
/// `inverse` the ifft. Shared by the RSS and the readers' oversampling removal.
pub(crate) fn centered_fft(planner: &mut FftPlanner<f32>, x: &mut [Complex32], inverse: bool) {
    let n = x.len();
    if n == 0 {
        return;
    }
    // ifftshift: out[i] = x[(i + n/2) % n]
    x.rotate_left(n / 2);
    let fft = if inverse {
        planner.plan_fft_inverse(n)
    } else {
        planner.plan_fft_forward(n)
    };
    fft.process(x);
    // fftshift: out[i] = x[(i + n - n/2) % n]
    x.rotate_left(n - n / 2);
    let scale = 1.0 / (n as f32).sqrt();
    x.iter_mut().for_each(|v| *v *= scale);
}

/// One readout without its oversampling: to image space, the centre `keep` samples (from
/// `n/2 - keep/2`, so the centre stays at the centre), back to k-space; orthonormal and centred.
/// `line` is left in image space. Shared by the ISMRMRD and twix readers.
pub(crate) fn crop_readout(
    planner: &mut FftPlanner<f32>,
    line: &mut [Complex32],
    keep: usize,
) -> Vec<Complex32> {
    centered_fft(planner, line, true);
    let start = line.len() / 2 - keep / 2;
    let mut kept = line[start..start + keep].to_vec();
    centered_fft(planner, &mut kept, false);
    kept
}

/// Remove readout oversampling: each readout (a line along rows) goes to image space, keeps its
/// centre `keep` samples (from `rows/2 - keep/2`, so the centre stays at the centre) and comes
/// back, orthonormal and centred, as twixtools and ismrmrd-python-tools do.
pub(crate) fn remove_readout_oversampling(k: &Array4<Complex32>, keep: usize) -> Array4<Complex32> {
    let (s, c, rows, cols) = k.dim();
    if keep >= rows {
        return k.clone();
    }
    let slices: Vec<ndarray::Array3<Complex32>> = (0..s)
        .into_par_iter()
        .map(|si| {
            let mut o = ndarray::Array3::<Complex32>::zeros((c, keep, cols));
            let mut planner = FftPlanner::<f32>::new();
            let mut line = vec![Complex32::default(); rows];
            for ci in 0..c {
                for j in 0..cols {
                    for r in 0..rows {
                        line[r] = k[[si, ci, r, j]];
                    }
                    let kept = crop_readout(&mut planner, &mut line, keep);
                    for (r, v) in kept.into_iter().enumerate() {
                        o[[ci, r, j]] = v;
                    }
                }
            }
            o
        })
        .collect();
    let mut out = Array4::<Complex32>::zeros((s, c, keep, cols));
    for (si, o) in slices.into_iter().enumerate() {
        out.index_axis_mut(ndarray::Axis(0), si).assign(&o);
    }
    out
}

/// Write a fastMRI-style file: `kspace` (complex64 [slices, coils, rows, cols], or [slices, rows,
/// cols] when coils == 1), `mask` (1-D float32 over cols when the mask is constant over rows,
/// else 2-D), the reference as `reconstruction_rss` (`reconstruction_esc` when that is its name),
/// `ismrmrd_header` (a minimal valid ISMRMRD XML with encodedSpace/reconSpace matrix and FOV),
/// root attributes `acquisition`, `max`, `norm`, `patient_id`. Atomic (temporary file in the same
/// folder + rename), refuses to overwrite unless `force`, and never writes at `k.source`.
pub fn write_fastmri(path: &Path, k: &RawKspace, force: bool) -> Result<()> {
    fastmri::write(path, k, force)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centered_fft_round_trips_and_puts_dc_at_the_centre() {
        let mut planner = FftPlanner::<f32>::new();
        for n in [1usize, 4, 5, 8] {
            // A constant image's k-space is a spike at n/2.
            let mut x = vec![Complex32::new(1.0, 0.0); n];
            centered_fft(&mut planner, &mut x, false);
            for (i, v) in x.iter().enumerate() {
                let want = if i == n / 2 { (n as f32).sqrt() } else { 0.0 };
                assert!(
                    (v.re - want).abs() < 1e-5 && v.im.abs() < 1e-5,
                    "{n} {i} {v}"
                );
            }
            centered_fft(&mut planner, &mut x, true);
            assert!(x
                .iter()
                .all(|v| (v.re - 1.0).abs() < 1e-5 && v.im.abs() < 1e-5));
        }
    }

    #[test]
    fn rss_of_a_centre_spike_is_flat() {
        let mut k = Array4::<Complex32>::zeros((1, 2, 4, 6));
        k[[0, 0, 2, 3]] = Complex32::new(3.0, 0.0);
        k[[0, 1, 2, 3]] = Complex32::new(0.0, 4.0);
        let r = rss(&k, Some([2, 10]));
        assert_eq!(r.dim(), (1, 2, 6));
        let want = 5.0 / (24f32).sqrt();
        assert!(r.iter().all(|v| (v - want).abs() < 1e-6), "{r}");
    }

    #[test]
    fn kspace_names() {
        assert!(is_kspace_file(Path::new("a/b.H5")));
        assert!(is_kspace_file(Path::new("b.hdf5")));
        assert!(is_kspace_file(Path::new("meas.DAT")));
        assert!(!is_kspace_file(Path::new("b.nii.gz")));
        assert!(!is_kspace_file(Path::new("h5")));
    }

    #[test]
    fn oversampling_removal_keeps_the_image_centre() {
        // A centred image-space point source: its k-space is a flat phase ramp, and after
        // cropping the readout FOV to the centre half the point is still in the centre.
        let (rows, keep) = (8usize, 4usize);
        let mut planner = FftPlanner::<f32>::new();
        let mut img = vec![Complex32::default(); rows];
        img[rows / 2] = Complex32::new(1.0, 0.0);
        centered_fft(&mut planner, &mut img, false);
        let mut k = Array4::<Complex32>::zeros((1, 1, rows, 1));
        for r in 0..rows {
            k[[0, 0, r, 0]] = img[r];
        }
        let out = remove_readout_oversampling(&k, keep);
        let mut line: Vec<Complex32> = (0..keep).map(|r| out[[0, 0, r, 0]]).collect();
        centered_fft(&mut planner, &mut line, true);
        for (r, v) in line.iter().enumerate() {
            let want = if r == keep / 2 { 1.0 } else { 0.0 };
            assert!((v.re - want).abs() < 1e-5 && v.im.abs() < 1e-5, "{r} {v}");
        }
    }
}
