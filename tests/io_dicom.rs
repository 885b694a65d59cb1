//! DICOM reading and writing against pydicom (values, with its modality LUT) and nibabel's DICOM
//! wrapper (in-plane geometry), on the real files the setup script fetches.

mod common;

use common::{data, pydicom_file, python_array, run_python};
use scorerecon::io::{read_volume, write_volume_with, Format, ReadOptions, WriteOptions};
use scorerecon::{Modality, Volume};
use std::path::{Path, PathBuf};

/// pydicom's modality values (`apply_modality_lut(ds.pixel_array, ds)`) of the files given, in the
/// order given, frames of a multi-frame file in turn.
const PYDICOM_VALUES: &str = r#"
import sys, numpy as np, pydicom
from pydicom.pixels import apply_modality_lut
out = []
for f in sys.argv[2:]:
    ds = pydicom.dcmread(f)
    out.append(np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64).ravel())
np.concatenate(out).astype('<f8').tofile(sys.argv[1])
"#;

/// The files of a folder sorted along the slice normal by pydicom's reading of their
/// ImagePositionPatient / ImageOrientationPatient, one path per line.
const PYDICOM_ORDER: &str = r#"
import sys, os, numpy as np, pydicom
d = sys.argv[1]
fs = [os.path.join(d, f) for f in os.listdir(d) if not f.startswith('.')]
def depth(f):
    ds = pydicom.dcmread(f, stop_before_pixels=True)
    o = np.array(ds.ImageOrientationPatient, float)
    return float(np.dot(np.cross(o[:3], o[3:]), np.array(ds.ImagePositionPatient, float)))
for f in sorted(fs, key=depth):
    print(f)
"#;

fn pydicom_values(files: &[PathBuf]) -> Vec<f64> {
    let args: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    python_array(PYDICOM_VALUES, &args)
}

/// Exact agreement after rounding pydicom's float64 to our f32 (same `slope * v + intercept`).
fn assert_values(ours: &[f32], expected: &[f64], what: &str) {
    assert_eq!(ours.len(), expected.len(), "{what}: voxel count");
    let bad = ours
        .iter()
        .zip(expected)
        .filter(|(a, b)| **a != **b as f32)
        .count();
    assert_eq!(bad, 0, "{what}: {bad} voxels differ from pydicom");
}

fn read(p: &Path) -> Volume {
    read_volume(p, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e:#}"))
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn ct_small_matches_pydicom_values_and_nibabel_geometry() {
    let f = pydicom_file("CT_small.dcm");
    let vol = read(&f);
    assert_eq!(vol.modality, Modality::Ct);
    assert_eq!(vol.dims, [128, 128, 1, 1]);
    assert_values(
        &vol.data,
        &pydicom_values(std::slice::from_ref(&f)),
        "CT_small",
    );
    // nibabel's wrapper affine maps (row, column, slice) to LPS; ours maps (column, row, slice)
    // to RAS: swap the first two columns and negate x and y.
    let nib = python_array(
        r#"
import sys, numpy as np, warnings
warnings.simplefilter('ignore')
from nibabel.nicom import dicomwrappers
np.asarray(dicomwrappers.wrapper_from_file(sys.argv[2]).affine, '<f8').tofile(sys.argv[1])
"#,
        &[f.to_str().unwrap()],
    );
    let nib = |r: usize, c: usize| nib[r * 4 + c];
    for r in 0..3 {
        let flip = if r < 2 { -1.0 } else { 1.0 };
        assert!(
            close(vol.affine[r][0], flip * nib(r, 1), 1e-9),
            "column i, row {r}"
        );
        assert!(
            close(vol.affine[r][1], flip * nib(r, 0), 1e-9),
            "column j, row {r}"
        );
        assert!(
            close(vol.affine[r][3], flip * nib(r, 3), 1e-9),
            "origin, row {r}"
        );
    }
}

#[test]
fn every_lossless_encoding_of_mr_small_gives_identical_pixels() {
    let reference = pydicom_values(&[pydicom_file("MR_small.dcm")]);
    for name in [
        "MR_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_padded.dcm",
    ] {
        let vol = read(&pydicom_file(name));
        assert_eq!(vol.modality, Modality::Mr, "{name}");
        assert_values(&vol.data, &reference, name);
    }
}

#[test]
fn deflated_transfer_syntax_matches_pydicom() {
    let f = pydicom_file("image_dfl.dcm");
    assert_values(
        &read(&f).data,
        &pydicom_values(std::slice::from_ref(&f)),
        "image_dfl",
    );
}

#[test]
fn ct5n_is_sorted_along_the_normal_although_z_runs_down() {
    let dir = pydicom_file("dicomdirtests/98892001/CT5N");
    let vol = read(&dir);
    let order: Vec<PathBuf> = run_python(PYDICOM_ORDER, &[dir.to_str().unwrap()])
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(order.len(), 5);
    let ours: Vec<PathBuf> = vol
        .provenance
        .source_files
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(ours, order, "slice order along the normal");
    // InstanceNumber rises as z falls in this series: the sorted order runs against it.
    assert!(ours[0].ends_with("3353") && ours[4].ends_with("2062"));
    assert_values(&vol.data, &pydicom_values(&order), "CT5N");
    // k steps +2.5 mm in z (RAS z = LPS z), origin at the lowest slice.
    assert!(close(vol.affine[2][2], 2.5, 1e-6) && close(vol.affine[2][3], -1.2375, 1e-6));
    assert_eq!(vol.spacing[2], 2.5);
    assert_eq!(vol.slice_positions.len(), 5);
}

#[test]
fn ct2_gap_is_reported_and_not_interpolated() {
    let dir = pydicom_file("dicomdirtests/77654033/CT2");
    let vol = read(&dir);
    assert_eq!(vol.nz(), 4, "no slices invented");
    assert!(
        vol.provenance
            .history
            .iter()
            .any(|h| h.contains("warning") && h.contains("uneven")),
        "{:?}",
        vol.provenance.history
    );
    let order: Vec<PathBuf> = run_python(PYDICOM_ORDER, &[dir.to_str().unwrap()])
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_values(&vol.data, &pydicom_values(&order), "CT2");
    // The true positions are kept, gap included.
    let z: Vec<f64> = vol.slice_positions.iter().map(|p| p[2]).collect();
    assert!(
        close(z[1] - z[0], 202.5, 1e-3) && close(z[3] - z[2], 1.25, 1e-3),
        "{z:?}"
    );
}

#[test]
fn multi_frame_rt_dose_frames_become_slices() {
    for name in ["rtdose.dcm", "rtdose_expb.dcm"] {
        let f = pydicom_file(name);
        let vol = read(&f);
        assert_eq!(vol.nz(), 15, "{name}");
        assert_values(
            &vol.data,
            &pydicom_values(&[pydicom_file("rtdose.dcm")]),
            name,
        );
        // Frames lie GridFrameOffsetVector (0, 5, .., 70 mm) along the normal.
        assert!(
            close(vol.spacing[2], 5.0, 1e-9),
            "{name}: {:?}",
            vol.spacing
        );
    }
}

#[test]
fn siemens_slices_read_alone_and_as_a_series() {
    let a = data("nibabel/nibabel/nicom/tests/data/0.dcm");
    let b = data("nibabel/nibabel/nicom/tests/data/1.dcm");
    for f in [&a, &b] {
        assert_values(
            &read(f).data,
            &pydicom_values(std::slice::from_ref(f)),
            "siemens",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&b, dir.path().join("x.dcm")).unwrap();
    std::fs::copy(&a, dir.path().join("y.dcm")).unwrap();
    let vol = read(dir.path());
    assert_eq!(vol.dims, [256, 256, 2, 1]);
    let order: Vec<PathBuf> = run_python(PYDICOM_ORDER, &[dir.path().to_str().unwrap()])
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_values(&vol.data, &pydicom_values(&order), "siemens pair");
    assert!(close(vol.spacing[2], 3.0, 1e-3), "{:?}", vol.spacing);
}

/// pydicom's view of a derived file: SOP class, modality, modality values, geometry tags.
const PYDICOM_DERIVED: &str = r#"
import sys, json, numpy as np, pydicom
from pydicom.pixels import apply_modality_lut
ds = pydicom.dcmread(sys.argv[1])
print(json.dumps({
  'sop_class': str(ds.SOPClassUID), 'modality': ds.Modality,
  'series_uid': str(ds.SeriesInstanceUID), 'sop_uid': str(ds.SOPInstanceUID),
  'study_uid': str(ds.StudyInstanceUID), 'patient_id': str(ds.get('PatientID', '')),
  'ipp': [float(x) for x in ds.ImagePositionPatient],
  'iop': [float(x) for x in ds.ImageOrientationPatient],
  'spacing': [float(x) for x in ds.PixelSpacing],
  'window': [float(ds.WindowCenter), float(ds.WindowWidth)],
  'image_type': list(ds.ImageType), 'derivation': ds.DerivationDescription,
  'description': ds.SeriesDescription,
  'values': np.asarray(apply_modality_lut(ds.pixel_array, ds), float).ravel().tolist(),
}))
"#;

fn derived(path: &Path) -> serde_json::Value {
    serde_json::from_str(&run_python(PYDICOM_DERIVED, &[path.to_str().unwrap()])).unwrap()
}

fn written_files(dir: &Path) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    f.sort();
    f
}

#[test]
fn derived_ct_series_round_trips_hu_and_pydicom_reads_it() {
    let src = pydicom_file("dicomdirtests/98892001/CT5N");
    let vol = read(&src);
    let out = tempfile::tempdir().unwrap();
    let series = out.path().join("derived");
    let opts = WriteOptions {
        format: Some(Format::Dicom),
        series_description: Some("test series".into()),
        derivation_description: Some("made by a test".into()),
        ..Default::default()
    };
    write_volume_with(&vol, &series, &opts).unwrap();
    // Integer HU within int16: stored exactly.
    let back = read(&series);
    assert_eq!(back.data, vol.data);
    assert_eq!(back.dims, vol.dims);
    for r in 0..3 {
        for c in 0..4 {
            assert!(
                close(back.affine[r][c], vol.affine[r][c], 1e-4),
                "affine[{r}][{c}]"
            );
        }
    }
    let files = written_files(&series);
    assert_eq!(files.len(), 5);
    let source_ids = run_python(
        "import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); print(d.StudyInstanceUID, d.PatientID, d.SeriesInstanceUID)",
        &[vol.provenance.source_files[0].as_str()],
    );
    let source_ids: Vec<&str> = source_ids.split_whitespace().collect();
    let mut sop_uids = Vec::new();
    for (k, f) in files.iter().enumerate() {
        let d = derived(f);
        assert_eq!(
            d["sop_class"], "1.2.840.10008.5.1.4.1.1.2",
            "CT Image Storage"
        );
        assert_eq!(d["modality"], "CT");
        assert_eq!(d["image_type"][0], "DERIVED");
        assert_eq!(d["description"], "test series");
        assert_eq!(d["derivation"], "made by a test");
        assert_eq!(d["window"][0], 40.0);
        assert_eq!(d["window"][1], 400.0);
        assert!(d["series_uid"].as_str().unwrap().starts_with("2.25."));
        assert_ne!(d["series_uid"], source_ids[2]);
        assert_eq!(d["study_uid"], source_ids[0], "study carried over");
        assert_eq!(d["patient_id"], source_ids[1], "patient carried over");
        sop_uids.push(d["sop_uid"].as_str().unwrap().to_string());
        let values: Vec<f64> = d["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_values(vol.slice(k, 0), &values, "pydicom reads our HU");
        // Geometry tags equal the source slice's, in LPS.
        let p = vol.slice_positions[k];
        let ipp: Vec<f64> = d["ipp"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            close(ipp[0], -p[0], 1e-6) && close(ipp[1], -p[1], 1e-6) && close(ipp[2], p[2], 1e-6)
        );
        assert_eq!(d["iop"], serde_json::json!([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]));
        assert_eq!(d["spacing"], serde_json::json!([0.488281, 0.488281]));
    }
    sop_uids.sort();
    sop_uids.dedup();
    assert_eq!(sop_uids.len(), 5, "fresh SOP Instance UIDs");
}

#[test]
fn float_values_survive_within_the_rescale_quantisation() {
    let vol = read(&pydicom_file("CT_small.dcm"));
    // Non-integral HU (as a reconstruction gives): stored with a fractional slope.
    let vol = vol.with_data(vol.data.iter().map(|v| v * 0.37 + 0.123).collect());
    let out = tempfile::tempdir().unwrap();
    let series = out.path().join("s");
    write_volume_with(
        &vol,
        &series,
        &WriteOptions {
            format: Some(Format::Dicom),
            ..Default::default()
        },
    )
    .unwrap();
    let d = derived(&written_files(&series)[0]);
    let slope = run_python(
        "import sys, pydicom; print(float(pydicom.dcmread(sys.argv[1]).RescaleSlope))",
        &[written_files(&series)[0].to_str().unwrap()],
    );
    let slope: f64 = slope.trim().parse().unwrap();
    let (lo, hi) = vol.value_range().unwrap();
    assert!(
        slope <= (hi - lo) as f64 / 65534.0 * 1.0001,
        "slope spreads the range over int16"
    );
    let values: Vec<f64> = d["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let worst = vol
        .data
        .iter()
        .zip(&values)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= slope / 2.0 + 1e-4,
        "error {worst} > slope/2 = {}",
        slope / 2.0
    );
}

#[test]
fn mr_goes_out_as_mr_image() {
    let vol = read(&pydicom_file("MR_small.dcm"));
    let out = tempfile::tempdir().unwrap();
    let series = out.path().join("mr");
    write_volume_with(
        &vol,
        &series,
        &WriteOptions {
            format: Some(Format::Dicom),
            ..Default::default()
        },
    )
    .unwrap();
    let d = derived(&written_files(&series)[0]);
    // MR Image Storage (its IOD has the geometry tags a Secondary Capture lacks).
    assert_eq!(d["sop_class"], "1.2.840.10008.5.1.4.1.1.4");
    assert_eq!(d["modality"], "MR");
    let values: Vec<f64> = d["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_values(&vol.data, &values, "MR values");
    // Percentile window (0.5-99.5) from numpy over the same values.
    let expect = run_python(
        "import sys, json, numpy as np; v = np.array(json.loads(sys.argv[1]), float); lo, hi = np.percentile(v, [0.5, 99.5]); print((lo + hi) / 2, hi - lo)",
        &[&serde_json::to_string(&values).unwrap()],
    );
    let e: Vec<f64> = expect
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(close(
        d["window"][0].as_f64().unwrap(),
        e[0],
        1e-3 * e[0].abs().max(1.0)
    ));
    assert!(close(
        d["window"][1].as_f64().unwrap(),
        e[1],
        1e-3 * e[1].abs().max(1.0)
    ));
}

/// An enhanced (functional-group) multi-frame MR built with pydicom: sagittal frames stored out
/// of order (x = 10, 6, 8 mm), orientation and pixel spacing in the shared groups.
const ENHANCED_MR: &str = r#"
import sys, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
ds = Dataset()
ds.file_meta = FileMetaDataset()
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.file_meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.4.1'
ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
ds.SeriesInstanceUID = generate_uid(); ds.StudyInstanceUID = generate_uid(); ds.Modality = 'MR'
ds.Rows = 4; ds.Columns = 5; ds.NumberOfFrames = 3; ds.SamplesPerPixel = 1
ds.PhotometricInterpretation = 'MONOCHROME2'
ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 0
po = Dataset(); po.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
pm = Dataset(); pm.PixelSpacing = [0.5, 0.25]; pm.SliceThickness = 2
shared = Dataset()
shared.PlaneOrientationSequence = Sequence([po]); shared.PixelMeasuresSequence = Sequence([pm])
ds.SharedFunctionalGroupsSequence = Sequence([shared])
frames = []
for x in [10.0, 6.0, 8.0]:
    pp = Dataset(); pp.ImagePositionPatient = [x, -20, 30]
    f = Dataset(); f.PlanePositionSequence = Sequence([pp]); frames.append(f)
ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
ds.PixelData = (np.arange(60).reshape(3, 4, 5) * 7).astype('<u2').tobytes()
ds.save_as(sys.argv[1], enforce_file_format=True)
"#;

#[test]
fn enhanced_multi_frame_geometry_comes_from_functional_groups() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("enhanced.dcm");
    run_python(ENHANCED_MR, &[f.to_str().unwrap()]);
    let vol = read(&f);
    assert_eq!(vol.dims, [5, 4, 3, 1]);
    // Normal = row x column = (0,1,0) x (0,0,-1) = (-1,0,0): ascending along it is x = 10, 8, 6,
    // i.e. stored frames 0, 2, 1.
    let frame = |t: usize| (0..20).map(move |p| ((t * 20 + p) * 7) as f32);
    let expected: Vec<f32> = frame(0).chain(frame(2)).chain(frame(1)).collect();
    assert_eq!(vol.data, expected);
    assert_eq!(vol.spacing[..3], [0.25, 0.5, 2.0]);
    // RAS: LPS (0,1,0)*0.25 -> (0,-0.25,0); (0,0,-1)*0.5 -> (0,0,-0.5); k: LPS x -2 -> RAS x +2.
    let cols: Vec<[f64; 3]> = (0..4)
        .map(|c| [vol.affine[0][c], vol.affine[1][c], vol.affine[2][c]])
        .collect();
    assert_eq!(cols[0], [0.0, -0.25, 0.0]);
    assert_eq!(cols[1], [0.0, 0.0, -0.5]);
    assert_eq!(cols[2], [2.0, 0.0, 0.0]);
    assert_eq!(cols[3], [-10.0, 20.0, 30.0]);
}

/// Copies of CT5N's files (optionally changed by a pydicom snippet given `path`) in a temp folder.
fn ct5n_copy(edit: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(pydicom_file("dicomdirtests/98892001/CT5N")).unwrap() {
        let p = e.unwrap().path();
        let to = dir.path().join(p.file_name().unwrap());
        std::fs::copy(&p, &to).unwrap();
        if let Some(code) = edit {
            let script = format!(
                "import sys, pydicom\npath = sys.argv[1]\nds = pydicom.dcmread(path)\n{code}\nds.save_as(path)"
            );
            run_python(&script, &[to.to_str().unwrap()]);
        }
    }
    dir
}

#[test]
fn without_positions_slices_follow_instance_number_with_a_warning() {
    let dir = ct5n_copy(Some("del ds.ImagePositionPatient"));
    let vol = read(dir.path());
    let instances = run_python(
        "import sys, pydicom\nfor f in sys.argv[1:]: print(pydicom.dcmread(f).InstanceNumber)",
        &vol.provenance
            .source_files
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
    );
    let instances: Vec<i64> = instances
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(instances, vec![6, 7, 8, 9, 10]);
    assert!(vol
        .provenance
        .history
        .iter()
        .any(|h| h.contains("ordered by InstanceNumber")));
}

#[test]
fn two_slices_at_one_position_are_refused() {
    let dir = ct5n_copy(None);
    let names: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    std::fs::copy(&names[0], dir.path().join("duplicate")).unwrap();
    let err = format!(
        "{:#}",
        read_volume(dir.path(), &ReadOptions::default()).unwrap_err()
    );
    assert!(err.contains("same position"), "{err}");
}

#[test]
fn unsupported_images_are_refused_with_the_reason() {
    for (name, reason) in [
        ("examples_palette.dcm", "PALETTE COLOR is not supported"),
        ("SC_rgb_rle.dcm", "colour images"),
        ("liver_1frame.dcm", "BitsAllocated 1 is not supported"),
        ("JPEG-lossy.dcm", "gdcmconv --raw"),
        ("rtdose_rle.dcm", "RLE Lossless"),
        ("no_meta.dcm", "not a DICOM file"),
    ] {
        let f = pydicom_file(name);
        let err = format!(
            "{:#}",
            read_volume(&f, &ReadOptions::default()).unwrap_err()
        );
        assert!(
            err.starts_with(&f.display().to_string()) && err.contains(reason),
            "{name}: {err}"
        );
        assert!(!err.contains('\n'), "{name}: one line: {err}");
    }
}

#[test]
fn one_slice_to_a_dcm_name_is_one_file() {
    let vol = read(&pydicom_file("CT_small.dcm"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ct.dcm");
    scorerecon::io::write_volume(&vol, &out, None, false).unwrap();
    assert!(out.is_file());
    let d = derived(&out);
    assert_eq!(d["sop_class"], "1.2.840.10008.5.1.4.1.1.2");
    let values: Vec<f64> = d["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_values(&vol.data, &values, "single file");
    // Several slices do not fit one .dcm name.
    let ct5n = read(&pydicom_file("dicomdirtests/98892001/CT5N"));
    let err = format!(
        "{:#}",
        scorerecon::io::write_volume(&ct5n, &dir.path().join("s.dcm"), None, false).unwrap_err()
    );
    assert!(err.contains("holds one slice"), "{err}");
    assert!(!dir.path().join("s.dcm").exists());
}
