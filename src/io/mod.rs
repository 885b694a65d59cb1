//! File formats in and out. Formats live apart from what the data means (`Volume`).
//!
//! `read_volume` and `write_volume` are the two doors every command uses; the format modules
//! behind them are chosen from the path (extension, or a folder for a DICOM series).

pub mod atomic;
pub mod measurement;

use crate::volume::Volume;
use anyhow::Result;
use std::path::Path;

/// Output formats `write_volume` knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Format {
    Nifti,
    Dicom,
    Png,
}

/// Options for reading: which series to take when a folder holds several.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub series_uid: Option<String>,
}

/// Read a DICOM file, a DICOM series folder, or a NIfTI file into a `Volume`.
pub fn read_volume(path: &Path, opts: &ReadOptions) -> Result<Volume> {
    let _ = opts;
    anyhow::bail!("{}: reading is not implemented yet", path.display())
}

/// Write `vol` to `path` in `format` (None: from the extension), atomically, refusing to
/// overwrite unless `force`.
pub fn write_volume(vol: &Volume, path: &Path, format: Option<Format>, force: bool) -> Result<()> {
    let _ = (vol, format, force);
    anyhow::bail!("{}: writing is not implemented yet", path.display())
}
