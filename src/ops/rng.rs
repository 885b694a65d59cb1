//! Seeded Gaussian draws made on the host with ChaCha and then moved to the device.
//!
//! Why not `Tensor::randn`: tch's generators are global (a test elsewhere can change the stream)
//! and differ between CPU and CUDA, so the same seed would give different masks, noise and
//! start vectors on different machines. A ChaCha stream is the same everywhere.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// `n` independent standard normal values (Box-Muller on ChaCha8 uniforms), in f64.
pub fn standard_normal_vec(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // u1 in (0, 1] so that ln(u1) is finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let phi = std::f64::consts::TAU * u2;
        out.push(r * phi.cos());
        out.push(r * phi.sin());
    }
    out.truncate(n);
    out
}

/// A tensor of shape `shape` with i.i.d. N(0, 1) entries, kind `kind` (a real float kind),
/// reproducible from `seed` on every device.
pub fn standard_normal(shape: &[i64], seed: u64, kind: Kind, device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = standard_normal_vec(n.max(0) as usize, &mut rng);
    Tensor::from_slice(&v)
        .reshape(shape)
        .to_kind(kind)
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_reproducibility() {
        let a = standard_normal(&[200_000], 7, Kind::Double, Device::Cpu);
        let b = standard_normal(&[200_000], 7, Kind::Double, Device::Cpu);
        assert!(a.equal(&b));
        let mean = a.mean(Kind::Double).double_value(&[]);
        let var = a.var(true).double_value(&[]);
        // Standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
        let c = standard_normal(&[1000], 8, Kind::Double, Device::Cpu);
        assert!(!c.equal(&a.narrow(0, 0, 1000)));
    }
}
