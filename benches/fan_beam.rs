//! Speed of the fan-beam projector against ASTRA's CPU `fanflat` projector, side by side in one
//! run.
//!
//! `cargo bench --bench fan_beam` (or `make bench`). For each size (256 and 512, 360 views over
//! a full scan, flat detector: the geometry ASTRA's CPU projectors take) it alternates rounds:
//! our forward projection `T` and matched back projection `T^T` on all threads, then on one
//! thread, then ASTRA's `line_fanflat` forward projection and back projection (its CPU code is
//! single-threaded) on the same phantom and geometry through `.venv/bin/python`. Each side
//! reports the median of its repetitions within a round; the table gives the median over
//! rounds (the machine may be shared, hence interleaving and medians). Figures go to
//! docs/benchmarks.md.

use scorerecon::ops::ct::{Detector, FanBeam, Geometry, Radon};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
mod common;
use common::{median, phantom};

const ASTRA_TIMING: &str = r#"
import sys, time, numpy as np, astra
img = np.fromfile(sys.argv[1], dtype="<f4")
n = int(round(img.size ** 0.5)); img = img.reshape(n, n)
reps, n_det = int(sys.argv[2]), int(sys.argv[3])
spacing, sid, idd = map(float, sys.argv[4:7])
angles = np.array([float(a) for a in sys.argv[7:]])
vg = astra.create_vol_geom(n, n)
pg = astra.create_proj_geom("fanflat", spacing, n_det, angles, sid, idd)
pid = astra.create_projector("line_fanflat", pg, vg)
sid_, sino = astra.create_sino(img, pid)
tf, tb = [], []
for _ in range(reps):
    t0 = time.perf_counter(); i1, s = astra.create_sino(img, pid); t1 = time.perf_counter()
    i2, b = astra.create_backprojection(s, pid); t2 = time.perf_counter()
    astra.data2d.delete([i1, i2])
    tf.append(t1 - t0); tb.append(t2 - t1)
print(np.median(tf), np.median(tb))
"#;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let rounds = 5;
    let single = common::table_and_single_thread_pool("ASTRA CPU line_fanflat");
    for (n, reps_ours, reps_astra) in [(256usize, 10, 3), (512, 4, 2)] {
        // The typical scanner with a flat detector, the image 1 mm per pixel (256 mm, 512 mm
        // fields of view would not fit a 595 mm source circle at 2 mm).
        let fan = FanBeam {
            detector: Detector::Flat,
            ..FanBeam::typical(1.0)
        };
        let g = Geometry::fan(n, 360, None, fan.clone()).unwrap();
        let radon = Radon::new(g.clone()).unwrap();
        let img = phantom(n);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.f32");
        let bytes: Vec<u8> = img.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let time_ours = || {
            let (mut tf, mut tb) = (vec![], vec![]);
            for _ in 0..reps_ours {
                let t0 = Instant::now();
                let s = radon.project(&img, 1);
                let t1 = Instant::now();
                std::hint::black_box(radon.backproject(&s, 1));
                tf.push((t1 - t0).as_secs_f64());
                tb.push(t1.elapsed().as_secs_f64());
            }
            (median(tf), median(tb))
        };
        let mut args = vec![
            path.to_str().unwrap().to_string(),
            reps_astra.to_string(),
            g.n_det.to_string(),
            (fan.detector_spacing_mm / fan.pixel_mm).to_string(),
            fan.sid().to_string(),
            (fan.sdd() - fan.sid()).to_string(),
        ];
        args.extend(g.angles_deg.iter().map(|a| a.to_radians().to_string()));
        let (mut ours, mut ours1, mut astra) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            ours.push(time_ours());
            ours1.push(single.install(time_ours));
            let out = Command::new(&python)
                .arg("-c")
                .arg(ASTRA_TIMING)
                .args(&args)
                .output()
                .expect("run .venv/bin/python (scripts/setup.sh installs astra-toolbox)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            astra.push((t[0], t[1]));
        }
        for (op, pick) in [("forward T", 0usize), ("back projection T^T", 1)] {
            let get = |v: &[(f64, f64)]| {
                median(
                    v.iter()
                        .map(|t| if pick == 0 { t.0 } else { t.1 })
                        .collect(),
                ) * 1e3
            };
            let (a, b, c) = (get(&ours), get(&ours1), get(&astra));
            println!(
                "| {n}, 360 views, {} bins | {op} | {a:.1} | {b:.1} | {c:.1} | {:.1}x | {:.1}x |",
                g.n_det,
                c / a,
                c / b
            );
        }
    }
}
