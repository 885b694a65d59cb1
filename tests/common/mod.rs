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

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Write values as raw little-endian float64 (what `numpy.fromfile(path, "<f8")` reads), to pass
/// arrays made in Rust to a reference script.
pub fn write_f64(path: &Path, values: &[f64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}
