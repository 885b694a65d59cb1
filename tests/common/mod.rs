//! Shared by the integration tests: paths to the fetched real scans and a way to ask the
//! independent reference software in `.venv` (numpy, scikit-image, pydicom, nibabel) for
//! expected values.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `data/cache` (fetched by scripts/setup.sh). Panics with the fix when missing:
/// a test that silently skipped could never fail.
pub fn data(rel: &str) -> PathBuf {
    let p = root().join("data/cache").join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/setup.sh` (make test does)",
        p.display()
    );
    p
}

pub fn pydicom_file(name: &str) -> PathBuf {
    data(&format!("pydicom/pydicom/data/test_files/{name}"))
}

pub fn nibabel_file(name: &str) -> PathBuf {
    data(&format!("nibabel/nibabel/tests/data/{name}"))
}

pub fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

/// Run a Python script in the project's venv and return its stdout; panics with stderr on failure.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run .venv/bin/python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run a Python script that writes a raw little-endian float64 array to the file given as its
/// first argument; returns the values. Moves large arrays without text parsing.
pub fn python_array(script: &str, args: &[&str]) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.f64");
    let mut all = vec![out.to_str().unwrap()];
    all.extend_from_slice(args);
    run_python(script, &all);
    let bytes = std::fs::read(&out).unwrap();
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The built binary, for end-to-end tests of the CLI.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scorerecon"))
}

/// Run the binary with `args`: (success, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A job folder's `metrics.json`.
pub fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

/// The fewest PC levels a job may ask for (`SamplerKind::min_steps`); the end-to-end tests use
/// it, their checks do not depend on the number of steps.
pub fn min_pc() -> String {
    scorerecon::sampler::SamplerKind::Pc.min_steps().to_string()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Write values as raw little-endian float64 (what `numpy.fromfile(path, "<f8")` reads), to pass
/// arrays made in Rust to a reference script.
pub fn write_f64(path: &Path, values: &[f64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// A temporary folder with the phantom case most reconstruction tests use: `refs/train.nii.gz`
/// (24 phantoms, the `empirical:` prior's reference set) and `scan.nii.gz` (20 others, the input),
/// 64x64, tagged with `modality`. The folder lives as long as the value.
pub struct Setup {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn setup(modality: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    phantoms(&root.join("refs/train.nii.gz"), 24, 64, 1, modality);
    phantoms(&root.join("scan.nii.gz"), 20, 64, 2, modality);
    Setup { _dir: dir, root }
}

/// Write `count` random-ellipse phantoms (n x n, HU) as one NIfTI volume tagged with `modality`.
pub fn phantoms(path: &Path, count: usize, n: usize, seed: u64, modality: &str) {
    let script = r#"
import sys, numpy as np, nibabel as nib
path, count, n, seed, modality = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = np.random.default_rng(seed)
yy, xx = np.mgrid[0:n, 0:n]
c = (n - 1) / 2
vol = np.full((n, n, count), -1000.0 if modality == "CT" else 0.0)
for k in range(count):
    img = vol[:, :, k]
    body = ((xx - c) / (0.42 * n)) ** 2 + ((yy - c) / (0.36 * n)) ** 2 <= 1
    img[body] = 40.0 if modality == "CT" else 300.0
    for _ in range(5):
        cx, cy = c + rng.uniform(-0.2, 0.2, 2) * n
        a, b = rng.uniform(0.04, 0.12, 2) * n
        inside = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1
        img[inside & body] = rng.uniform(-100, 900) if modality == "CT" else rng.uniform(100, 900)
img = nib.Nifti1Image(vol.transpose(1, 0, 2).astype(np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
img.header["descrip"] = ("[%s] phantoms" % modality).encode()
nib.save(img, path)
"#;
    run_python(
        script,
        &[
            path.to_str().unwrap(),
            &count.to_string(),
            &n.to_string(),
            &seed.to_string(),
            modality,
        ],
    );
}

/// `dciodvfy -new` (dicom3tools, David Clunie's IOD validator) on one file: its lines that start
/// with `Error`. Panics with the fix when dciodvfy is not installed, so a machine without it
/// fails the conformance tests instead of skipping them.
pub fn dciodvfy_errors(file: &Path) -> Vec<String> {
    // scripts/setup.sh unpacks the Debian package into the cache when none is installed.
    let unpacked = root().join("data/cache/dicom3tools/usr/bin/dciodvfy");
    let program = if unpacked.is_file() {
        unpacked
    } else {
        PathBuf::from("dciodvfy")
    };
    let out = Command::new(&program)
        .arg("-new")
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("dciodvfy could not run ({e}): run `bash scripts/setup.sh` (it fetches dicom3tools)")
        });
    // dciodvfy writes its findings to stderr; read both.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| l.starts_with("Error"))
        .map(|l| l.to_string())
        .collect()
}

/// The `.dcm` files of a folder, sorted by name.
pub fn dicom_files(dir: &Path) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    f.sort();
    f
}

/// Where pydicom and nibabel place the written pixels: for every pixel (r, c) of every file of
/// the DICOM series `dicom_dir`, its world point from ImagePositionPatient, ImageOrientationPatient
/// and PixelSpacing (LPS+, turned to RAS+), and the voxel of the NIfTI file `nifti` that nibabel's
/// affine puts there. JSON: `geometry_mm` (largest distance between a pixel's point and the nearest
/// voxel centre), `value` (largest |modality value - NIfTI value|), `slope` (largest RescaleSlope),
/// `covered` (whether the pixels hit every voxel exactly once), `iop` (each file's
/// ImageOrientationPatient), `files`.
pub fn dicom_vs_nifti(dicom_dir: &Path, nifti: &Path) -> serde_json::Value {
    let script = r#"
import sys, glob, json, numpy as np, pydicom, nibabel as nib
from pydicom.pixels import apply_modality_lut
d, f = sys.argv[1], sys.argv[2]
img = nib.load(f)
vol = np.asarray(img.dataobj, dtype=np.float64)
inv = np.linalg.inv(img.affine)
hits = np.zeros(vol.shape[:3], dtype=int)
geo, val, slope, iops = 0.0, 0.0, 0.0, []
files = sorted(glob.glob(d + "/*.dcm"))
for p in files:
    ds = pydicom.dcmread(p)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    dr, dc = (float(x) for x in ds.PixelSpacing)
    px = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    r, c = np.mgrid[0:ds.Rows, 0:ds.Columns]
    lps = ipp[None, None, :] + (c * dc)[..., None] * iop[:3] + (r * dr)[..., None] * iop[3:]
    ras = lps * np.array([-1.0, -1.0, 1.0])
    ijk = np.einsum("ab,rcb->rca", inv[:3, :3], ras) + inv[:3, 3]
    idx = np.rint(ijk).astype(int)
    centre = np.einsum("ab,rcb->rca", img.affine[:3, :3], idx) + img.affine[:3, 3]
    geo = max(geo, float(np.linalg.norm(centre - ras, axis=-1).max()))
    inside = all(((idx[..., a] >= 0) & (idx[..., a] < vol.shape[a])).all() for a in range(3))
    if not inside:
        geo = float("inf")
        continue
    np.add.at(hits, (idx[..., 0], idx[..., 1], idx[..., 2]), 1)
    val = max(val, float(np.abs(px - vol[idx[..., 0], idx[..., 1], idx[..., 2]]).max()))
    slope = max(slope, float(getattr(ds, "RescaleSlope", 1.0)))
    iops.append([float(x) for x in iop])
print(json.dumps({"geometry_mm": geo, "value": val, "slope": slope,
                  "covered": bool((hits == 1).all()), "iop": iops, "files": len(files)}))
"#;
    serde_json::from_str(&run_python(
        script,
        &[dicom_dir.to_str().unwrap(), nifti.to_str().unwrap()],
    ))
    .unwrap()
}

/// `dicom_vs_nifti`'s findings as assertions: every pixel within `tol_mm` of a voxel centre, the
/// voxels covered once each, the values equal to within the rescale's rounding (slope / 2).
pub fn assert_dicom_matches_nifti(
    dicom_dir: &Path,
    nifti: &Path,
    tol_mm: f64,
) -> serde_json::Value {
    let v = dicom_vs_nifti(dicom_dir, nifti);
    let what = format!("{} vs {}: {v}", dicom_dir.display(), nifti.display());
    assert!(v["files"].as_u64().unwrap() > 0, "no files: {what}");
    assert!(
        v["geometry_mm"].as_f64().unwrap() <= tol_mm,
        "pixels misplaced: {what}"
    );
    assert!(
        v["covered"].as_bool().unwrap(),
        "voxels not covered once each: {what}"
    );
    let slope = v["slope"].as_f64().unwrap();
    assert!(
        v["value"].as_f64().unwrap() <= slope / 2.0 + 1e-4 * slope.max(1.0),
        "values differ: {what}"
    );
    v
}

/// Write a complex tensor as BART's `<base>.cfl` / `<base>.hdr`: raw complex64, column-major
/// over `dims` (BART's order, `dims[0]` fastest), so a row-major `[C, H, W]` tensor is
/// `dims = [W, H, 1, C]` (coils on BART's dimension 3).
pub fn write_cfl(base: &Path, t: &tch::Tensor, dims: &[i64]) {
    let t = t.to_kind(tch::Kind::ComplexFloat).contiguous();
    assert_eq!(
        t.numel() as i64,
        dims.iter().product::<i64>(),
        "cfl dims {dims:?}"
    );
    let dims_text: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    std::fs::write(
        base.with_extension("hdr"),
        format!("# Dimensions\n{}\n", dims_text.join(" ")),
    )
    .unwrap();
    let values = Vec::<f32>::try_from(t.view_as_real().flatten(0, -1)).unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(base.with_extension("cfl"), bytes).unwrap();
}

/// Read BART's `<base>.cfl` / `<base>.hdr`: its dims (BART's order) and the values as a flat
/// complex64 tensor in file order (reshape row-major to the reversed dims).
pub fn read_cfl(base: &Path) -> (Vec<i64>, tch::Tensor) {
    let hdr = std::fs::read_to_string(base.with_extension("hdr")).unwrap();
    let dims: Vec<i64> = hdr
        .lines()
        .skip_while(|l| !l.starts_with("# Dimensions"))
        .nth(1)
        .expect("cfl header without dimensions")
        .split_whitespace()
        .map(|d| d.parse().unwrap())
        .collect();
    let bytes = std::fs::read(base.with_extension("cfl")).unwrap();
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values.len() as i64, 2 * dims.iter().product::<i64>());
    let t = tch::Tensor::from_slice(&values)
        .reshape([-1, 2])
        .view_as_complex();
    (dims, t)
}

/// Run BART (`bart <args>`, installed by scripts/setup.sh); panics with its stderr on failure.
pub fn bart(args: &[&str]) -> String {
    let out = Command::new("bart")
        .args(args)
        .output()
        .expect("run bart: install it with `bash scripts/setup.sh` (Debian package bart)");
    assert!(
        out.status.success(),
        "bart {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
