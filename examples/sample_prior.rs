//! Unconditional samples of a trained prior as a PNG grid (for model cards):
//!
//!     cargo run --release --example sample_prior -- models/ct_head_128.safetensors grid.png 16 200 0
//!
//! arguments: model, output PNG, number of samples, noise levels, seed.

use anyhow::{Context, Result};
use scorerecon::train::preview;

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 2 {
        anyhow::bail!("usage: sample_prior MODEL.safetensors OUT.png [N=16] [STEPS=200] [SEED=0]");
    }
    let arg = |i: usize, d: u64| -> Result<u64> {
        a.get(i)
            .map(|s| {
                s.parse::<u64>()
                    .with_context(|| format!("argument {}: {s}", i + 1))
            })
            .unwrap_or(Ok(d))
    };
    let (n, steps, seed) = (arg(2, 16)? as usize, arg(3, 200)? as usize, arg(4, 0)?);
    let model = scorerecon::prior::load_prior(&a[0], tch::Device::cuda_if_available())?;
    let t0 = std::time::Instant::now();
    let samples = preview::unconditional_samples(model.as_ref(), n, steps, seed)?;
    let cols = (n as f64).sqrt().ceil() as usize;
    preview::write_grid(&samples, cols, std::path::Path::new(&a[1]), true)?;
    println!(
        "{}: {n} samples, {steps} levels, {:.1} s",
        a[1],
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
