//! The Gaussian prior `x ~ N(mu, s^2 I)`: the one prior whose perturbed score is known exactly,
//!
//!   `p_sigma = N(mu, (s^2 + sigma^2) I)`,  `grad log p_sigma(x) = (mu - x) / (s^2 + sigma^2)`,
//!
//! so samplers can be checked against closed-form posteriors (tests/sampler.rs) and users can
//! check a measurement set-up without a trained model.

use super::{Normalisation, ScoreModel};
use crate::sde::VeSde;
use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

pub struct GaussianPrior {
    /// `[1, C, H, W]` mean.
    mu: Tensor,
    /// Prior standard deviation `s` per pixel.
    s: f64,
    sde: VeSde,
    normalisation: Normalisation,
}

impl GaussianPrior {
    /// `mu`: `[C, H, W]` or `[1, C, H, W]`; `s > 0`; the SDE gives the sampler's noise range
    /// (choose `sigma_max` well above `s` so that `N(0, sigma_max^2)` covers the prior).
    pub fn new(mu: &Tensor, s: f64, sde: VeSde) -> Result<Self> {
        if !(s > 0.0 && s.is_finite()) {
            bail!("Gaussian prior: the standard deviation s must be positive (got {s})");
        }
        let mu = match mu.dim() {
            3 => mu.unsqueeze(0),
            4 if mu.size()[0] == 1 => mu.shallow_clone(),
            _ => bail!(
                "Gaussian prior: mu must be [C, H, W] or [1, C, H, W] (got {:?})",
                mu.size()
            ),
        };
        Ok(GaussianPrior {
            mu: mu.to_kind(Kind::Float),
            s,
            sde,
            normalisation: Normalisation::Identity,
        })
    }

    /// A constant mean `mu0` over `[channels, h, w]`.
    pub fn constant(
        mu0: f64,
        s: f64,
        channels: i64,
        h: i64,
        w: i64,
        sde: VeSde,
        device: Device,
    ) -> Result<Self> {
        let mu = Tensor::full([1, channels, h, w], mu0, (Kind::Float, device));
        Self::new(&mu, s, sde)
    }

    pub fn mean(&self) -> &Tensor {
        &self.mu
    }

    pub fn std(&self) -> f64 {
        self.s
    }
}

impl ScoreModel for GaussianPrior {
    fn score(&self, x: &Tensor, sigma: &Tensor) -> Result<Tensor> {
        let var = sigma.to_kind(Kind::Float).square().reshape([-1, 1, 1, 1]) + self.s * self.s;
        Ok((&self.mu - x) / var)
    }
    fn image_size(&self) -> [i64; 2] {
        let s = self.mu.size();
        [s[2], s[3]]
    }
    fn channels(&self) -> i64 {
        self.mu.size()[1]
    }
    fn sde(&self) -> VeSde {
        self.sde
    }
    fn normalisation(&self) -> &Normalisation {
        &self.normalisation
    }
    fn device(&self) -> Device {
        self.mu.device()
    }
    fn describe(&self) -> String {
        let [h, w] = self.image_size();
        format!("Gaussian prior N(mu, {}^2 I) on {h}x{w}", self.s)
    }
}
