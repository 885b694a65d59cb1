//! End-to-end tests of `scorerecon ct | mri | mar | batch` on small synthetic scans written by
//! nibabel (random-ellipse head phantoms in HU, 64x64), with the training-free empirical prior over
//! a separate set of phantoms. Outputs are checked with independent software: scikit-image
//! recomputes PSNR/SSIM from the written NIfTI files, pydicom reads the DICOM series.

mod common;

use common::{bin, metrics, min_pc, phantoms, run_cli as run, run_python, setup};

use std::path::Path;

/// PSNR and SSIM of `file` against `reference.nii.gz` by scikit-image, in the CT model space
/// (HU + 1000) / 2000 the reports use (SSIM is not offset-invariant), data range of the reference.
fn skimage_scores(dir: &Path, file: &str) -> (f64, f64) {
    let script = r#"
import sys, numpy as np, nibabel as nib
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
d, f = sys.argv[1], sys.argv[2]
ref = (np.asarray(nib.load(d + "/reference.nii.gz").dataobj, dtype=np.float64)[:, :, 0] + 1000) / 2000
x = (np.asarray(nib.load(d + "/" + f).dataobj, dtype=np.float64)[:, :, 0] + 1000) / 2000
r = ref.max() - ref.min()
print(peak_signal_noise_ratio(ref, x, data_range=r), structural_similarity(ref, x, data_range=r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
"#;
    let o = run_python(script, &[dir.to_str().unwrap(), file]);
    let v: Vec<f64> = o.split_whitespace().map(|s| s.parse().unwrap()).collect();
    (v[0], v[1])
}

#[test]
fn ct_end_to_end_outputs_metrics_and_dicom() {
    let s = setup("CT");
    let out = s.root.join("out");
    let model = format!("empirical:{}", s.root.join("refs").display());
    let (ok, stdout, stderr) = run(&[
        "ct",
        "--input",
        s.root.join("scan.nii.gz").to_str().unwrap(),
        "--slice",
        "10",
        "--views",
        "12",
        "--model",
        &model,
        "--steps",
        &min_pc(),
        "--baselines",
        "fbp,fista-tv",
        "--tv-weight",
        "1e-2",
        "--samples",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "ct failed:\n{stdout}\n{stderr}");
    let m = metrics(&out);
    for method in ["fbp", "fista_tv", "score"] {
        let e = &m["methods"][method];
        for key in ["psnr", "ssim", "nrmse", "seconds"] {
            assert!(e[key].is_number(), "{method}.{key} missing: {e}");
        }
        // Our metrics equal scikit-image's recomputed from the written NIfTI (f32 outputs).
        let (p, q) = skimage_scores(&out, &format!("{method}.nii.gz"));
        assert!(
            (e["psnr"].as_f64().unwrap() - p).abs() < 1e-3,
            "{method}: psnr {} vs skimage {p}",
            e["psnr"]
        );
        assert!(
            (e["ssim"].as_f64().unwrap() - q).abs() < 1e-3,
            "{method}: ssim {} vs skimage {q}",
            e["ssim"]
        );
    }
    // Posterior samples give an uncertainty map; the DICOM series holds HU pydicom agrees with.
    assert!(out.join("score_std.nii.gz").exists());
    assert!(out.join("report.html").exists() && out.join("panel_slice010.png").exists());
    // The DICOM series holds HU pydicom agrees with, at the places the NIfTI output puts them
    // (the stored pixels are reoriented to radiological order, so compared point by point).
    let o = run_python(
        "import sys, glob, pydicom; print(pydicom.dcmread(glob.glob(sys.argv[1] + '/score_dicom/*')[0]).Modality)",
        &[out.to_str().unwrap()],
    );
    assert_eq!(o.trim(), "CT");
    common::assert_dicom_matches_nifti(&out.join("score_dicom"), &out.join("score.nii.gz"), 1e-3);
    // An existing output is not replaced without --force.
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        s.root.join("scan.nii.gz").to_str().unwrap(),
        "--model",
        &model,
        "--steps",
        &min_pc(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
}

#[test]
fn multi_slice_metrics_use_each_slices_own_data_range() {
    // Three slices in one job: each slice's PSNR / SSIM / NRMSE equal scikit-image's (numpy's
    // norm ratio) on that slice alone, with the data range of that reference slice, recomputed
    // from the written NIfTI files in the CT model space (HU + 1000) / 2000.
    let s = setup("CT");
    let out = s.root.join("out");
    let (ok, stdout, stderr) = run(&[
        "ct",
        "--input",
        s.root.join("scan.nii.gz").to_str().unwrap(),
        "--slice",
        "3,9,15",
        "--views",
        "12",
        "--model",
        &format!("empirical:{}", s.root.join("refs").display()),
        "--steps",
        &min_pc(),
        "--baselines",
        "fbp,fista-tv",
        "--tv-weight",
        "1e-2",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "ct failed:\n{stdout}\n{stderr}");
    let script = r#"
import sys, json, numpy as np, nibabel as nib
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
d = sys.argv[1]
load = lambda f: (np.asarray(nib.load(d + "/" + f).dataobj, dtype=np.float64) + 1000) / 2000
ref = load("reference.nii.gz")
res = {"range": [float(ref[:, :, i].max() - ref[:, :, i].min()) for i in range(ref.shape[2])]}
for m in ["fbp", "fista_tv", "score"]:
    x = load(m + ".nii.gz")
    rows = []
    for i, r in enumerate(res["range"]):
        a, b = ref[:, :, i], x[:, :, i]
        rows.append([peak_signal_noise_ratio(a, b, data_range=r),
                     structural_similarity(a, b, data_range=r, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False),
                     float(np.linalg.norm(b - a) / np.linalg.norm(a))])
    res[m] = rows
print(json.dumps(res))
"#;
    let e: serde_json::Value =
        serde_json::from_str(&run_python(script, &[out.to_str().unwrap()])).unwrap();
    let m = metrics(&out);
    assert_eq!(m["slices"], serde_json::json!([3, 9, 15]));
    let ranges: Vec<f64> = (0..3).map(|i| e["range"][i].as_f64().unwrap()).collect();
    for (i, r) in ranges.iter().enumerate() {
        let ours = m["data_range_per_slice"][i].as_f64().unwrap();
        assert!(
            (ours - r).abs() < 1e-6,
            "slice {i}: data range {ours} vs numpy {r}"
        );
    }
    // The slices' ranges differ, so a range over all three would change the scores.
    let (lo, hi) = ranges
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), &r| (l.min(r), h.max(r)));
    assert!(
        hi - lo > 0.01,
        "the phantom slices have similar ranges: {ranges:?}"
    );
    for method in ["fbp", "fista_tv", "score"] {
        let got = &m["methods"][method];
        for i in 0..3 {
            for (j, key) in ["psnr_per_slice", "ssim_per_slice", "nrmse_per_slice"]
                .into_iter()
                .enumerate()
            {
                let ours = got[key][i].as_f64().unwrap();
                let want = e[method][i][j].as_f64().unwrap();
                assert!(
                    (ours - want).abs() < 1e-4,
                    "{method} slice {i}: {key} {ours} vs scikit-image/numpy {want}"
                );
            }
        }
    }
}

/// The progress lines written to `log` (stderr redirected to a file) that end in `unit`:
/// (timestamp, message, position, length) of each.
fn progress_lines(log: &str, unit: &str) -> Vec<(String, String, u64, u64)> {
    let tail = format!(" {unit}, elapsed ");
    log.lines()
        .filter(|l| l.contains(&tail) && l.contains(", eta "))
        .map(|l| {
            let (time, rest) = l.split_at(19);
            let (message, counts) = rest.trim().rsplit_once(": ").unwrap();
            let (pos, len) = counts.split(' ').next().unwrap().split_once('/').unwrap();
            (
                time.to_string(),
                message.to_string(),
                pos.parse().unwrap(),
                len.parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn progress_lines_reach_a_log_file_while_the_job_runs_and_quiet_silences_them() {
    // stderr to a file (not a terminal): timestamped lines from the TV-weight tuning and the
    // sampler, written while the job runs (seen in the file before the process ended). The
    // interval is 0 here, so every update writes one and the positions count 1..=len: the
    // sampler's len is PC's NFE, N levels x (1 corrector + 1 predictor) - 1 + the final denoise.
    let s = setup("CT");
    let log = s.root.join("stderr.log");
    let steps = min_pc();
    let args = |out: &Path, quiet: bool| {
        let mut a: Vec<String> = [
            "ct",
            "--input",
            s.root.join("scan.nii.gz").to_str().unwrap(),
            "--slice",
            "10",
            "--views",
            "12",
            "--model",
            &format!("empirical:{}", s.root.join("refs").display()),
            "--steps",
            &steps,
            "--corrector-steps",
            "1",
            "--baselines",
            "fista-tv",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        if quiet {
            a.push("--quiet".into());
        }
        a
    };
    let mut child = bin()
        .args(args(&s.root.join("out"), false))
        .env(scorerecon::progress::LOG_SECONDS_ENV, "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    loop {
        // Read first, then ask whether it still runs: lines read were written before the end.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if child.try_wait().unwrap().is_some() {
            panic!("the job ended before any progress line reached its log:\n{text}");
        }
        if !progress_lines(&text, "weights").is_empty() {
            break;
        }
        assert!(t0.elapsed().as_secs() < 600, "no progress line in 600 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let nfe = progress_lines(&text, "NFE");
    let n: u64 = steps.parse().unwrap();
    assert_eq!(
        nfe.iter().map(|l| l.2).collect::<Vec<_>>(),
        (1..=2 * n).collect::<Vec<_>>(),
        "{text}"
    );
    assert!(nfe.iter().all(|l| l.3 == 2 * n), "{text}");
    assert!(nfe.iter().all(|l| l.1.starts_with("sampling pc")), "{text}");
    assert!(nfe.last().unwrap().1.contains(", step "), "{text}");
    // The tuning tries the 9 weights of its grid, then 1 or 2 between the best and its neighbours.
    let tv = progress_lines(&text, "weights");
    let len = tv.last().unwrap().3;
    assert!(len == 10 || len == 11, "{text}");
    assert_eq!(
        tv.iter().map(|l| l.2).collect::<Vec<_>>(),
        (1..=len).collect::<Vec<_>>(),
        "{text}"
    );
    for (time, ..) in nfe.iter().chain(&tv) {
        assert!(
            chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").is_ok(),
            "{time:?} is not a timestamp"
        );
    }
    assert!(
        text.contains("TV weight tuning: done, ") && text.contains(" NFE in "),
        "{text}"
    );
    // --quiet: the same job writes no progress at all.
    let o = bin()
        .args(args(&s.root.join("quiet"), true))
        .env(scorerecon::progress::LOG_SECONDS_ENV, "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        !stderr.contains("elapsed") && !stderr.contains("done, "),
        "--quiet printed progress: {stderr}"
    );
}

/// nibabel and pydicom on a job's outputs against the input's geometry: for every output NIfTI
/// named `files` (each with its input slice numbers), the largest distance (mm) between where
/// its affine puts voxels (corners and centre of each slice) and where the input's affine puts
/// the same voxels of the input slice; its slice spacing; and for `dicom` (a series folder of
/// input slices `dicom_ks`) the largest distance between ImagePositionPatient and the input's
/// position of that slice, its SpacingBetweenSlices and SliceThickness.
fn geometry_errors(
    input: &Path,
    out: &Path,
    files: &[(&str, &[usize])],
    dicom: (&str, &[usize]),
) -> serde_json::Value {
    let script = r#"
import sys, json, glob, numpy as np, nibabel as nib, pydicom
inp, out, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
a_in = nib.load(inp).affine
corners = [(0, 0), (63, 0), (0, 63), (63, 63), (31.5, 31.5)]
res = {}
for f, ks in spec["files"]:
    img = nib.load(out + "/" + f)
    assert img.shape[2] == len(ks), (f, img.shape)
    # As sets of corners: from a DICOM input the voxel order is the DICOM's (radiological), not
    # the NIfTI input's, while the slice's extent and place must be the same.
    err = max(min(np.linalg.norm(img.affine @ [i, j, n, 1] - a_in @ [a, b, k, 1]) for a, b in corners)
              for n, k in enumerate(ks) for i, j in corners)
    res[f] = {"err": float(err), "dz": float(img.header.get_zooms()[2])}
folder, ks = spec["dicom"]
ds = sorted((pydicom.dcmread(p) for p in glob.glob(out + "/" + folder + "/*.dcm")),
            key=lambda d: int(d.InstanceNumber))
assert len(ds) == len(ks)
# Stored pixels are in radiological order, not the input's voxel order: compare the image's
# four corners (LPS -> RAS) with input slice k's, as sets.
def corners(d):
    ipp, iop = np.array(d.ImagePositionPatient, float), np.array(d.ImageOrientationPatient, float)
    dr, dc = (float(x) for x in d.PixelSpacing)
    return [np.diag([-1.0, -1.0, 1.0]) @ (ipp + c * dc * iop[:3] + r * dr * iop[3:])
            for r in (0, d.Rows - 1) for c in (0, d.Columns - 1)]
err = max(min(np.linalg.norm(p - (a_in @ [i, j, k, 1])[:3]) for i in (0, 63) for j in (0, 63))
          for d, k in zip(ds, ks) for p in corners(d))
res[folder] = {"err": float(err), "spacing": float(ds[0].get("SpacingBetweenSlices", 0)),
               "thickness": float(ds[0].SliceThickness)}
print(json.dumps(res))
"#;
    let spec = serde_json::json!({ "files": files, "dicom": dicom });
    serde_json::from_str(&run_python(
        script,
        &[
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            &spec.to_string(),
        ],
    ))
    .unwrap()
}

#[test]
fn non_adjacent_slices_are_written_where_they_are_in_the_input() {
    // The phantoms on an oblique grid (rotated, 0.8 x 0.9 mm pixels, 1.5 mm slices, offset), so
    // a wrong step or origin moves every coordinate. `--slice 4,12` (12 mm apart): one volume
    // whose affine, read by nibabel, puts each slice where the input has it, with a 12 mm slice
    // spacing, and a DICOM series whose positions (pydicom) are the input's, with
    // SpacingBetweenSlices 12 and SliceThickness 1.5. `--slice 2,3,10` (uneven): a volume per
    // slice, each at its input position. And from a DICOM input (the same grid written by
    // `convert`), the same for `--slice 4,12`.
    let s = setup("CT");
    let input = s.root.join("oblique.nii.gz");
    let script = r#"
import sys, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
c, t = np.cos(0.3), np.sin(0.3)
rot = np.array([[c, 0, t], [0, 1, 0], [-t, 0, c]]) @ np.array([[np.cos(0.2), -np.sin(0.2), 0], [np.sin(0.2), np.cos(0.2), 0], [0, 0, 1]])
aff = np.eye(4)
aff[:3, :3] = rot @ np.diag([0.8, 0.9, 1.5])
aff[:3, 3] = [12.5, -30.0, 41.0]
out = nib.Nifti1Image(np.asarray(img.dataobj), aff)
out.header["descrip"] = img.header["descrip"]
nib.save(out, sys.argv[2])
"#;
    run_python(
        script,
        &[
            s.root.join("scan.nii.gz").to_str().unwrap(),
            input.to_str().unwrap(),
        ],
    );
    let model = format!("empirical:{}", s.root.join("refs").display());
    let recon = |input: &Path, slices: &str, out: &Path| {
        let (ok, stdout, stderr) = run(&[
            "ct",
            "--input",
            input.to_str().unwrap(),
            "--slice",
            slices,
            "--views",
            "12",
            "--model",
            &model,
            "--steps",
            &min_pc(),
            "--baselines",
            "fbp",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "ct --slice {slices} failed:\n{stdout}\n{stderr}");
    };
    let close = |v: &serde_json::Value, key: &str, want: f64| {
        let got = v[key].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-3,
            "{key} {got}, expected {want}: {v}"
        );
    };

    let even = s.root.join("even");
    recon(&input, "4,12", &even);
    let ks: &[usize] = &[4, 12];
    let g = geometry_errors(
        &input,
        &even,
        &[
            ("score.nii.gz", ks),
            ("fbp.nii.gz", ks),
            ("reference.nii.gz", ks),
        ],
        ("score_dicom", ks),
    );
    for f in ["score.nii.gz", "fbp.nii.gz", "reference.nii.gz"] {
        assert!(g[f]["err"].as_f64().unwrap() < 1e-3, "{f}: {g}");
        close(&g[f], "dz", 12.0);
    }
    assert!(g["score_dicom"]["err"].as_f64().unwrap() < 1e-3, "{g}");
    close(&g["score_dicom"], "spacing", 12.0);
    close(&g["score_dicom"], "thickness", 1.5);

    let uneven = s.root.join("uneven");
    recon(&input, "2,3,10", &uneven);
    assert!(!uneven.join("score.nii.gz").exists());
    let g = geometry_errors(
        &input,
        &uneven,
        &[
            ("score_slice002.nii.gz", &[2]),
            ("score_slice003.nii.gz", &[3]),
            ("score_slice010.nii.gz", &[10]),
            ("reference_slice010.nii.gz", &[10]),
            ("fbp_slice003.nii.gz", &[3]),
        ],
        ("score_slice010_dicom", &[10]),
    );
    for (f, v) in g.as_object().unwrap() {
        assert!(v["err"].as_f64().unwrap() < 1e-3, "{f}: {g}");
    }
    assert!(metrics(&uneven)["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("not evenly spaced")));

    // A DICOM series input: positions come from its files.
    let dicom = s.root.join("oblique_dicom");
    let (ok, _, stderr) = run(&[
        "convert",
        input.to_str().unwrap(),
        dicom.to_str().unwrap(),
        "--format",
        "dicom",
        "--ct",
    ]);
    assert!(ok, "{stderr}");
    let from_dicom = s.root.join("from_dicom");
    recon(&dicom, "4,12", &from_dicom);
    let g = geometry_errors(
        &input,
        &from_dicom,
        &[("score.nii.gz", ks)],
        ("score_dicom", ks),
    );
    // DICOM stores positions as 16-character decimal strings.
    assert!(g["score.nii.gz"]["err"].as_f64().unwrap() < 1e-3, "{g}");
    assert!(g["score_dicom"]["err"].as_f64().unwrap() < 1e-3, "{g}");
    close(&g["score_dicom"], "spacing", 12.0);
    close(&g["score_dicom"], "thickness", 1.5);
}

#[test]
fn ct_fbp_baseline_keeps_the_intensity_scale() {
    // FBP of 12 of 180 views must be scaled for 12 views: its mean over the body equals the
    // reference's within a few percent (a full-set FBP of the zero-filled sinogram would give 12/180).
    let s = setup("CT");
    let out = s.root.join("out");
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        s.root.join("scan.nii.gz").to_str().unwrap(),
        "--slice",
        "3",
        "--views",
        "12",
        "--model",
        &format!("empirical:{}", s.root.join("refs").display()),
        "--steps",
        &min_pc(),
        "--baselines",
        "fbp",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let script = r#"
import sys, numpy as np, nibabel as nib
d = sys.argv[1]
ref = np.asarray(nib.load(d + "/reference.nii.gz").dataobj, dtype=np.float64) + 1000
x = np.asarray(nib.load(d + "/fbp.nii.gz").dataobj, dtype=np.float64) + 1000
print(x.mean() / ref.mean())
"#;
    let ratio: f64 = run_python(script, &[out.to_str().unwrap()])
        .trim()
        .parse()
        .unwrap();
    assert!(
        (ratio - 1.0).abs() < 0.05,
        "FBP mean attenuation / reference = {ratio}"
    );
}

#[test]
fn mri_and_mar_end_to_end() {
    let s = setup("MR");
    let out = s.root.join("mri");
    let (ok, stdout, stderr) = run(&[
        "mri",
        "--input",
        s.root.join("scan.nii.gz").to_str().unwrap(),
        "--slice",
        "4",
        "--acceleration",
        "4",
        "--center-fraction",
        "0.08",
        "--model",
        &format!("empirical:{}", s.root.join("refs").display()),
        "--steps",
        &min_pc(),
        "--baselines",
        "zero-filled,tv",
        "--tv-weight",
        "1e-2",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "mri failed:\n{stdout}\n{stderr}");
    let m = metrics(&out);
    for method in ["zero_filled", "tv", "score"] {
        assert!(
            m["methods"][method]["psnr"].is_number(),
            "{method}: {}",
            m["methods"]
        );
    }
    // TV-CS beats zero filling on piecewise-constant phantoms.
    assert!(m["methods"]["tv"]["psnr"].as_f64() > m["methods"]["zero_filled"]["psnr"].as_f64());

    let c = setup("CT");
    let out = c.root.join("mar");
    let (ok, stdout, stderr) = run(&[
        "mar",
        "--input",
        c.root.join("scan.nii.gz").to_str().unwrap(),
        "--slice",
        "5",
        "--insert-metal",
        "--model",
        &format!("empirical:{}", c.root.join("refs").display()),
        "--steps",
        &min_pc(),
        "--quiet",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "mar failed:\n{stdout}\n{stderr}");
    let m = metrics(&out);
    // Linear interpolation of the trace removes streaks: better than the uncorrected FBP.
    let (li, fbp) = (
        m["methods"]["li"]["psnr"].as_f64().unwrap(),
        m["methods"]["fbp"]["psnr"].as_f64().unwrap(),
    );
    assert!(li > fbp, "LI {li} dB should beat uncorrected FBP {fbp} dB");
    // Metal excluded from the metrics and from their data range: scikit-image's PSNR over the
    // pixels outside metal_mask.nii.gz, with the range of the reference there, in model space.
    let script = r#"
import sys, numpy as np, nibabel as nib
from skimage.metrics import peak_signal_noise_ratio
d = sys.argv[1]
load = lambda f: np.asarray(nib.load(d + "/" + f).dataobj, dtype=np.float64)[:, :, 0]
ref, x, metal = (load("reference.nii.gz") + 1000) / 2000, (load("li.nii.gz") + 1000) / 2000, load("metal_mask.nii.gz")
keep = metal < 0.5
r = ref[keep].max() - ref[keep].min()
print(peak_signal_noise_ratio(ref[keep], x[keep], data_range=r), metal.sum())
"#;
    let o = run_python(script, &[out.to_str().unwrap()]);
    let v: Vec<f64> = o.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(v[1] > 0.0, "the metal mask is empty");
    assert!(
        (v[0] - li).abs() < 1e-3,
        "LI PSNR {li} vs scikit-image {}",
        v[0]
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let ct = setup("CT");
    let mr = setup("MR");
    let out = ct.root.join("never");
    let scan = ct.root.join("scan.nii.gz");
    // An MR prior given to the CT command.
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        scan.to_str().unwrap(),
        "--model",
        &format!("empirical:{}", mr.root.join("refs").display()),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!ok && stderr.contains("trained on MR"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    // An image whose size differs from the prior's.
    let small = ct.root.join("small.nii.gz");
    phantoms(&small, 3, 32, 5, "CT");
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        small.to_str().unwrap(),
        "--model",
        &format!("empirical:{}", ct.root.join("refs").display()),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        !ok && stderr.contains("32x32") && stderr.contains("64x64"),
        "{stderr}"
    );
    // Impossible parameters.
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        scan.to_str().unwrap(),
        "--views",
        "0",
        "--model",
        "x",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("--views 0"), "{stderr}");
    let (ok, _, stderr) = run(&[
        "mri",
        "--input",
        scan.to_str().unwrap(),
        "--acceleration",
        "0.5",
        "--model",
        "x",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("--acceleration 0.5"), "{stderr}");
    assert!(!out.exists(), "a failed job must leave no output folder");
    assert!(std::fs::read_dir(&ct.root).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".scorerecon-")));
}

#[test]
fn batch_survives_kill_and_resumes_without_redoing_finished_jobs() {
    let s = setup("CT");
    let model = format!("empirical:{}", s.root.join("refs").display());
    let manifest = s.root.join("batch.yaml");
    std::fs::write(
        &manifest,
        format!(
            "defaults: {{task: ct, model: '{model}', steps: {}, views: 12, baselines: [fbp], device: cpu}}\njobs:\n  - {{name: a, input: scan.nii.gz, slices: [2]}}\n  - {{name: b, input: scan.nii.gz, slices: [9]}}\n  - {{name: missing, input: nowhere.nii.gz}}\n  - {{name: c, input: scan.nii.gz, slices: [15]}}\n",
            min_pc().parse::<usize>().unwrap().max(40)
        ),
    )
    .unwrap();
    let out = s.root.join("batch-out");
    // Start the batch and kill -9 it as soon as the first job has finished.
    let mut child = bin()
        .args([
            "batch",
            manifest.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !out.join("a/metrics.json").exists() {
        assert!(t0.elapsed().as_secs() < 600, "first job never finished");
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the batch ended ({status}) before its first job finished: {:?}",
                std::fs::read_to_string(out.join("summary.csv"))
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let a_time = std::fs::metadata(out.join("a/metrics.json"))
        .unwrap()
        .modified()
        .unwrap();
    // Nothing half-written: every job folder present is complete.
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.') {
            assert!(
                p.join("metrics.json").exists() && p.join("report.html").exists(),
                "{} is incomplete",
                p.display()
            );
        }
    }
    let (ok, stdout, stderr) = run(&[
        "batch",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        !ok,
        "a failed job makes the batch exit non-zero:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("nowhere.nii.gz"), "{stderr}");
    assert_eq!(
        std::fs::metadata(out.join("a/metrics.json"))
            .unwrap()
            .modified()
            .unwrap(),
        a_time,
        "job a was redone"
    );
    for j in ["a", "b", "c"] {
        assert!(out.join(j).join("metrics.json").exists(), "job {j} missing");
    }
    assert!(!out.join("missing").exists());
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(
        csv.contains("missing,failed") && csv.contains("c,done,score"),
        "{csv}"
    );
    assert!(std::fs::read_to_string(out.join("summary.html"))
        .unwrap()
        .contains("&plusmn;"));
}

#[test]
fn ct_from_a_measurement_file_reports_no_reference_and_refuses_contradictions() {
    let s = setup("CT");
    let sim = s.root.join("sim");
    let (ok, _, stderr) = run(&[
        "simulate",
        "--input",
        s.root.join("scan.nii.gz").to_str().unwrap(),
        "--slice",
        "4",
        "--task",
        "sparse-view",
        "--views",
        "23",
        "--out",
        sim.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let prior = format!("empirical:{}", s.root.join("refs").display());
    let meas = sim.join("measurement.json");
    let out = s.root.join("out");
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        meas.to_str().unwrap(),
        "--model",
        &prior,
        "--steps",
        &min_pc(),
        "--baselines",
        "fbp,fista_tv",
        "--tv-weight",
        "1e-3",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let m = metrics(&out);
    for method in ["fbp", "fista_tv", "score"] {
        let r = &m["methods"][method];
        assert!(r["psnr"].is_null() && r["ssim"].is_null(), "{method}: {r}");
        assert!(r["residual"].as_f64().unwrap().is_finite(), "{method}: {r}");
    }
    assert!(!out.join("reference.nii.gz").exists());
    // The FBP of the file's sinogram, through the pipeline's operator and units, is the FBP
    // `simulate` wrote from the same data (numpy compares them in HU).
    let script = r#"
import sys, numpy as np, nibabel as nib
a = np.asarray(nib.load(sys.argv[1]).dataobj, dtype=np.float64).squeeze()
b = np.asarray(nib.load(sys.argv[2]).dataobj, dtype=np.float64).squeeze()
print(np.abs(a - b).max(), np.abs(b).max())
"#;
    let o = run_python(
        script,
        &[
            out.join("fbp.nii.gz").to_str().unwrap(),
            sim.join("fbp.nii.gz").to_str().unwrap(),
        ],
    );
    let v: Vec<f64> = o.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(v[0] < 1.0, "FBP differs by {} HU (max |HU| {})", v[0], v[1]);
    // Flags contradicting the file, and a file of another size than the prior's: errors, nothing written.
    let never = s.root.join("never");
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        meas.to_str().unwrap(),
        "--model",
        &prior,
        "--views",
        "45",
        "--out",
        never.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        !ok && stderr.contains("--views [45]") && stderr.contains("measurement.json"),
        "{stderr}"
    );
    let small = s.root.join("small_sim");
    let (ok, _, stderr) = run(&[
        "simulate",
        "--phantom",
        "shepp-logan",
        "--size",
        "32",
        "--task",
        "sparse-view",
        "--out",
        small.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        small.join("measurement.json").to_str().unwrap(),
        "--model",
        &prior,
        "--out",
        never.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        !ok && stderr.contains("32x32") && stderr.contains("64x64"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&[
        "mar",
        "--input",
        meas.to_str().unwrap(),
        "--model",
        &prior,
        "--out",
        never.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!ok && stderr.contains("scorerecon ct"), "{stderr}");
    assert!(!never.exists());
    // In a batch, a manifest entry's own keys are checked against the file the same way: the
    // contradicting job fails with the reason and leaves no folder; the batch goes on.
    let manifest = s.root.join("measured.yaml");
    std::fs::write(
        &manifest,
        format!(
            "defaults: {{task: ct, model: \"empirical:refs\", steps: {}, baselines: [fbp], device: cpu}}\n\
             jobs:\n\
             \x20 - {{name: as_measured, input: sim/measurement.json}}\n\
             \x20 - {{name: wrong_views, input: sim/measurement.json, views: 45}}\n",
            min_pc()
        ),
    )
    .unwrap();
    let batch_out = s.root.join("batch_out");
    let (ok, _, stderr) = run(&[
        "batch",
        manifest.to_str().unwrap(),
        "--out",
        batch_out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!ok && stderr.contains("1 of 2 jobs failed"), "{stderr}");
    assert!(batch_out.join("as_measured/metrics.json").exists());
    assert!(!batch_out.join("wrong_views").exists());
    let why = std::fs::read_to_string(batch_out.join("wrong_views.error.txt")).unwrap();
    assert!(
        why.contains("--views [45]") && why.contains("measurement.json"),
        "{why}"
    );
}

#[test]
fn fit_resample_averages_down_to_the_prior_grid() {
    // A 128x128 scan with a 64x64 prior: --fit resample averages 2x2 blocks (numpy computes the
    // same means from the input) and writes outputs on the 64x64 grid with doubled spacing.
    let s = setup("CT");
    let big = s.root.join("big.nii.gz");
    phantoms(&big, 3, 128, 9, "CT");
    let out = s.root.join("out");
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        big.to_str().unwrap(),
        "--slice",
        "1",
        "--model",
        &format!("empirical:{}", s.root.join("refs").display()),
        "--fit",
        "resample",
        "--steps",
        &min_pc(),
        "--baselines",
        "fbp",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let script = r#"
import sys, numpy as np, nibabel as nib
src = np.asarray(nib.load(sys.argv[1]).dataobj, dtype=np.float64)[:, :, 1]
ref = nib.load(sys.argv[2])
r = np.asarray(ref.dataobj, dtype=np.float64)[:, :, 0]
blocks = src.reshape(64, 2, 64, 2).mean(axis=(1, 3))
print(r.shape[0], r.shape[1], np.abs(r - blocks).max(), ref.header.get_zooms()[0])
"#;
    let o = run_python(
        script,
        &[
            big.to_str().unwrap(),
            out.join("reference.nii.gz").to_str().unwrap(),
        ],
    );
    let v: Vec<f64> = o.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!((v[0], v[1]), (64.0, 64.0), "{o}");
    assert!(
        v[2] < 0.05,
        "reference differs from the 2x2 block means by {} HU",
        v[2]
    );
    assert!((v[3] - 2.0).abs() < 1e-6, "spacing {}", v[3]);
}

#[test]
fn mri_from_a_kspace_file_matches_numpy_and_the_image_path() {
    // `simulate --task mri` writes the k-space numpy computes from the 2x2 block means of the
    // slice; `mri` on that file sees the same data as `mri` on the image with --fit resample
    // (equal zero-filled images), reports no reference, and refuses contradicting flags, the
    // wrong command and a grid that differs from the prior's.
    let s = setup("MR");
    let big = s.root.join("big.nii.gz");
    phantoms(&big, 3, 128, 9, "MR");
    let simulate = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "simulate",
            "--task",
            "mri",
            "--input",
            big.to_str().unwrap(),
            "--slice",
            "1",
            "--downsample",
            "2",
            "--acceleration",
            "4",
            "--center-fraction",
            "0.08",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    let sim = s.root.join("sim");
    let (ok, _, stderr) = simulate(&sim, &[]);
    assert!(ok, "{stderr}");
    let script = r#"
import sys, json, numpy as np, nibabel as nib
src, d = sys.argv[1], sys.argv[2]
vol = np.asarray(nib.load(src).dataobj, dtype=np.float64)
img = vol[:, :, 1].T.reshape(64, 2, 64, 2).mean(axis=(1, 3))       # rows = y
k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img), norm="ortho"))
data = np.asarray(nib.load(d + "/measurement.nii.gz").dataobj)[:, :, 0].T
mask = np.asarray(nib.load(d + "/measurement_mask.nii.gz").dataobj)[:, :, 0].T
meta = json.load(open(d + "/measurement.json"))
p = np.percentile(vol, 99.5, method="nearest")
print(np.abs(data - mask * k).max() / np.abs(k).max(), mask.mean(),
      abs(meta["mri"]["intensity_scale"]["value"] - p) / p, data.dtype.kind == "c")
"#;
    let o = run_python(script, &[big.to_str().unwrap(), sim.to_str().unwrap()]);
    let v: Vec<&str> = o.split_whitespace().collect();
    let rel: f64 = v[0].parse().unwrap();
    let kept: f64 = v[1].parse().unwrap();
    let scale_err: f64 = v[2].parse().unwrap();
    assert!(
        rel < 1e-5,
        "k-space differs from numpy's by {rel} (relative)"
    );
    assert!(
        (0.2..0.35).contains(&kept),
        "4x mask keeps {kept} of k-space"
    );
    assert!(scale_err < 1e-6, "intensity scale off by {scale_err}");
    assert_eq!(v[3], "True", "k-space must be stored complex");

    let prior = format!("empirical:{}", s.root.join("refs").display());
    let steps = min_pc();
    let recon = |input: &Path, out: &Path, extra: &[&str]| {
        let mut a = vec![
            "mri",
            "--input",
            input.to_str().unwrap(),
            "--model",
            &prior,
            "--steps",
            &steps,
            "--baselines",
            "zero_filled",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    let from_file = s.root.join("from_file");
    let (ok, _, stderr) = recon(&sim.join("measurement.json"), &from_file, &[]);
    assert!(ok, "{stderr}");
    let from_image = s.root.join("from_image");
    let (ok, _, stderr) = recon(&big, &from_image, &["--slice", "1", "--fit", "resample"]);
    assert!(ok, "{stderr}");
    let m = metrics(&from_file);
    for method in ["zero_filled", "score"] {
        assert!(
            m["methods"][method]["psnr"].is_null(),
            "no reference, no PSNR"
        );
        let r = m["methods"][method]["residual"].as_f64().unwrap();
        assert!(r.is_finite(), "{method}: residual {r}");
    }
    let r = m["methods"]["score"]["residual"].as_f64().unwrap();
    assert!(
        r < 1e-3,
        "noise-free k-space: the score output must fit it, residual {r}"
    );
    let script = r#"
import sys, numpy as np, nibabel as nib
a = np.asarray(nib.load(sys.argv[1]).dataobj, dtype=np.float64)
b = np.asarray(nib.load(sys.argv[2]).dataobj, dtype=np.float64)
print(np.abs(a - b).max() / np.abs(b).max(), nib.load(sys.argv[1]).header.get_zooms()[0])
"#;
    let o = run_python(
        script,
        &[
            from_file.join("zero_filled.nii.gz").to_str().unwrap(),
            from_image.join("zero_filled.nii.gz").to_str().unwrap(),
        ],
    );
    let v: Vec<f64> = o.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(
        v[0] < 1e-4,
        "file and image paths differ by {} (relative)",
        v[0]
    );
    assert!((v[1] - 2.0).abs() < 1e-6, "pixel spacing {}", v[1]);

    // Refusals: nothing is written.
    let bad = s.root.join("bad");
    let (ok, _, stderr) = recon(
        &sim.join("measurement.json"),
        &bad,
        &["--acceleration", "8"],
    );
    assert!(!ok && stderr.contains("contradict"), "{stderr}");
    // A CT prior, so that the refusal comes from the file, not from the prior.
    std::fs::create_dir_all(s.root.join("ct_refs")).unwrap();
    phantoms(&s.root.join("ct_refs/train.nii.gz"), 4, 64, 3, "CT");
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        sim.join("measurement.json").to_str().unwrap(),
        "--model",
        &format!("empirical:{}", s.root.join("ct_refs").display()),
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("scorerecon mri"), "{stderr}");
    let padded = s.root.join("padded");
    let (ok, _, stderr) = simulate(&padded, &["--pad-to", "80"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = recon(&padded.join("measurement.json"), &bad, &[]);
    assert!(
        !ok && stderr.contains("80x80") && stderr.contains("64x64"),
        "{stderr}"
    );
    assert!(!bad.exists(), "a refused job must write nothing");
}

#[test]
fn bad_settings_exit_2_before_any_work_and_leave_nothing() {
    let ct = setup("CT");
    let scan = ct.root.join("scan.nii.gz");
    let refs = format!("empirical:{}", ct.root.join("refs").display());
    let out = ct.root.join("never");
    for (flags, says) in [
        (&["ct", "--sampler", "nonsense"][..], "nonsense"),
        (&["ct", "--steps", "1"][..], "steps"),
        (&["ct", "--lambda", "2"][..], "--lambda 2"),
        (&["ct", "--acceleration", "4"][..], "--acceleration"),
        (&["mri", "--views", "23"][..], "--views"),
        (&["ct", "--baselines", "tv"][..], "not a ct baseline"),
        (&["mri", "--center-fraction", "0.3"][..], "center fraction"),
        (&["ct", "--slice", "4,9,4"][..], "--slice 4 is given twice"),
    ] {
        let mut args = flags.to_vec();
        args.extend([
            "--input",
            scan.to_str().unwrap(),
            "--model",
            &refs,
            "--out",
            out.to_str().unwrap(),
        ]);
        let o = bin().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{flags:?}: one line: {stderr}"
        );
        assert!(!out.exists(), "{flags:?} left {}", out.display());
    }
}

#[test]
fn a_prior_unlike_the_input_is_flagged_in_the_outputs() {
    // The shipped (calibrated) default CT prior on an MRI slice of the MNI template.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ct_on_mri");
    let mni = common::data(
        "nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    );
    let (ok, _, stderr) = run(&[
        "ct",
        "--input",
        mni.to_str().unwrap(),
        "--slice",
        "95",
        "--fit",
        "resample",
        "--steps",
        "40",
        "--baselines",
        "fbp",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("prior mismatch"), "{stderr}");
    let m = metrics(&out);
    assert_eq!(
        m["settings"]["model"], "ct_body_128",
        "the default CT prior"
    );
    let fit = &m["methods"]["score"]["prior_fit"];
    assert_eq!(fit["in_range"], false, "{fit}");
    assert!(fit["worst"].as_f64().unwrap() > fit["limit"].as_f64().unwrap());
    assert!(m["methods"]["fbp"]["prior_fit"]["value"].is_number());
    assert!(m["warnings"][0]
        .as_str()
        .unwrap()
        .contains("prior mismatch"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("class=\"warning\""));
}

/// Exit status, stdout and stderr of one CLI run.
fn run_status(args: &[&str]) -> (Option<i32>, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// No silent divergence: a run built to diverge (a Langevin corrector with snr 50 moves the
/// sample 5000 times past the score's target) stops with exit 1, a message that names the
/// update, sigma and the likely cause, and no output folder; a step count too small for the
/// sampler (`ct --steps 10` with PC, which returned -155,681..133,828 HU before) is refused
/// before any work with exit 2 and the smallest count that works.
#[test]
fn divergence_is_an_error_and_too_few_steps_are_refused() {
    let s = setup("CT");
    let model = format!("empirical:{}", s.root.join("refs").display());
    let scan = s.root.join("scan.nii.gz");
    let out = s.root.join("diverged");
    let min_pc = scorerecon::sampler::SamplerKind::Pc.min_steps().to_string();
    let (code, stderr) = run_status(&[
        "ct",
        "--input",
        scan.to_str().unwrap(),
        "--model",
        &model,
        "--steps",
        &min_pc,
        "--snr",
        "50",
        "--baselines",
        "none",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    for part in [
        "sampling diverged",
        "update",
        "sigma = ",
        "try --sampler dds or more steps",
    ] {
        assert!(stderr.contains(part), "{part:?} missing: {stderr}");
    }
    assert!(!out.exists(), "a diverged run must leave no output folder");
    assert!(std::fs::read_dir(&s.root).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".scorerecon-")));
    let (code, stderr) = run_status(&[
        "ct",
        "--input",
        scan.to_str().unwrap(),
        "--model",
        &model,
        "--steps",
        "10",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("too few") && stderr.contains(&format!("at least {min_pc} steps")),
        "{stderr}"
    );
    assert!(!out.exists());
}
