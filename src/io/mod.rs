//! File formats in and out. Formats live apart from what the data means (`Volume`).
//!
//! `read_volume` and `write_volume` are the two doors every command uses; the format modules
//! behind them are chosen from the path (extension, or a folder for a DICOM series).
//! Conventions (RAS+ affine, slice order, modality LUT, derived DICOM): docs/io.md.

pub mod atomic;
pub mod dicom;
pub mod kspace;
pub mod measurement;
pub mod nifti;
pub mod nrrd;
pub mod png;
pub mod yaml;

pub use png::{window_to_u8, write_png_gray, Window, WindowPreset};

use crate::volume::Volume;
use anyhow::{bail, Result};
use std::path::Path;

/// Output formats `write_volume` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Format {
    Nifti,
    Dicom,
    Png,
    Nrrd,
}

crate::names::named!(Format, "--format", {
    Nifti => "nifti",
    Nrrd => "nrrd",
    Dicom => "dicom",
    Png => "png",
});

impl Format {
    /// From the output's name: `.nii`/`.nii.gz` -> NIfTI, `.nrrd` (or `.nhdr`, which the NRRD
    /// writer refuses with the fix) -> NRRD, `.png` -> PNG, `.dcm` -> DICOM (a folder of that
    /// name); None when the name does not say (a folder needs `--format`).
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".nii") || name.ends_with(".nii.gz") {
            Some(Format::Nifti)
        } else if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
            Some(Format::Nrrd)
        } else if name.ends_with(".png") {
            Some(Format::Png)
        } else if name.ends_with(".dcm") {
            Some(Format::Dicom)
        } else {
            None
        }
    }
}

/// What an input path holds, by its name and first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum InputKind {
    /// The image files directly inside a folder (not its subfolders).
    DicomFolder,
    DicomFile,
    Nifti,
    /// `.nrrd` (attached header) or `.nhdr` (detached).
    Nrrd,
}

impl InputKind {
    pub fn detect(path: &Path) -> Result<InputKind> {
        if !path.exists() {
            bail!("{}: no such file or folder", path.display());
        }
        if path.is_dir() {
            return Ok(InputKind::DicomFolder);
        }
        let name = path.to_string_lossy().to_ascii_lowercase();
        if [".nii", ".nii.gz", ".hdr", ".hdr.gz"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            return Ok(InputKind::Nifti);
        }
        if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
            return Ok(InputKind::Nrrd);
        }
        if name.ends_with(".img") || name.ends_with(".img.gz") {
            bail!(
                "{}: give the .hdr of a NIfTI/ANALYZE pair, not its .img",
                path.display()
            );
        }
        Ok(InputKind::DicomFile)
    }
}

/// Whether `path` names a single-file volume by its name (NIfTI `.nii`/`.nii.gz`, NRRD
/// `.nrrd`/`.nhdr`), as opposed to a DICOM file or a detached data file: what folder scans
/// (training data, nearest-neighbour references) take one volume per file.
pub fn is_volume_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    [".nii", ".nii.gz", ".nrrd", ".nhdr"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// A detached NRRD header's data file (`.raw`, `.raw.gz`), read through its `.nhdr`.
pub fn is_detached_data(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".raw") || name.ends_with(".raw.gz")
}

/// Options for reading: which series to take when a folder holds several.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub series_uid: Option<String>,
}

/// Read a DICOM file, a DICOM series folder (its files, not subfolders), a NIfTI-1 file
/// (`.nii`, `.nii.gz`, `.hdr` + `.img`) or a NRRD file (`.nrrd`, `.nhdr`) into a `Volume`.
pub fn read_volume(path: &Path, opts: &ReadOptions) -> Result<Volume> {
    match InputKind::detect(path)? {
        InputKind::Nifti if opts.series_uid.is_some() => bail!(
            "{}: --series picks a series in a DICOM folder; this is a NIfTI file",
            path.display()
        ),
        InputKind::Nifti => nifti::read(path),
        InputKind::Nrrd if opts.series_uid.is_some() => bail!(
            "{}: --series picks a series in a DICOM folder; this is a NRRD file",
            path.display()
        ),
        InputKind::Nrrd => nrrd::read(path),
        InputKind::DicomFolder | InputKind::DicomFile => {
            dicom::read(path, opts.series_uid.as_deref())
        }
    }
}

/// The cheap checks of an input (a measurement sidecar's fields, a NIfTI or NRRD header, DICOM
/// headers and image tags), so that a damaged file fails in well under a second, before a
/// command loads a model or simulates anything. The full read checks the rest.
pub fn check_input(path: &Path) -> Result<()> {
    if path.extension().is_some_and(|e| e == "json") && path.is_file() {
        return measurement::read_sidecar(path).map(|_| ());
    }
    match InputKind::detect(path)? {
        InputKind::Nifti => nifti::check_header(path),
        InputKind::Nrrd => nrrd::check_header(path),
        InputKind::DicomFolder | InputKind::DicomFile => dicom::scan(path).map(|_| ()),
    }
}

/// How to write: everything beyond the format has a default.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// None: from the path's extension.
    pub format: Option<Format>,
    /// Replace an existing output.
    pub force: bool,
    /// PNG display window, and DICOM Window Center/Width (None: `WindowPreset::Auto`).
    pub window: Option<WindowPreset>,
    /// PNG: the one slice to write (None: the middle one for a `.png` name, all for a folder).
    pub slice: Option<usize>,
    /// DICOM SeriesDescription / NIfTI descrip.
    pub series_description: Option<String>,
    /// DICOM DerivationDescription: what produced these voxels.
    pub derivation_description: Option<String>,
    /// DICOM SeriesNumber (None: 9001); a job gives each method's series its own.
    pub series_number: Option<u32>,
    /// DICOM StudyInstanceUID and FrameOfReferenceUID shared by several written series (one job's
    /// methods); None: the source's (carried tags), else a new one for this series.
    pub study_instance_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
}

/// Write `vol` to `path` in `format` (None: from the extension), atomically, refusing to
/// overwrite unless `force`.
pub fn write_volume(vol: &Volume, path: &Path, format: Option<Format>, force: bool) -> Result<()> {
    write_volume_with(
        vol,
        path,
        &WriteOptions {
            format,
            force,
            ..Default::default()
        },
    )
}

/// `write_volume` with every option (window, slice, descriptions).
pub fn write_volume_with(vol: &Volume, path: &Path, opts: &WriteOptions) -> Result<()> {
    let format = match opts.format.or_else(|| Format::from_path(path)) {
        Some(f) => f,
        None => bail!(
            "{}: cannot tell the output format from the name; use .nii, .nii.gz, .nrrd or .png, or pass --format nifti|nrrd|dicom|png",
            path.display()
        ),
    };
    match format {
        Format::Nifti => nifti::write(vol, path, opts),
        Format::Dicom => dicom::write(vol, path, opts),
        Format::Png => png::write(vol, path, opts),
        Format::Nrrd => nrrd::write(vol, path, opts),
    }
}

/// A warning the user should see, on stderr (readers also keep those about the data in
/// `provenance.history`).
pub fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}
