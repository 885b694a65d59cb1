//! Noise schedules (method.md, "VE SDE and noise scales"; paper 004, chapters 6-7).
//!
//! Only the variance-exploding SDE is implemented: every model of the paper (CT and MRI) uses
//! it, and `p_0t(x_t | x_0) = N(x_0, sigma(t)^2 I)` is what the measurement noise path
//! `y_t = y + sigma(t) A z` (alpha = 1, beta = sigma) is written for. A VP SDE would need
//! `alpha(t) != 1` throughout the samplers; it is left out rather than half supported.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Smallest time of the continuous schedule, `t in [eps, 1]` (method.md).
pub const T_EPS: f64 = 1e-5;

/// The VE SDE `dx = g(t) dw`, `sigma(t) = sigma_min (sigma_max / sigma_min)^t`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VeSde {
    pub sigma_min: f64,
    pub sigma_max: f64,
}

impl VeSde {
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        if !(sigma_min.is_finite() && sigma_max.is_finite()) || sigma_min <= 0.0 {
            bail!("VE SDE: sigma_min must be a positive number (got {sigma_min})");
        }
        if sigma_max <= sigma_min {
            bail!("VE SDE: sigma_max ({sigma_max}) must exceed sigma_min ({sigma_min})");
        }
        Ok(VeSde {
            sigma_min,
            sigma_max,
        })
    }

    /// `sigma(t) = sigma_min (sigma_max / sigma_min)^t`.
    pub fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(t)
    }

    /// `g(t)^2 = d sigma^2 / dt = 2 sigma(t)^2 ln(sigma_max / sigma_min)`.
    pub fn g2(&self, t: f64) -> f64 {
        2.0 * self.sigma(t).powi(2) * (self.sigma_max / self.sigma_min).ln()
    }

    /// The `n` discrete noise levels from `sigma_max` down to `sigma_min` (geometric, chapter 6:
    /// `sigma_i = sigma_min (sigma_max/sigma_min)^((i-1)/(N-1))`), in sampling order.
    pub fn levels(&self, n: usize) -> Vec<f64> {
        match n {
            0 => Vec::new(),
            1 => vec![self.sigma_max],
            _ => (0..n)
                .map(|i| self.sigma(1.0 - i as f64 / (n - 1) as f64))
                .collect(),
        }
    }

    /// Times `1 = t_0 > ... > t_{n-1} = eps` for the continuous-time solvers (Euler-Maruyama).
    pub fn times(&self, n: usize) -> Vec<f64> {
        match n {
            0 => Vec::new(),
            1 => vec![1.0],
            _ => (0..n)
                .map(|i| 1.0 - (1.0 - T_EPS) * i as f64 / (n - 1) as f64)
                .collect(),
        }
    }
}

/// A variance as the VE updates below receive it: one number for the whole batch (the
/// samplers' discrete levels, computed in f64) or one per image, a `[B, 1, 1, 1]` f32 tensor
/// (training draws a level per image). Each caller keeps the precision it computed in.
pub trait Variance {
    /// `t * v`.
    fn times(&self, t: &Tensor) -> Tensor;
    /// `t * sqrt(v)`.
    fn times_sqrt(&self, t: &Tensor) -> Tensor;
}

impl Variance for f64 {
    fn times(&self, t: &Tensor) -> Tensor {
        t * *self
    }
    fn times_sqrt(&self, t: &Tensor) -> Tensor {
        t * self.sqrt()
    }
}

impl Variance for Tensor {
    fn times(&self, t: &Tensor) -> Tensor {
        t * self
    }
    fn times_sqrt(&self, t: &Tensor) -> Tensor {
        t * self.sqrt()
    }
}

/// Tweedie's formula for the VE perturbation: `E[x_0 | x] = x + sigma^2 s(x, sigma)`, with
/// `score = s(x, sigma)` and `sigma2 = sigma^2`.
pub fn tweedie(x: &Tensor, score: &Tensor, sigma2: &impl Variance) -> Tensor {
    x + sigma2.times(score)
}

/// One reverse-diffusion step of the VE SDE (the ancestral predictor of chapter 7), from level
/// `sigma_i` to `sigma_{i+1}`: `x + d s + sqrt(d) z` with `d = sigma_i^2 - sigma_{i+1}^2`,
/// `score = s(x, sigma_i)` and `z ~ N(0, I)`. Euler-Maruyama is the same update with
/// `d = g(t)^2 dt`.
pub fn reverse_diffusion(x: &Tensor, score: &Tensor, z: &Tensor, d: &impl Variance) -> Tensor {
    x + d.times(score) + d.times_sqrt(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_geometric_from_sigma_max_to_sigma_min() {
        let sde = VeSde::new(0.01, 128.0).unwrap();
        let l = sde.levels(5);
        assert!((l[0] - 128.0).abs() < 1e-9 && (l[4] - 0.01).abs() < 1e-12);
        // Constant ratio between consecutive levels: (sigma_min/sigma_max)^(1/(N-1)).
        let r = (0.01f64 / 128.0).powf(0.25);
        for w in l.windows(2) {
            assert!((w[1] / w[0] - r).abs() < 1e-12);
        }
    }

    #[test]
    fn g2_is_the_derivative_of_sigma_squared() {
        let sde = VeSde::new(0.01, 50.0).unwrap();
        let (t, h) = (0.37, 1e-6);
        let fd = (sde.sigma(t + h).powi(2) - sde.sigma(t - h).powi(2)) / (2.0 * h);
        assert!((fd - sde.g2(t)).abs() / fd < 1e-6);
    }

    #[test]
    fn impossible_parameters_are_refused() {
        assert!(VeSde::new(0.0, 1.0).is_err());
        assert!(VeSde::new(1.0, 0.5).is_err());
        assert!(VeSde::new(f64::NAN, 1.0).is_err());
    }

    /// Gaussian data `x0 ~ N(mu, s0^2)`: at level sigma the perturbed density is
    /// `N(mu, v)`, `v = s0^2 + sigma^2`, with score `-(x - mu) / v`. Tweedie must give the
    /// posterior mean `mu + (s0^2 / v) (x - mu)`, and one reverse-diffusion step with variance
    /// `d` maps `N(mu, v)` to `N(mu, (1 - d / v)^2 v + d)`; both with one variance for the
    /// batch (f64) and one per image (`[B, 1, 1, 1]`).
    #[test]
    fn tweedie_and_reverse_diffusion_meet_the_gaussian_closed_forms() {
        use crate::ops::rng::standard_normal;
        use tch::{Device, Kind};
        let (mu, s0) = (0.3, 0.5);
        let sigmas = [0.2f64, 1.5];
        let n = 100_000i64;
        for (k, &sigma) in sigmas.iter().enumerate() {
            let v = s0 * s0 + sigma * sigma;
            let x =
                standard_normal(&[2, n], 10 + k as u64, Kind::Float, Device::Cpu) * v.sqrt() + mu;
            let score = (&x - mu).neg() / v;
            let per_image = Tensor::from_slice(&[(sigma * sigma) as f32; 2]).reshape([2, 1]);
            let want = (&x - mu) * (s0 * s0 / v) + mu;
            for got in [
                tweedie(&x, &score, &(sigma * sigma)),
                tweedie(&x, &score, &per_image),
            ] {
                let err = f64::try_from((got - &want).abs().max()).unwrap();
                assert!(err < 1e-5, "sigma {sigma}: Tweedie off by {err}");
            }
            let d = 0.6 * sigma * sigma;
            let z = standard_normal(&[2, n], 20 + k as u64, Kind::Float, Device::Cpu);
            let var_want = (1.0 - d / v).powi(2) * v + d;
            let per_image = Tensor::from_slice(&[d as f32; 2]).reshape([2, 1]);
            for next in [
                reverse_diffusion(&x, &score, &z, &d),
                reverse_diffusion(&x, &score, &z, &per_image),
            ] {
                let m = f64::try_from(next.mean(Kind::Double)).unwrap();
                let var = f64::try_from(next.var(true)).unwrap();
                // 200k draws: standard errors about 0.0022 sqrt(var) and 0.0032 var.
                assert!((m - mu).abs() < 0.01 * var_want.sqrt(), "mean {m} vs {mu}");
                assert!(
                    (var / var_want - 1.0).abs() < 0.015,
                    "variance {var} vs {var_want}"
                );
            }
        }
    }
}
