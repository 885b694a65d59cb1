//! Reading raw k-space (docs/benchmarks.md, "## Raw k-space reading"): a fastMRI-sized
//! multi-coil file (16 slices x 15 coils x 640 x 368 complex64, 452 MB, written with h5py into
//! the temporary folder) read by our fastMRI reader (`read_kspace`, hdf5-metno over the system
//! libhdf5) against h5py's `f['kspace'][()]`, median of 5 runs each, side by side in one run.
//! The file is read once by each before timing, so both read from the page cache.
//! Run: `cargo bench --bench kspace_read` (`KSPACE_BENCH_REPS=5`; `KSPACE_BENCH_SHAPE=16,15,640,368`).

use scorerecon::io::kspace::read_kspace;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
mod common;
use common::median;

const WRITE: &str = r#"
import sys, numpy as np, h5py
path, shape = sys.argv[1], [int(v) for v in sys.argv[2].split(',')]
rng = np.random.default_rng(0)
k = np.empty(shape, np.complex64)
for s in range(shape[0]):
    k[s].real = rng.standard_normal(shape[1:], np.float32)
    k[s].imag = rng.standard_normal(shape[1:], np.float32)
with h5py.File(path, 'w') as f:
    f['kspace'] = k
    f['mask'] = np.ones(shape[-1], np.float32)
    f.attrs['acquisition'] = 'CORPD_FBK'
"#;

const H5PY: &str = r#"
import sys, time, statistics, h5py
path, reps = sys.argv[1], int(sys.argv[2])
with h5py.File(path, 'r') as f:
    f['kspace'][()]
ts = []
for _ in range(reps):
    t = time.perf_counter()
    with h5py.File(path, 'r') as f:
        k = f['kspace'][()]
    ts.append(time.perf_counter() - t)
    del k
print(statistics.median(ts))
"#;

fn main() {
    let reps: usize = std::env::var("KSPACE_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let shape = std::env::var("KSPACE_BENCH_SHAPE").unwrap_or_else(|_| "16,15,640,368".into());
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("fastmri_sized.h5");
    let p = path.to_str().unwrap();
    let ok = Command::new(&python)
        .args(["-c", WRITE, p, &shape])
        .status()
        .expect("run .venv/bin/python");
    assert!(ok.success(), "h5py could not write the file");
    let mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;

    let k = read_kspace(&path).expect("read");
    let dims = k.kspace.dim();
    drop(k);
    let mut ours = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let k = read_kspace(&path).expect("read");
        ours.push(t.elapsed().as_secs_f64());
        drop(k);
    }
    let out = Command::new(&python)
        .args(["-c", H5PY, p, &reps.to_string()])
        .output()
        .expect("run .venv/bin/python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h5py: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let ours = median(ours);
    println!("file: {dims:?} complex64, {mb:.0} MB, median of {reps} runs (page cache warm)");
    println!("{:<34} {:>8} {:>10}", "reader", "s", "GB/s");
    println!(
        "{:<34} {:>8.3} {:>10.2}",
        "scorerecon read_kspace (hdf5-metno)",
        ours,
        mb / 1e3 / ours
    );
    println!(
        "{:<34} {:>8.3} {:>10.2}",
        "h5py f['kspace'][()]",
        h5py,
        mb / 1e3 / h5py
    );
}
