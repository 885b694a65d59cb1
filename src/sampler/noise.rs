//! The one source of Gaussian noise of a sampler run.
//!
//! Every draw (initial sample, measurement noise `z` of `y_t`, predictor and corrector noise)
//! comes from one ChaCha8 stream seeded by `SamplerOptions::seed`, in a fixed order, generated
//! on the host and moved to the device. So a run is bit-identical for the same seed whatever
//! else the process does with libtorch's global generator (tests run in parallel threads), and
//! a CPU run and a CUDA run start from the same noise.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

pub struct NoiseSource {
    rng: ChaCha8Rng,
    buf: Vec<f32>,
}

impl NoiseSource {
    pub fn new(seed: u64) -> Self {
        NoiseSource {
            rng: ChaCha8Rng::seed_from_u64(seed),
            buf: Vec::new(),
        }
    }

    /// Standard normal f32 tensor of `shape` on `device`.
    pub fn normal(&mut self, shape: &[i64], device: Device) -> Tensor {
        let n: i64 = shape.iter().product();
        self.buf.clear();
        self.buf.reserve(n as usize);
        for _ in 0..n {
            let v: f32 = StandardNormal.sample(&mut self.rng);
            self.buf.push(v);
        }
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
