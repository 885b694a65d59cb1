//! Every Gaussian draw of the program, made on the host with ChaCha and then moved to the device.
//!
//! Why not `Tensor::randn`: tch's generators are global (a test elsewhere can change the stream)
//! and differ between CPU and CUDA, so the same seed would give different masks, noise and
//! start vectors on different machines. A ChaCha stream is the same everywhere.
//!
//! Three streams, each kept as it was when it had its own copy, so that a seed gives the same
//! numbers as before:
//! - [`standard_normal`]: Box-Muller on one ChaCha8 stream, in f64 (simulated measurement noise,
//!   power-iteration start vectors, test inputs);
//! - [`standard_normal_from`]: rand's ziggurat `StandardNormal` in f32 from a caller's stream
//!   (training: ChaCha20 stream `(seed, step)`);
//! - [`NoiseSource`]: the sampler's, the same f32 draws filled in parallel chunks (below).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
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

/// Fill `out` with standard normal f32 values drawn in order from `rng` (rand's ziggurat).
pub fn fill_standard_normal<R: Rng + ?Sized>(rng: &mut R, out: &mut [f32]) {
    for v in out.iter_mut() {
        *v = StandardNormal.sample(rng);
    }
}

/// `N(0, I)` samples of `shape` drawn in order from `rng`, as f32 on `device`.
pub fn standard_normal_from<R: Rng + ?Sized>(rng: &mut R, shape: &[i64], device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let mut z = vec![0f32; n as usize];
    fill_standard_normal(rng, &mut z);
    f32_tensor(&z, shape, device)
}

fn f32_tensor(values: &[f32], shape: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(values).reshape(shape).to_device(device)
}

/// Values per parallel chunk of [`NoiseSource`] (one ChaCha stream each).
const CHUNK: usize = 1 << 14;

/// The one source of Gaussian noise of a sampler run.
///
/// On the CPU every draw (initial sample, measurement noise `z` of `y_t`, predictor and
/// corrector noise) comes from ChaCha8 streams seeded by `SamplerOptions::seed`, in a fixed
/// order: each draw takes a key from the run's stream and fills fixed-size chunks in parallel,
/// chunk `i` from stream `i` of that key, so the result does not depend on the thread count.
/// A run is then bit-identical for the same seed whatever else the process does with
/// libtorch's global generator (tests run in parallel threads).
///
/// On CUDA, generating on the host and copying would cost more than the network; there the
/// noise comes from libtorch's CUDA generator, seeded with the same seed at the start of the
/// run: reproducible on one GPU as long as nothing else in the process draws from it meanwhile.
pub struct NoiseSource {
    rng: ChaCha8Rng,
    buf: Vec<f32>,
    on_device: bool,
}

impl NoiseSource {
    /// Host streams (bit-reproducible); see [`NoiseSource::for_device`] for CUDA.
    pub fn new(seed: u64) -> Self {
        NoiseSource {
            rng: ChaCha8Rng::seed_from_u64(seed),
            buf: Vec::new(),
            on_device: false,
        }
    }

    /// Host streams on the CPU; libtorch's generator, seeded with `seed`, on CUDA.
    pub fn for_device(seed: u64, device: Device) -> Self {
        let mut n = Self::new(seed);
        if device.is_cuda() {
            tch::manual_seed(seed as i64);
            n.on_device = true;
        }
        n
    }

    /// Standard normal f32 tensor of `shape` on `device`.
    pub fn normal(&mut self, shape: &[i64], device: Device) -> Tensor {
        if self.on_device {
            return Tensor::randn(shape, (Kind::Float, device));
        }
        let n: i64 = shape.iter().product();
        let key: u64 = self.rng.random();
        self.buf.resize(n as usize, 0.0);
        self.buf
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(i, chunk)| {
                let mut r = ChaCha8Rng::seed_from_u64(key);
                r.set_stream(i as u64);
                fill_standard_normal(&mut r, chunk);
            });
        f32_tensor(&self.buf, shape, device)
    }

    /// Standard normal noise with the shape and device of `like`.
    pub fn normal_like(&mut self, like: &Tensor) -> Tensor {
        self.normal(&like.size(), like.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;

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

    #[test]
    fn same_seed_same_noise_and_moments_are_standard() {
        let a = NoiseSource::new(7).normal(&[4, 1, 64, 64], Device::Cpu);
        let b = NoiseSource::new(7).normal(&[4, 1, 64, 64], Device::Cpu);
        let c = NoiseSource::new(8).normal(&[4, 1, 64, 64], Device::Cpu);
        assert!(a.equal(&b));
        assert!(!a.equal(&c));
        // 16384 draws: the mean has standard error 1/128, the variance about 0.011.
        let m = f64::try_from(a.mean(Kind::Double)).unwrap();
        let v = f64::try_from(a.var(true)).unwrap();
        assert!(m.abs() < 4.0 / 128.0, "mean {m}");
        assert!((v - 1.0).abs() < 0.05, "variance {v}");
    }

    /// The sampler's chunked draws and training's sequential ones share `fill_standard_normal`:
    /// chunk `i` of a draw is that function on ChaCha8 stream `i` of the draw's key, and a
    /// training draw is that function on the caller's stream, in order.
    #[test]
    fn chunked_and_sequential_draws_are_the_shared_fill() {
        let n = 2 * CHUNK + 5;
        let got = NoiseSource::new(3).normal(&[n as i64], Device::Cpu);
        let key: u64 = ChaCha8Rng::seed_from_u64(3).random();
        let mut want = vec![0f32; n];
        for (i, chunk) in want.chunks_mut(CHUNK).enumerate() {
            let mut r = ChaCha8Rng::seed_from_u64(key);
            r.set_stream(i as u64);
            for v in chunk.iter_mut() {
                *v = r.sample(StandardNormal);
            }
        }
        assert!(got.equal(&Tensor::from_slice(&want)));

        let mut r1 = ChaCha20Rng::seed_from_u64(4);
        let mut r2 = ChaCha20Rng::seed_from_u64(4);
        let z = standard_normal_from(&mut r1, &[3, 7], Device::Cpu);
        let want: Vec<f32> = (0..21).map(|_| r2.sample(StandardNormal)).collect();
        assert!(z.equal(&Tensor::from_slice(&want).reshape([3, 7])));
        // The caller's stream advances by exactly the draws made.
        assert_eq!(r1.random::<u64>(), r2.random::<u64>());
    }
}
