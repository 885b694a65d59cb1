//! What a training config feeds the network: a PNG grid of augmented training images (first
//! row: as read; the rows below: the same images deformed by the config's `augment:` settings),
//! to check that the deformations still look like plausible scans before a long run:
//!
//!     cargo run --release --example augment_preview -- configs/train_mri_aug.yaml \
//!         data/cache/nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz out/aug.png
//!
//! arguments: training config, data path, output PNG, [images per row = 6], [seed = 0].

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use scorerecon::train::{augment, data::DataSet, preview, TrainConfig};
use tch::{Device, Tensor};

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 3 {
        anyhow::bail!("usage: augment_preview CONFIG.yaml DATA OUT.png [N=6] [SEED=0]");
    }
    let n: i64 = a.get(3).map(|s| s.parse()).transpose()?.unwrap_or(6);
    let seed: u64 = a.get(4).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let mut cfg = TrainConfig::from_file(std::path::Path::new(&a[0]))?;
    cfg.data = vec![a[1].clone().into()];
    let data = DataSet::load(&cfg)?;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let x = data.train_batch(&mut rng, n, cfg.image_size, &cfg, Device::Cpu);
    let mut rows = vec![x.shallow_clone()];
    for _ in 0..3 {
        let mut forced = cfg.augment.clone();
        forced.probability = 1.0;
        rows.push(augment::augment(&x, &forced, &mut rng));
    }
    preview::write_grid(
        &Tensor::cat(&rows, 0),
        n as usize,
        std::path::Path::new(&a[2]),
        true,
    )?;
    println!("{}: {} rows of {n}", a[2], rows.len());
    Ok(())
}
