//! Speed of the CT operators against scikit-image, side by side in one run.
//!
//! `cargo bench --bench operators` (or `make bench`). For each size (256 and 512, 180 views)
//! it alternates rounds: our forward projection and FBP (ramp) on all threads, then on one
//! thread, then scikit-image's `radon` / `iradon(circle=False)` on the same phantom through
//! `.venv/bin/python` (single-threaded); each side reports the median of its repetitions within
//! a round, and the table gives the median over rounds. The machine may be shared, hence
//! interleaving and medians. Figures go to docs/benchmarks.md.

use scorerecon::ops::ct::fbp::Filter;
use scorerecon::ops::ct::{Geometry, Radon};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
mod common;
use common::{median, phantom};

const SKIMAGE_TIMING: &str = r#"
import sys, time, numpy as np
from skimage.transform import radon, iradon
img = np.fromfile(sys.argv[1], dtype="<f4").astype(np.float64)
n = int(round(img.size ** 0.5)); img = img.reshape(n, n)
reps = int(sys.argv[2]); theta = np.arange(180.0)
tf, tb = [], []
for _ in range(reps):
    t0 = time.perf_counter(); s = radon(img, theta, circle=False); t1 = time.perf_counter()
    iradon(s, theta, circle=False, filter_name="ramp", interpolation="linear"); t2 = time.perf_counter()
    tf.append(t1 - t0); tb.append(t2 - t1)
print(np.median(tf), np.median(tb))
"#;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let rounds = 5;
    let single = common::table_and_single_thread_pool("scikit-image");
    for (n, reps_ours, reps_sk) in [(256usize, 20, 3), (512, 10, 2)] {
        let radon = Radon::new(Geometry::new(n, 180).unwrap()).unwrap();
        let img = phantom(n);
        let all: Vec<usize> = (0..180).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.f32");
        let bytes: Vec<u8> = img.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let time_ours = || {
            let (mut tf, mut tb) = (vec![], vec![]);
            for _ in 0..reps_ours {
                let t0 = Instant::now();
                let sino = radon.project(&img, 1);
                let t1 = Instant::now();
                let rec =
                    scorerecon::ops::ct::fbp::fbp(radon.geometry(), &sino, 1, Filter::Ramp, &all)
                        .unwrap();
                let t2 = Instant::now();
                std::hint::black_box(rec);
                tf.push((t1 - t0).as_secs_f64());
                tb.push((t2 - t1).as_secs_f64());
            }
            (median(tf), median(tb))
        };
        let (mut of, mut ob, mut of1, mut ob1, mut sf, mut sb) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let (f, b) = time_ours();
            of.push(f);
            ob.push(b);
            let (f, b) = single.install(time_ours);
            of1.push(f);
            ob1.push(b);
            let out = Command::new(&python)
                .arg("-c")
                .arg(SKIMAGE_TIMING)
                .arg(&path)
                .arg(reps_sk.to_string())
                .output()
                .expect("run .venv/bin/python (scripts/setup.sh creates it)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let v: Vec<f64> = text
                .split_whitespace()
                .map(|s| s.parse().unwrap())
                .collect();
            sf.push(v[0]);
            sb.push(v[1]);
        }
        for (name, ours, ours1, theirs) in [
            ("forward projection", of, of1, sf),
            ("FBP (ramp)", ob, ob1, sb),
        ] {
            let (o, o1, t) = (
                median(ours) * 1e3,
                median(ours1) * 1e3,
                median(theirs) * 1e3,
            );
            println!(
                "| {n}x{n}, 180 views | {name} | {o:.2} | {o1:.2} | {t:.1} | {:.0}x | {:.0}x |",
                t / o,
                t / o1
            );
        }
    }
}
