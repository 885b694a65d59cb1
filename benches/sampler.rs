//! Sampler speed (docs/benchmarks.md, "## Sampler"):
//!
//! 1. one network evaluation of the default CPU model (configs/ncsnpp_cpu.yaml, random
//!    weights) at 256x256, batch 1 and 8: median time, NFE/s and images/s;
//! 2. everything a sampling step does except the network (proximal step with `y_t`, noise,
//!    predictor/corrector arithmetic, NaN guard, bookkeeping): the same PC loop run with the
//!    Gaussian prior, whose score is one elementwise expression, divided by its NFE;
//! 3. the ratio of the two, per score evaluation (target <= 10%);
//! 4. the same architecture in PyTorch eager (scripts/ncsnpp_torch.py, `.venv`), same input
//!    size, batch, device and number of repetitions, timed in the same run: tch / eager.
//!
//! Operators: inpainting (`T = I`) and the centred orthonormal 2-D FFT (MRI's `T`:
//! `ops::mri::MriFft` on real images, the operator the MRI pipeline uses). Run:
//! `cargo bench --bench sampler` (`SAMPLER_BENCH_REPS=n` for more repetitions,
//! `SAMPLER_BENCH_THREADS=n` for torch's intra-op threads (default 1), `SAMPLER_BENCH_DEVICE=cuda`
//! on a GPU).

use scorerecon::ops::identity::Identity;
use scorerecon::ops::mri::MriFft;
use scorerecon::ops::MeasurementOperator;
use scorerecon::prior::gaussian::GaussianPrior;
use scorerecon::prior::ncsnpp::{ModelSpec, NcsnppPrior};
use scorerecon::prior::ScoreModel;
use scorerecon::sampler::{reconstruct, SamplerKind, SamplerOptions};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};
mod common;
use common::median;

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// CPU seconds used by this process so far, all threads (Linux `/proc/self/stat` utime +
/// stime, in clock ticks of 1/100 s). Under a contended machine this is steadier than wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Median wall time and median CPU time (seconds) of `f` over `reps` calls after a warm-up.
fn time<F: FnMut()>(reps: usize, device: Device, mut f: F) -> (f64, f64) {
    f(); // warm-up
    sync(device);
    let mut wall = Vec::with_capacity(reps);
    let mut cpu = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (start, c0) = (Instant::now(), cpu_seconds());
        f();
        sync(device);
        wall.push(start.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c0);
    }
    (median(wall), median(cpu))
}

fn main() {
    let reps: usize = std::env::var("SAMPLER_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let device = match std::env::var("SAMPLER_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::Cuda(0),
        _ => Device::Cpu,
    };
    // One intra-op thread by default: on a shared machine, OpenMP workers spin while they wait
    // for a core and inflate both wall and CPU time; one thread measures the work itself.
    let threads: i32 = std::env::var("SAMPLER_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    tch::set_num_threads(threads);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let spec = ModelSpec::read(&root.join("configs/ncsnpp_cpu.yaml")).expect("config");
    tch::manual_seed(0);
    let net =
        NcsnppPrior::new(&spec.model, spec.sde, spec.normalisation.clone(), device).expect("model");
    let [h, w] = net.image_size();
    let gauss = GaussianPrior::constant(0.5, 0.2, 1, h, w, spec.sde, device).expect("prior");
    println!(
        "device {device:?}, torch threads {}, {}, reps {reps} (medians)",
        tch::get_num_threads(),
        net.describe()
    );
    println!();
    println!("| batch | tch wall (ms) | eager wall (ms) | tch / eager wall | tch CPU (ms) | eager CPU (ms) | tch / eager CPU | NFE/s (CPU time) | images/s (CPU time) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut loop_rows = Vec::new();

    let steps = 20;
    for batch in [1i64, 8] {
        let x = Tensor::rand([batch, 1, h, w], (Kind::Float, device));
        let sigma = Tensor::full([batch], 1.0, (Kind::Float, device));
        let (t_net, c_net) = time(reps, device, || {
            let _ = net.score(&x, &sigma).unwrap();
        });
        let fmt = |v: Option<f64>, d: usize| v.map_or("n/a".to_string(), |v| format!("{v:.d$}"));
        let eager = eager_ms(&root, &spec, batch, reps, device);
        let (e_wall, e_cpu) = (eager.map(|e| e.0), eager.map(|e| e.1));
        println!(
            "| {batch} | {:.1} | {} | {} | {:.1} | {} | {} | {:.3} | {:.3} |",
            t_net * 1e3,
            fmt(e_wall, 1),
            fmt(e_wall.map(|e| t_net * 1e3 / e), 3),
            c_net * 1e3,
            fmt(e_cpu, 1),
            fmt(e_cpu.map(|e| c_net * 1e3 / e), 3),
            1.0 / c_net,
            batch as f64 / c_net
        );
        let mask = Tensor::rand([1, 1, h, w], (Kind::Float, device))
            .gt(0.75)
            .to_kind(Kind::Float);
        let ops: Vec<(&str, MeasurementOperator)> = vec![
            (
                "inpainting (T = I)",
                MeasurementOperator::new(Box::new(Identity::new(h, w)), mask.shallow_clone()),
            ),
            (
                "centred FFT",
                MeasurementOperator::new(
                    Box::new(MriFft::real(h, w).expect("image size")),
                    mask.shallow_clone(),
                ),
            ),
        ];
        for (name, op) in ops {
            let y = op.forward(&Tensor::rand([1, 1, h, w], (Kind::Float, device)));
            let opts = SamplerOptions {
                sampler: SamplerKind::Pc,
                steps,
                corrector_steps: 1,
                lambda: 0.9,
                samples: batch as usize,
                final_denoise: false,
                noise_free_measurement: false,
                progress: false,
                ..Default::default()
            };
            let nfe = (steps * 2 - 1) as f64;
            let (t_loop, c_loop) = time(reps.clamp(1, 3), device, || {
                let _ = reconstruct(&gauss, &op, &y, &opts).unwrap();
            });
            let (t_loop, c_loop) = (t_loop / nfe, c_loop / nfe);
            loop_rows.push(format!(
                "| {batch} | {name} | {:.1} | {:.2} | {:.1}% | {:.1} | {:.2} | {:.1}% |",
                t_net * 1e3,
                t_loop * 1e3,
                100.0 * t_loop / t_net,
                c_net * 1e3,
                c_loop * 1e3,
                100.0 * c_loop / c_net
            ));
        }
    }
    println!();
    println!("| batch | operator | network wall (ms) | non-network wall per NFE (ms) | ratio wall | network CPU (ms) | non-network CPU per NFE (ms) | ratio CPU |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in loop_rows {
        println!("{r}");
    }
}

/// Median wall and CPU ms of one forward of the same architecture in PyTorch eager (None when
/// the venv's Python is not there).
fn eager_ms(
    root: &std::path::Path,
    spec: &ModelSpec,
    batch: i64,
    reps: usize,
    device: Device,
) -> Option<(f64, f64)> {
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/ncsnpp_torch.py"))
        .args([
            "bench",
            &serde_json::to_string(&spec.model).ok()?,
            &batch.to_string(),
            &reps.to_string(),
            &tch::get_num_threads().to_string(),
            if device == Device::Cpu { "cpu" } else { "cuda" },
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "PyTorch eager bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut v = text
        .split_whitespace()
        .filter_map(|t| t.parse::<f64>().ok());
    Some((v.next()?, v.next()?))
}
