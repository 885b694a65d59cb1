//! Posterior samples through the network in batches (docs/benchmarks.md, "## Batching"):
//! images/s of one whole reconstruction with the shipped CT prior (`ct_head_128`, 128x128,
//! 23 of 180 views, Shepp-Logan in HU), `S` posterior samples drawn as one batch of `S`
//! images per network call (`batch: 0`) against the same `S` images one per call
//! (`batch: 1`), side by side in one run, for DDS (25 levels) and for one network evaluation
//! alone. Run: `cargo bench --bench batching` (`BATCHING_BENCH_SAMPLES=8`,
//! `BATCHING_BENCH_REPS=3`; torch threads from `OMP_NUM_THREADS`).

use scorerecon::ops::ct::{self, Geometry, Radon};
use scorerecon::ops::MeasurementOperator;
use scorerecon::prior::load_prior;
use scorerecon::sampler::{reconstruct, SamplerKind, SamplerOptions};
use std::time::Instant;
use tch::{Device, Kind, Tensor};
mod common;
use common::median;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let samples = env("BATCHING_BENCH_SAMPLES", 8);
    let reps = env("BATCHING_BENCH_REPS", 3);
    let model = load_prior("ct_head_128", Device::Cpu).expect("shipped prior ct_head_128");
    let [h, w] = model.image_size();
    let n = h as usize;
    let g = Geometry::new(n, 180).expect("geometry");
    let rows = ct::sparse_view_rows(180, 23).expect("views");
    let op = MeasurementOperator::new(
        Box::new(Radon::new(g.clone()).expect("projector")),
        ct::rows_mask(&rows, 180, g.n_det),
    );
    let (hu, _) = scorerecon::phantom::phantom_hu("shepp-logan", n, 0).expect("phantom");
    let image = Tensor::from_slice(&hu).reshape([1, 1, h, w]);
    let scaling = model.normalisation().fit(&hu).expect("normalisation");
    let x = scaling.to_model_tensor(&image).to_kind(Kind::Float);
    let y = op.forward(&x);
    println!(
        "{}; {samples} posterior samples; torch threads {}; medians of {reps} rounds, the two batch sizes interleaved",
        model.describe(),
        tch::get_num_threads()
    );
    println!();
    println!(
        "| what | images per network call | seconds for {samples} images | images/s | speed-up |"
    );
    println!("|---|---|---|---|---|");
    // One network evaluation of `samples` images: all at once or one at a time.
    let xs = Tensor::rand([samples as i64, 1, h, w], (Kind::Float, Device::Cpu));
    let sig = Tensor::full([samples as i64], 1.0, (Kind::Float, Device::Cpu));
    let mut net = [Vec::new(), Vec::new()];
    let mut dds = [Vec::new(), Vec::new()];
    let _guard = tch::no_grad_guard();
    for _ in 0..reps {
        for (k, one) in [(0usize, true), (1, false)] {
            let t0 = Instant::now();
            if one {
                for i in 0..samples as i64 {
                    let _ = model
                        .score(&xs.narrow(0, i, 1), &sig.narrow(0, i, 1))
                        .unwrap();
                }
            } else {
                let _ = model.score(&xs, &sig).unwrap();
            }
            net[k].push(t0.elapsed().as_secs_f64());
            let opts = SamplerOptions {
                sampler: SamplerKind::Dds,
                steps: 25,
                samples,
                batch: if one { 1 } else { 0 },
                progress: false,
                ..Default::default()
            };
            let t0 = Instant::now();
            reconstruct(model.as_ref(), &op, &y, &opts).expect("DDS");
            dds[k].push(t0.elapsed().as_secs_f64());
        }
    }
    for (what, t) in [
        ("one network evaluation", &net),
        ("DDS, 25 levels (whole reconstruction)", &dds),
    ] {
        let (one, all) = (median(t[0].clone()), median(t[1].clone()));
        println!(
            "| {what} | 1 | {one:.2} | {:.2} | 1.00 |",
            samples as f64 / one
        );
        println!(
            "| {what} | {samples} | {all:.2} | {:.2} | {:.2} |",
            samples as f64 / all,
            one / all
        );
    }
}
