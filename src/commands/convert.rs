//! `scorerecon convert IN OUT`: any supported input to NIfTI, a derived DICOM series, or PNG.

use crate::io::{read_volume, write_volume_with, Format, ReadOptions, WindowPreset, WriteOptions};
use crate::volume::Modality;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// A DICOM file, a folder of DICOM files (not its subfolders), a NIfTI-1 file, or a NRRD
    /// file (.nrrd, .nhdr).
    pub input: PathBuf,
    /// `.nii` / `.nii.gz` (NIfTI), `.nrrd` (NRRD), `.png` (one slice), `.dcm` (one slice), or a folder with
    /// `--format dicom|png`.
    pub output: PathBuf,
    /// Output format (default: from OUT's extension).
    #[arg(long, value_parser = crate::cli::named::<Format>())]
    pub format: Option<Format>,
    /// The series to read when the input folder holds several (a SeriesInstanceUID).
    #[arg(long)]
    pub series: Option<String>,
    /// Display window for PNG, and Window Center/Width for DICOM.
    #[arg(long, value_parser = crate::cli::named::<WindowPreset>())]
    pub window: Option<WindowPreset>,
    /// PNG: write only slice K (0-based; default for a .png name: the middle slice).
    #[arg(long, value_name = "K")]
    pub slice: Option<usize>,
    /// Treat the input as CT (values in HU): for NIfTI and NRRD, which do not record the modality.
    /// The same as `--modality CT`.
    #[arg(long, conflicts_with = "modality")]
    pub ct: bool,
    /// The modality to write as: CT (CT Image IOD, values in HU), MR (MR Image IOD) or OT
    /// (Secondary Capture). Default: the input's (NIfTI and NRRD: as their description tag says,
    /// else OT).
    #[arg(long, value_parser = crate::cli::named::<Modality>())]
    pub modality: Option<Modality>,
    /// Series description (DICOM SeriesDescription, NIfTI descrip).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Leave the patient tags (name, ID, birth date, sex, age, accession number, referring
    /// physician) out of a DICOM output, and the input path out of its derivation description.
    #[arg(long)]
    pub anonymise: bool,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    // Refuse early, before the (possibly long) read: an existing output, an unknown format.
    crate::io::atomic::check_not_input(&args.output, &[&args.input])?;
    crate::io::atomic::check_overwrite(&args.output, args.force)?;
    if args.format.is_none() && Format::from_path(&args.output).is_none() {
        anyhow::bail!(
            "{}: cannot tell the output format from the name; use .nii, .nii.gz, .nrrd or .png, or pass --format nifti|nrrd|dicom|png",
            args.output.display()
        );
    }
    let mut vol = read_volume(
        &args.input,
        &ReadOptions {
            series_uid: args.series.clone(),
        },
    )?;
    if let Some(m) = args.modality.or(args.ct.then_some(Modality::Ct)) {
        vol.modality = m;
    }
    if args.anonymise {
        vol.provenance.anonymise();
    } else {
        vol.provenance.history.push(format!(
            "scorerecon {} convert {} -> {}",
            crate::version(),
            args.input.display(),
            args.output.display()
        ));
    }
    let source = match (&vol.provenance.series_instance_uid, args.anonymise) {
        (Some(uid), _) => uid.clone(),
        (None, true) => crate::pipeline::ANONYMISED.to_string(),
        (None, false) => args.input.display().to_string(),
    };
    let opts = WriteOptions {
        format: args.format,
        force: args.force,
        window: args.window,
        slice: args.slice,
        series_description: args.description.clone(),
        derivation_description: Some(format!(
            "scorerecon {} convert from {source}",
            crate::version()
        )),
        ..Default::default()
    };
    write_volume_with(&vol, &args.output, &opts)?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}
