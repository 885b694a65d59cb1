//! Derived DICOM series as a PACS and a viewer see them, checked with independent software:
//! dciodvfy (dicom3tools) for IOD conformance, pydicom for study / frame-of-reference / series
//! identity and Source Image Sequence, pydicom + nibabel for where every pixel lies (the DICOM
//! series must place each voxel where the NIfTI output does) and for radiological orientation.

mod common;

use common::{
    assert_dicom_matches_nifti, bin, dciodvfy_errors, dicom_files, phantoms, run_python, setup,
};
use std::path::Path;

fn run(args: &[&str]) {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "scorerecon {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small reconstruction job (one PC level set, few baselines) on `input`, outputs in `out`.
fn job(task: &str, input: &Path, refs: &Path, out: &Path, slices: &str, baselines: &str) {
    let steps = scorerecon::sampler::SamplerKind::Pc.min_steps().to_string();
    let model = format!("empirical:{}", refs.display());
    let mut args = vec![task, "--input", input.to_str().unwrap(), "--slice", slices];
    args.extend(if task == "mri" {
        ["--acceleration", "4", "--center-fraction", "0.08"]
    } else {
        ["--views", "12", "--tv-weight", "1e-2"]
    });
    if task == "mri" {
        args.extend(["--tv-weight", "1e-2"]);
    }
    args.extend([
        "--model",
        &model,
        "--steps",
        &steps,
        "--baselines",
        baselines,
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    run(&args);
}

/// Every dciodvfy error of every file of a series folder, with the file's name.
fn series_errors(dir: &Path) -> Vec<String> {
    let files = dicom_files(dir);
    assert!(!files.is_empty(), "{}: no DICOM files", dir.display());
    files
        .iter()
        .flat_map(|f| {
            dciodvfy_errors(f)
                .into_iter()
                .map(move |e| format!("{}: {e}", f.display()))
        })
        .collect()
}

/// The identity attributes of every file under `out`'s `*_dicom` folders, by pydicom.
fn identities(out: &Path) -> serde_json::Value {
    let script = r#"
import sys, glob, json, pydicom
res = {}
for d in sorted(glob.glob(sys.argv[1] + "/*_dicom")):
    ds = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(glob.glob(d + "/*.dcm"))]
    res[d.rsplit("/", 1)[1]] = {
        "study": sorted({x.StudyInstanceUID for x in ds}),
        "frame": sorted({x.FrameOfReferenceUID for x in ds}),
        "series": sorted({x.SeriesInstanceUID for x in ds}),
        "number": sorted({int(x.SeriesNumber) for x in ds}),
        "description": sorted({str(x.SeriesDescription) for x in ds}),
        "sop_class": sorted({x.SOPClassUID for x in ds}),
        "iop": sorted({"\\".join("%g" % float(v) for v in x.ImageOrientationPatient) for x in ds}),
        # (position, referenced instance) per file, to match against the source's.
        "sources": [[[float(v) for v in x.ImagePositionPatient],
                     [[i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID]
                      for i in x.get("SourceImageSequence", [])]] for x in ds],
    }
print(json.dumps(res))
"#;
    serde_json::from_str(&run_python(script, &[out.to_str().unwrap()])).unwrap()
}

#[test]
fn ct_mri_and_convert_mr_outputs_pass_dciodvfy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (modality, task) in [("CT", "ct"), ("MR", "mri")] {
        std::fs::create_dir_all(root.join(task).join("refs")).unwrap();
        phantoms(
            &root.join(task).join("refs/train.nii.gz"),
            24,
            64,
            1,
            modality,
        );
        phantoms(&root.join(task).join("scan.nii.gz"), 20, 64, 2, modality);
    }
    // A CT job from a DICOM input (so carried patient/study tags and Source Image Sequence are
    // written too), an MRI job from NIfTI, and `convert --modality MR`.
    let ct_dicom = root.join("ct/scan_dicom");
    run(&[
        "convert",
        root.join("ct/scan.nii.gz").to_str().unwrap(),
        ct_dicom.to_str().unwrap(),
        "--format",
        "dicom",
        "--modality",
        "CT",
    ]);
    let ct_out = root.join("ct/out");
    job(
        "ct",
        &ct_dicom,
        &root.join("ct/refs"),
        &ct_out,
        "9,10",
        "fbp",
    );
    let mri_out = root.join("mri/out");
    job(
        "mri",
        &root.join("mri/scan.nii.gz"),
        &root.join("mri/refs"),
        &mri_out,
        "4",
        "zero-filled",
    );
    let mr_converted = root.join("mri/converted");
    run(&[
        "convert",
        root.join("mri/scan.nii.gz").to_str().unwrap(),
        mr_converted.to_str().unwrap(),
        "--format",
        "dicom",
        "--modality",
        "MR",
    ]);
    let series = [
        (ct_dicom.clone(), "1.2.840.10008.5.1.4.1.1.2"),
        (ct_out.join("score_dicom"), "1.2.840.10008.5.1.4.1.1.2"),
        (ct_out.join("fbp_dicom"), "1.2.840.10008.5.1.4.1.1.2"),
        (mri_out.join("score_dicom"), "1.2.840.10008.5.1.4.1.1.4"),
        (
            mri_out.join("zero_filled_dicom"),
            "1.2.840.10008.5.1.4.1.1.4",
        ),
        (mr_converted.clone(), "1.2.840.10008.5.1.4.1.1.4"),
    ];
    let mut errors = Vec::new();
    for (dir, _) in &series {
        errors.extend(series_errors(dir));
    }
    assert!(
        errors.is_empty(),
        "dciodvfy -new errors:\n{}",
        errors.join("\n")
    );
    // The IOD dciodvfy checked is the one asked for: CT Image and MR Image Storage (pydicom), MR
    // without the CT module's KVP.
    let script = r#"
import sys, glob, json, pydicom
print(json.dumps([[ds.SOPClassUID, ds.Modality, "KVP" in ds, list(ds.ImageType)]
                  for ds in (pydicom.dcmread(sorted(glob.glob(d + "/*.dcm"))[0]) for d in sys.argv[1:])]))
"#;
    let dirs: Vec<String> = series
        .iter()
        .map(|(d, _)| d.display().to_string())
        .collect();
    let args: Vec<&str> = dirs.iter().map(|s| s.as_str()).collect();
    let seen: serde_json::Value = serde_json::from_str(&run_python(script, &args)).unwrap();
    for ((dir, class), v) in series.iter().zip(seen.as_array().unwrap()) {
        assert_eq!(v[0], *class, "{}: {v}", dir.display());
        let mr = *class == "1.2.840.10008.5.1.4.1.1.4";
        assert_eq!(v[1], if mr { "MR" } else { "CT" }, "{}: {v}", dir.display());
        assert_eq!(v[2], !mr, "{}: KVP belongs to CT only: {v}", dir.display());
        assert_eq!(v[3][0], "DERIVED", "{}: {v}", dir.display());
    }
}

#[test]
fn a_jobs_series_share_one_study_and_frame_of_reference_and_reference_the_source() {
    let case = setup("CT");
    let root = case.root.as_path();
    let methods = ["fbp_dicom", "fista_tv_dicom", "score_dicom"];
    let check_one_study = |ids: &serde_json::Value| {
        let all = |key: &str| -> Vec<String> {
            let mut v: Vec<String> = methods
                .iter()
                .flat_map(|m| ids[m][key].as_array().unwrap().iter())
                .map(|x| x.to_string())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(all("study").len(), 1, "one StudyInstanceUID: {ids}");
        assert_eq!(all("frame").len(), 1, "one FrameOfReferenceUID: {ids}");
        assert_eq!(all("series").len(), 3, "a series per method: {ids}");
        assert_eq!(all("number").len(), 3, "distinct SeriesNumbers: {ids}");
        for m in methods {
            assert_eq!(ids[m]["number"].as_array().unwrap().len(), 1, "{m}: {ids}");
            let desc = ids[m]["description"][0].as_str().unwrap();
            assert!(desc.contains(m.trim_end_matches("_dicom")), "{m}: {desc}");
        }
        (all("study")[0].clone(), all("frame")[0].clone())
    };

    // From NIfTI: the job makes one study and one frame of reference for all its series.
    let from_nifti = root.join("from_nifti");
    job(
        "ct",
        &root.join("scan.nii.gz"),
        &root.join("refs"),
        &from_nifti,
        "10",
        "fbp,fista-tv",
    );
    let ids = identities(&from_nifti);
    check_one_study(&ids);
    for m in methods {
        assert!(
            ids[m]["sources"][0][1].as_array().unwrap().is_empty(),
            "no source images: {ids}"
        );
    }

    // From DICOM: the source's study and frame of reference, and each output slice names the
    // source image at its position.
    let src = root.join("scan_dicom");
    run(&[
        "convert",
        root.join("scan.nii.gz").to_str().unwrap(),
        src.to_str().unwrap(),
        "--format",
        "dicom",
        "--ct",
    ]);
    let from_dicom = root.join("from_dicom");
    job(
        "ct",
        &src,
        &root.join("refs"),
        &from_dicom,
        "9,10",
        "fbp,fista-tv",
    );
    let ids = identities(&from_dicom);
    let (study, frame) = check_one_study(&ids);
    let script = r#"
import sys, glob, json, pydicom
ds = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(glob.glob(sys.argv[1] + "/*.dcm"))]
print(json.dumps({"study": sorted({x.StudyInstanceUID for x in ds}), "frame": sorted({x.FrameOfReferenceUID for x in ds}),
                  "images": [[[float(v) for v in x.ImagePositionPatient], [x.SOPClassUID, x.SOPInstanceUID]] for x in ds]}))
"#;
    let source: serde_json::Value =
        serde_json::from_str(&run_python(script, &[src.to_str().unwrap()])).unwrap();
    assert_eq!(source["study"][0].to_string(), study);
    assert_eq!(source["frame"][0].to_string(), frame);
    let at = |p: &serde_json::Value| -> Vec<f64> {
        p.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for m in methods {
        let files = ids[m]["sources"].as_array().unwrap();
        assert_eq!(files.len(), 2, "{m}: {ids}");
        for f in files {
            let refs = f[1].as_array().unwrap();
            assert_eq!(refs.len(), 1, "{m}: one source image per slice: {f}");
            // The source image whose slice plane holds this output's position (same z: the
            // in-plane origin moves with the stored pixel order, the plane does not).
            let z = at(&f[0])[2];
            let matching: Vec<&serde_json::Value> = source["images"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| (at(&s[0])[2] - z).abs() < 1e-3)
                .collect();
            assert_eq!(matching.len(), 1, "{m}: source slice at z = {z}: {source}");
            assert_eq!(refs[0], matching[0][1], "{m}: {f}");
        }
    }
}

#[test]
fn dicom_pixels_are_radiological_and_lie_where_the_nifti_voxels_do() {
    let case = setup("CT");
    let root = case.root.as_path();
    let ras = root.join("scan.nii.gz");
    // The same voxels on grids of other axis orders: LPS (DICOM's own), and one whose i runs
    // posterior and j left (a transposed slice, slightly oblique), with an offset origin; the
    // third axis runs down in the last one. Each must come out with IOP 1\0\0\0\1\0.
    let script = r#"
import sys, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
a = np.asarray(img.dataobj)
lps = np.diag([-1.0, -1.0, 2.0, 1.0]); lps[:3, 3] = [63.0, 63.0, 0.0]
out = nib.Nifti1Image(a, lps); out.header["descrip"] = img.header["descrip"]; nib.save(out, sys.argv[2])
t = 0.05
rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
m = np.zeros((4, 4)); m[3, 3] = 1
m[:3, :3] = rot @ np.array([[0, -0.9, 0], [-0.8, 0, 0], [0, 0, -2.5]])
m[:3, 3] = [20.0, -15.0, 40.0]
out = nib.Nifti1Image(a, m); out.header["descrip"] = img.header["descrip"]; nib.save(out, sys.argv[3])
"#;
    let (lps, pa) = (root.join("lps.nii.gz"), root.join("transposed.nii.gz"));
    run_python(
        script,
        &[
            ras.to_str().unwrap(),
            lps.to_str().unwrap(),
            pa.to_str().unwrap(),
        ],
    );
    let radiological = |v: &serde_json::Value, tol: f64, what: &str| {
        for iop in v["iop"].as_array().unwrap() {
            let got: Vec<f64> = iop
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let want = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
            assert!(
                got.iter().zip(want).all(|(g, w)| (g - w).abs() <= tol),
                "{what}: ImageOrientationPatient {got:?}, expected 1\\0\\0\\0\\1\\0"
            );
        }
    };
    // `convert`: the whole volume, every voxel.
    for (name, input) in [("ras", &ras), ("lps", &lps), ("transposed", &pa)] {
        let out = root.join(format!("{name}_dicom"));
        run(&[
            "convert",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--format",
            "dicom",
            "--ct",
        ]);
        let v = assert_dicom_matches_nifti(&out, input, 1e-3);
        // The transposed grid is rotated 0.05 rad in-plane: its rows point that far off L.
        radiological(&v, if name == "transposed" { 0.0500 } else { 1e-9 }, name);
    }
    // A reconstruction job's DICOM and NIfTI outputs agree with each other, from a RAS-ordered
    // NIfTI input (the order `--fit resample` puts every input in) and from a DICOM input.
    let from_dicom = root.join("ras_dicom");
    for (name, input) in [("job_nifti", &ras), ("job_dicom", &from_dicom)] {
        let out = root.join(name);
        job("ct", input, &root.join("refs"), &out, "8,10", "fbp");
        for m in ["score", "fbp"] {
            let v = assert_dicom_matches_nifti(
                &out.join(format!("{m}_dicom")),
                &out.join(format!("{m}.nii.gz")),
                1e-3,
            );
            radiological(&v, 1e-9, &format!("{name} {m}"));
        }
    }
}

/// The RescaleSlope of a series' first file (pydicom).
fn mr_slope(series: &Path) -> f64 {
    let f = dicom_files(series)[0].clone();
    run_python(
        "import sys, pydicom; print(float(getattr(pydicom.dcmread(sys.argv[1]), 'RescaleSlope', 1.0)))",
        &[f.to_str().unwrap()],
    )
    .trim()
    .parse()
    .unwrap()
}

/// dcm2niix (an independent DICOM reader, fetched by scripts/setup.sh) converts every output
/// series of a job back to a NIfTI that nibabel places exactly where the job's own NIfTI output
/// is, for a CT and an MRI job: same grid in RAS+ order (affine to 1e-3 mm) and the same values
/// (to half a rescale step).
#[test]
fn dcm2niix_reads_every_output_series_back_with_the_nifti_outputs_geometry() {
    let cache = common::root().join("data/cache/dcm2niix");
    let (program, libs) = if cache.join("usr/bin/dcm2niix").is_file() {
        (
            cache.join("usr/bin/dcm2niix"),
            cache.join("usr/lib/x86_64-linux-gnu"),
        )
    } else {
        (
            std::path::PathBuf::from("dcm2niix"),
            std::path::PathBuf::new(),
        )
    };
    let (ct, mr) = (setup("CT"), setup("MR"));
    let root = ct.root.as_path();
    let ct_out = root.join("ct_job");
    job(
        "ct",
        &root.join("scan.nii.gz"),
        &root.join("refs"),
        &ct_out,
        "6,9,12",
        "fbp,fista_tv",
    );
    let mr_out = root.join("mri_job");
    job(
        "mri",
        &mr.root.join("scan.nii.gz"),
        &mr.root.join("refs"),
        &mr_out,
        "6,9,12",
        "zero_filled,tv",
    );
    let script = r#"
import sys, glob, numpy as np, nibabel as nib
ours = nib.as_closest_canonical(nib.load(sys.argv[1]))
theirs = nib.as_closest_canonical(nib.load(glob.glob(sys.argv[2] + "/*.nii")[0]))
a, b = ours.get_fdata().squeeze(), theirs.get_fdata().squeeze()
same_shape = float(a.shape == b.shape)
aff = float(np.abs(ours.affine - theirs.affine).max())
val = float(np.abs(a - b).max()) if same_shape else 1e9
print(same_shape, aff, val)
"#;
    let series_of = [
        (&ct_out, "score"),
        (&ct_out, "fbp"),
        (&ct_out, "fista_tv"),
        (&mr_out, "score"),
        (&mr_out, "zero_filled"),
        (&mr_out, "tv"),
    ];
    for (n, (out, m)) in series_of.into_iter().enumerate() {
        let series = out.join(format!("{m}_dicom"));
        let back = root.join(format!("back{n}"));
        std::fs::create_dir_all(&back).unwrap();
        let mut cmd = std::process::Command::new(&program);
        if !libs.as_os_str().is_empty() {
            cmd.env("LD_LIBRARY_PATH", &libs);
        }
        let res = cmd
            .args(["-z", "n", "-f", "back", "-o"])
            .arg(&back)
            .arg(&series)
            .output()
            .unwrap_or_else(|e| panic!("dcm2niix could not run ({e}): run `bash scripts/setup.sh` (it fetches dcm2niix)"));
        assert!(
            res.status.success(),
            "dcm2niix on {}: {}",
            series.display(),
            String::from_utf8_lossy(&res.stdout)
        );
        let line = run_python(
            script,
            &[
                out.join(format!("{m}.nii.gz")).to_str().unwrap(),
                back.to_str().unwrap(),
            ],
        );
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(v[0], 1.0, "{m}: dcm2niix's grid has another shape ({line})");
        assert!(v[1] < 1e-3, "{m}: affines differ by {} mm", v[1]);
        // The series store integers with a rescale slope: values agree to half a step (CT: HU
        // rounded to 1; MR: the slope the writer chose for the range), plus 2 % of a step for the
        // slope's decimal string and dcm2niix's float32 scl_slope (up to 32767 steps).
        let half_step = if out == &ct_out {
            0.5
        } else {
            0.51 * mr_slope(&series)
        };
        assert!(
            v[2] <= half_step + 1e-6,
            "{m}: values differ by {} (half a step {half_step})",
            v[2]
        );
    }
}
