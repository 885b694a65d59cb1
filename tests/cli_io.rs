//! `scorerecon info` and `convert` end to end through the binary: outputs other software reads,
//! and bad input giving one clear line, a non-zero exit and no output left behind.

mod common;

use common::{bin, data, nibabel_file, pydicom_file, python_array, run_python};
use std::path::{Path, PathBuf};
use std::process::Output;

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run scorerecon")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Fails with `reason`: exit 1, the last stderr line `error: ...` names `path` and says `reason`,
/// and the output folder stays empty.
fn assert_clean_failure(args: &[&str], path: &Path, reason: &str, out_dir: &Path) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    let line = err.lines().last().unwrap_or("");
    assert!(line.starts_with("error: "), "{args:?}: {err}");
    assert!(
        line.contains(&path.display().to_string()),
        "names the input: {line}"
    );
    assert!(line.contains(reason), "says why ({reason}): {line}");
    let left: Vec<_> = std::fs::read_dir(out_dir).unwrap().collect();
    assert!(left.is_empty(), "{args:?} left {left:?}");
}

#[test]
fn bad_inputs_fail_with_one_clear_line_and_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("x.nii.gz");
    let o = out.to_str().unwrap();

    let text = tmp.path().join("notes.dcm");
    std::fs::write(&text, "this is a text file, not an image\n").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    // Two series in one folder: CT5N's five slices and CT_small.
    let two = tmp.path().join("two_series");
    std::fs::create_dir(&two).unwrap();
    let ct5n = pydicom_file("dicomdirtests/98892001/CT5N");
    for e in std::fs::read_dir(&ct5n).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, two.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(pydicom_file("CT_small.dcm"), two.join("ct_small.dcm")).unwrap();
    let missing = tmp.path().join("nowhere.dcm");
    let hdr_only = nibabel_file("nifti1.hdr");

    let cases: Vec<(PathBuf, &str)> = vec![
        (pydicom_file("MR_truncated.dcm"), "truncated"),
        (pydicom_file("MR_small_jpeg_ls_lossless.dcm"), "JPEG-LS"),
        (
            nibabel_file("example_nifti2.nii.gz"),
            "NIfTI-2 is not supported",
        ),
        (text.clone(), "not a DICOM file"),
        (empty.clone(), "empty folder"),
        (two.clone(), "2 series"),
        (missing.clone(), "no such file"),
        (hdr_only.clone(), ".img file"),
    ];
    for (input, reason) in &cases {
        let i = input.to_str().unwrap();
        assert_clean_failure(&["convert", i, o], input, reason, &out_dir);
        if input != &two {
            assert_clean_failure(&["info", i], input, reason, &out_dir);
        }
    }
    // `info` on a folder of several series lists them instead.
    let listing = run(&["info", two.to_str().unwrap()]);
    assert!(listing.status.success());
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(
        listing.contains("2 series") && listing.contains("SmartScore"),
        "{listing}"
    );
    // The two-series error lists each series with its description and slice count.
    let err = stderr(&run(&["convert", two.to_str().unwrap(), o]));
    assert!(
        err.contains("1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6")
            && err.contains("5 file(s)"),
        "{err}"
    );
    assert!(
        err.contains("SmartScore") && err.contains("1 file(s)"),
        "{err}"
    );
    // --series picks one.
    let r = run(&[
        "convert",
        two.to_str().unwrap(),
        o,
        "--series",
        "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6",
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(out.exists());
}

#[test]
fn existing_output_is_kept_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ct.nii");
    std::fs::write(&out, b"precious").unwrap();
    let src = pydicom_file("CT_small.dcm");
    let o = run(&["convert", src.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already exists; pass --force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let o = run(&[
        "convert",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
        "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(&out).unwrap(), b"precious");
    // Same for a DICOM series folder.
    let series = tmp.path().join("series");
    std::fs::create_dir(&series).unwrap();
    std::fs::write(series.join("keep.txt"), b"x").unwrap();
    let o = run(&[
        "convert",
        src.to_str().unwrap(),
        series.to_str().unwrap(),
        "--format",
        "dicom",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(series.join("keep.txt").exists());
}

#[test]
fn info_reports_what_pydicom_and_nibabel_see() {
    let f = pydicom_file("CT_small.dcm");
    let o = run(&["info", f.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let expect = python_array(
        r#"
import sys, numpy as np, pydicom
from pydicom.pixels import apply_modality_lut
d = pydicom.dcmread(sys.argv[2]); v = apply_modality_lut(d.pixel_array, d)
np.array([d.Columns, d.Rows, float(d.PixelSpacing[1]), float(d.PixelSpacing[0]), v.min(), v.max()], '<f8').tofile(sys.argv[1])
"#,
        &[f.to_str().unwrap()],
    );
    assert_eq!(j["modality"], "CT");
    assert_eq!(j["dims"][0].as_f64().unwrap(), expect[0]);
    assert_eq!(j["dims"][1].as_f64().unwrap(), expect[1]);
    assert_eq!(j["spacing"][0].as_f64().unwrap(), expect[2]);
    assert_eq!(j["spacing"][1].as_f64().unwrap(), expect[3]);
    assert_eq!(j["min"].as_f64().unwrap(), expect[4]);
    assert_eq!(j["max"].as_f64().unwrap(), expect[5]);
    // A folder with a gap: the warning reaches stderr; the text report names the series.
    let ct2 = pydicom_file("dicomdirtests/77654033/CT2");
    let o = run(&["info", ct2.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("warning:") && stderr(&o).contains("uneven slice spacing"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Routine Brain"));
}

#[test]
fn convert_writes_files_other_software_reads() {
    let tmp = tempfile::tempdir().unwrap();
    // NIfTI -> PNG (middle slice, soft-tissue window for --ct): PIL reads a 256x256 8-bit image whose
    // pixels equal the window applied to nibabel's slice.
    let ct = data("cranium/head_ct.nii.gz");
    let png = tmp.path().join("head.png");
    let o = run(&[
        "convert",
        ct.to_str().unwrap(),
        png.to_str().unwrap(),
        "--ct",
        "--window",
        "bone",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let diff = python_array(
        r#"
import sys, numpy as np, nibabel as nb
from PIL import Image
im = Image.open(sys.argv[3]); assert im.mode == 'L', im.mode
p = np.asarray(im, float)
v = nb.load(sys.argv[2]).get_fdata()
s = v[:, :, v.shape[2] // 2].T  # rows j, columns i
lo = 400 - 1800 / 2
e = np.clip(np.round((s - lo) / 1800 * 255), 0, 255)
np.array([p.shape[0], p.shape[1], np.abs(p - e).max()], '<f8').tofile(sys.argv[1])
"#,
        &[ct.to_str().unwrap(), png.to_str().unwrap()],
    );
    assert_eq!((diff[0], diff[1]), (256.0, 256.0));
    assert!(
        diff[2] <= 1.0,
        "PNG differs from the bone window by {}",
        diff[2]
    );
    // DICOM folder -> one PNG per slice.
    let pngs = tmp.path().join("pngs");
    let ct5n = pydicom_file("dicomdirtests/98892001/CT5N");
    let o = run(&[
        "convert",
        ct5n.to_str().unwrap(),
        pngs.to_str().unwrap(),
        "--format",
        "png",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&pngs).unwrap().count(), 5);
    // NIfTI -> DICOM series -> pydicom sees MR? No: NIfTI has no modality; with --ct it is CT.
    let series = tmp.path().join("series");
    let anat = nibabel_file("anatomical.nii");
    let o = run(&[
        "convert",
        anat.to_str().unwrap(),
        series.to_str().unwrap(),
        "--format",
        "dicom",
        "--description",
        "anatomical test",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let n = std::fs::read_dir(&series).unwrap().count();
    assert_eq!(n, 25);
    let first = series.join("00001.dcm");
    let desc = run_python(
        "import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); print(d.SeriesDescription, '|', d.SOPClassUID.name)",
        &[first.to_str().unwrap()],
    );
    assert_eq!(
        desc.trim(),
        "anatomical test | Secondary Capture Image Storage"
    );
}

/// A reader that stops reading (`scorerecon info FILE | head -1`) ends the run quietly, with the
/// status of a process killed by SIGPIPE (141, as `cat` gives), not as an internal error. The
/// pipe's read end is closed before the run starts, so the first line written fails.
#[test]
fn a_closed_stdout_ends_quietly_like_sigpipe() {
    let f = pydicom_file("CT_small.dcm");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = bin()
        .args(["info", f.to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(141), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}
