//! `scorerecon info PATH`: what a file or folder holds (modality, size, spacing, value range,
//! series), as text or JSON.

use crate::io::{dicom, read_volume, InputKind, ReadOptions};
use crate::volume::Volume;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A DICOM file, a folder of DICOM files (not its subfolders), a NIfTI-1 file (.nii,
    /// .nii.gz, .hdr with its .img), or a NRRD file (.nrrd, .nhdr).
    pub path: PathBuf,
    /// The series to describe when the folder holds several (a SeriesInstanceUID).
    #[arg(long)]
    pub series: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One volume's description (also the JSON shape).
#[derive(Serialize)]
struct VolumeInfo<'a> {
    path: String,
    kind: InputKind,
    modality: String,
    /// [nx, ny, nz, nt]
    dims: [usize; 4],
    /// mm along i, j, k; then the frame interval.
    spacing: [f64; 4],
    /// Voxel index -> RAS+ mm.
    affine: [[f64; 4]; 4],
    min: Option<f32>,
    max: Option<f32>,
    series_instance_uid: Option<&'a str>,
    series_description: Option<&'a str>,
    rescale_slope: f64,
    rescale_intercept: f64,
    files: usize,
    history: &'a [String],
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let kind = InputKind::detect(&args.path)?;
    let vol = if kind == InputKind::DicomFolder && args.series.is_none() {
        // One scan serves both: list several series, or read the only one.
        let mut series = dicom::scan(&args.path)?;
        if series.len() > 1 {
            return print_series_list(&args, &series);
        }
        dicom::read_series(&args.path, series.remove(0))?
    } else {
        read_volume(
            &args.path,
            &ReadOptions {
                series_uid: args.series.clone(),
            },
        )?
    };
    let info = describe(&args, kind, &vol);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&info);
    }
    Ok(())
}

fn describe<'a>(args: &InfoArgs, kind: InputKind, vol: &'a Volume) -> VolumeInfo<'a> {
    let range = vol.value_range();
    VolumeInfo {
        path: args.path.display().to_string(),
        kind,
        modality: vol.modality.to_string(),
        dims: vol.dims,
        spacing: vol.spacing,
        affine: vol.affine,
        min: range.map(|r| r.0),
        max: range.map(|r| r.1),
        series_instance_uid: vol.provenance.series_instance_uid.as_deref(),
        series_description: vol.provenance.series_description.as_deref(),
        rescale_slope: vol.provenance.rescale_slope,
        rescale_intercept: vol.provenance.rescale_intercept,
        files: {
            let mut f = vol.provenance.source_files.clone();
            f.dedup();
            f.len()
        },
        history: &vol.provenance.history,
    }
}

fn print_text(i: &VolumeInfo) {
    let kind = match i.kind {
        InputKind::DicomFolder => "DICOM series (folder)",
        InputKind::DicomFile => "DICOM file",
        InputKind::Nifti => "NIfTI-1",
        InputKind::Nrrd => "NRRD",
    };
    println!("path:        {}", i.path);
    println!("format:      {kind}, {} file(s)", i.files);
    println!("modality:    {}", i.modality);
    println!(
        "size:        {} x {} x {} voxels{}",
        i.dims[0],
        i.dims[1],
        i.dims[2],
        if i.dims[3] > 1 {
            format!(" x {} frames", i.dims[3])
        } else {
            String::new()
        }
    );
    // Shortest f32 form: NIfTI pixdims are f32, and 0.9570312 reads better than its f64 widening.
    println!(
        "spacing:     {} x {} x {} mm",
        i.spacing[0] as f32, i.spacing[1] as f32, i.spacing[2] as f32
    );
    match (i.min, i.max) {
        (Some(lo), Some(hi)) => println!("values:      {lo} .. {hi}"),
        _ => println!("values:      no finite values"),
    }
    println!(
        "rescale:     value = {} * stored + {}",
        i.rescale_slope, i.rescale_intercept
    );
    if let Some(uid) = i.series_instance_uid {
        println!("series:      {uid}");
    }
    if let Some(d) = i.series_description {
        println!("description: {d}");
    }
    println!("affine (voxel -> RAS+ mm):");
    for row in &i.affine[..3] {
        println!(
            "  [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]",
            row[0], row[1], row[2], row[3]
        );
    }
}

fn print_series_list(args: &InfoArgs, series: &[dicom::SeriesSummary]) -> anyhow::Result<()> {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "path": args.path.display().to_string(),
                "series": series,
            }))?
        );
        return Ok(());
    }
    println!(
        "{}: {} series (describe one with --series UID)",
        args.path.display(),
        series.len()
    );
    for s in series {
        println!(
            "  {}  {}  {:>4} file(s)  {}",
            s.series_instance_uid,
            s.modality,
            s.files.len(),
            s.description
        );
    }
    Ok(())
}
