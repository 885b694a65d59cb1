//! Unconditional samples from a trained prior, laid out as a PNG grid: the quickest look at
//! whether a model has learnt its domain (model cards show one). Sampling is the library's own
//! predictor-corrector sampler with the measurement switched off (`lambda = 0`, an empty mask),
//! so the grid shows exactly what reconstructions start from.

use crate::ops::identity::Identity;
use crate::ops::MeasurementOperator;
use crate::prior::ScoreModel;
use crate::sampler::{reconstruct, SamplerKind, SamplerOptions};
use anyhow::{bail, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// `n` unconditional PC samples (`steps` noise levels, Langevin snr 0.16 as score_sde's
/// unconditional VE setting), `[n, C, H, W]` in model space.
pub fn unconditional_samples(
    model: &dyn ScoreModel,
    n: usize,
    steps: usize,
    seed: u64,
) -> Result<Tensor> {
    if n == 0 {
        bail!("--preview 0: nothing to sample");
    }
    let [h, w] = model.image_size();
    let device = model.device();
    let mask = Tensor::zeros([1, 1, h, w], (Kind::Float, device));
    let op = MeasurementOperator::new(Box::new(Identity::new(h, w)), mask).to_device(device);
    let y = Tensor::zeros([1, model.channels(), h, w], (Kind::Float, device));
    let opts = SamplerOptions {
        sampler: SamplerKind::Pc,
        steps,
        snr: 0.16,
        lambda: 0.0,
        seed,
        samples: n,
        noise_free_measurement: false,
        progress: false,
        // A preview shows what the model draws, however far from its data range (NaN/Inf
        // still stop it).
        divergence_guard: false,
        ..Default::default()
    };
    let post = reconstruct(model, &op, &y, &opts)?;
    Ok(post.samples.reshape([n as i64, model.channels(), h, w]))
}

/// Write `samples` (`[n, 1, H, W]`, model space) as a PNG grid of `cols` columns, each image
/// mapped from [0, 1] to 8 bits (values outside are clipped in the picture only).
pub fn write_grid(samples: &Tensor, cols: usize, path: &Path, force: bool) -> Result<()> {
    let size = samples.size();
    let (n, h, w) = (size[0] as usize, size[2] as usize, size[3] as usize);
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    const GAP: usize = 2;
    let (gw, gh) = (cols * w + (cols - 1) * GAP, rows * h + (rows - 1) * GAP);
    let mut grid = vec![255u8; gw * gh];
    let values = crate::tensor::tensor_to_vec(samples);
    for i in 0..n {
        let (r, c) = (i / cols, i % cols);
        for y in 0..h {
            for x in 0..w {
                let v = values[i * h * w + y * w + x];
                grid[(r * (h + GAP) + y) * gw + c * (w + GAP) + x] =
                    (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    crate::io::png::write_png_gray(path, gw, gh, &grid, force)
}
