//! The one source of Gaussian noise of a sampler run.
//!
//! On the CPU every draw (initial sample, measurement noise `z` of `y_t`, predictor and
//! corrector noise) comes from ChaCha8 streams seeded by `SamplerOptions::seed`, in a fixed
//! order: each draw takes a key from the run's stream and fills fixed-size chunks in parallel,
//! chunk `i` from stream `i` of that key, so the result does not depend on the thread count.
//! A run is then bit-identical for the same seed whatever else the process does with
//! libtorch's global generator (tests run in parallel threads).
//!
//! On CUDA, generating on the host and copying would cost more than the network; there the
//! noise comes from libtorch's CUDA generator, seeded with the same seed at the start of the
//! run: reproducible on one GPU as long as nothing else in the process draws from it meanwhile.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// Values per parallel chunk (one ChaCha stream each).
const CHUNK: usize = 1 << 14;

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
                for v in chunk.iter_mut() {
                    *v = StandardNormal.sample(&mut r);
                }
            });
        Tensor::from_slice(&self.buf)
            .reshape(shape)
            .to_kind(Kind::Float)
            .to_device(device)
    }

    /// Standard normal noise with the shape and device of `like`.
    pub fn normal_like(&mut self, like: &Tensor) -> Tensor {
        self.normal(&like.size(), like.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
