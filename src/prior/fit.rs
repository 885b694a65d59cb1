//! Does an image look like what the prior learnt? A prior can be confidently wrong on a scan
//! unlike its training data (an MRI prior on CT, a skull-stripped brain prior on a whole head),
//! so every reconstruction is checked with a statistic that needs no reference image:
//!
//!   `r(x) = mean over sigma in S, draws z of  || sigma s(x + sigma z, sigma) + z ||^2 / n`,
//!
//! the denoising score-matching loss of the model at the image itself (the quantity its
//! training minimised, method.md "Training"), over a few fixed noise levels `S` and seeded draws.
//! On images like the training data it takes the values it took on the held-out validation
//! images; on images unlike them the model's denoiser fails and `r` grows. The validation
//! distribution is stored in the model's metadata ([`FitRange`], written by `scorerecon train`
//! and `scorerecon calibrate`); a reconstruction whose `r` exceeds [`FitRange::limit`] is flagged.

use super::ScoreModel;
use crate::ops::rng::standard_normal;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Noise levels of the statistic, in model units (images on [0, ~1]): fine to coarse structure.
pub const FIT_SIGMAS: [f64; 4] = [0.02, 0.05, 0.1, 0.2];
/// Noise draws per level.
pub const FIT_DRAWS: usize = 2;
/// Seed of the draws: the statistic of an image is a fixed number.
pub const FIT_SEED: u64 = 7;

/// The statistic's distribution over a prior's validation images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitRange {
    /// `"dsm_residual"`: the formula above.
    pub statistic: String,
    pub sigmas: Vec<f64>,
    pub draws: usize,
    pub seed: u64,
    /// Over the validation images.
    pub n_images: usize,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
    /// Where the validation images came from (subjects, slices).
    pub source: String,
}

impl FitRange {
    /// The largest value still taken as "like the validation images": the validation maximum
    /// plus three standard deviations (a reconstruction is never exactly a validation image; a
    /// mismatched domain lands far above, see docs/models.md "Prior fit").
    pub fn limit(&self) -> f64 {
        self.max + 3.0 * self.sd
    }

    /// The range of `values` (the statistic of validation images).
    pub fn of(values: &[f64], source: &str) -> Result<Self> {
        ensure!(!values.is_empty(), "prior fit: no validation images");
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        Ok(FitRange {
            statistic: "dsm_residual".into(),
            sigmas: FIT_SIGMAS.to_vec(),
            draws: FIT_DRAWS,
            seed: FIT_SEED,
            n_images: values.len(),
            mean,
            sd,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            source: source.into(),
        })
    }
}

/// What a report says about one method's reconstructions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorFit {
    /// The mean of the statistic over the job's slices.
    pub value: f64,
    /// The largest value per slice.
    pub worst: f64,
    /// The validation range it is compared with: `[min, limit]`.
    pub validation_min: f64,
    pub limit: f64,
    /// Every slice within the limit.
    pub in_range: bool,
}

impl PriorFit {
    pub fn new(per_slice: &[f64], range: &FitRange) -> Option<Self> {
        if per_slice.is_empty() {
            return None;
        }
        let worst = per_slice.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(PriorFit {
            value: per_slice.iter().sum::<f64>() / per_slice.len() as f64,
            worst,
            validation_min: range.min,
            limit: range.limit(),
            in_range: worst <= range.limit(),
        })
    }
}

/// `r(x)` of each image of `x` (`[B, C, H, W]`, model space, on the model's device).
pub fn dsm_residual(model: &dyn ScoreModel, x: &Tensor) -> Result<Vec<f64>> {
    let _guard = tch::no_grad_guard();
    let size = x.size();
    ensure!(
        size.len() == 4,
        "prior fit: expected [B, C, H, W] images, got {size:?}"
    );
    let b = size[0];
    let n = (size[1] * size[2] * size[3]) as f64;
    let x = x.to_kind(Kind::Float).to_device(model.device());
    let mut total = Tensor::zeros([b], (Kind::Double, model.device()));
    let mut k = 0u64;
    for &sigma in &FIT_SIGMAS {
        for _ in 0..FIT_DRAWS {
            let z = standard_normal(&size, FIT_SEED + k, Kind::Float, model.device());
            k += 1;
            let s = model.score(
                &(&x + &z * sigma),
                &Tensor::full([b], sigma, (Kind::Float, model.device())),
            )?;
            let r = (s * sigma + &z)
                .to_kind(Kind::Double)
                .square()
                .reshape([b, -1])
                .sum_dim_intlist(1, false, Kind::Double);
            total += r / n;
        }
    }
    let total = total / (FIT_SIGMAS.len() * FIT_DRAWS) as f64;
    Ok(Vec::<f64>::try_from(total.to_device(tch::Device::Cpu))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prior::gaussian::GaussianPrior;

    #[test]
    fn the_residual_of_the_exact_gaussian_score_has_its_closed_form() {
        // For a Gaussian prior N(mu, s0^2 I), x ~ that prior: sigma s(x + sigma z) + z
        // = z - sigma (x - mu + sigma z) / (s0^2 + sigma^2), whose mean square over x and z is
        // s0^2 / (s0^2 + sigma^2).
        let (mu, s0) = (0.3, 0.5);
        let sde = crate::sde::VeSde::new(0.01, 10.0).unwrap();
        let prior = GaussianPrior::constant(mu, s0, 1, 32, 32, sde, tch::Device::Cpu).unwrap();
        let x = standard_normal(&[8, 1, 32, 32], 1, Kind::Float, tch::Device::Cpu) * s0 + mu;
        let r = dsm_residual(&prior, &x).unwrap();
        let expected: f64 = FIT_SIGMAS
            .iter()
            .map(|s| s0 * s0 / (s0 * s0 + s * s))
            .sum::<f64>()
            / FIT_SIGMAS.len() as f64;
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        assert!((mean - expected).abs() < 0.01, "{mean} vs {expected}");
        // An image far from the prior's mean scores far above it.
        let far = Tensor::full([1, 1, 32, 32], 5.0, (Kind::Float, tch::Device::Cpu));
        assert!(dsm_residual(&prior, &far).unwrap()[0] > 3.0 * expected);
    }

    #[test]
    fn ranges_flag_values_past_their_limit() {
        let range = FitRange::of(&[1.0, 1.2, 1.1], "test").unwrap();
        assert!((range.mean - 1.1).abs() < 1e-12 && range.max == 1.2 && range.min == 1.0);
        assert!(PriorFit::new(&[1.15], &range).unwrap().in_range);
        assert!(!PriorFit::new(&[1.0, 3.0], &range).unwrap().in_range);
        assert!(PriorFit::new(&[], &range).is_none());
        assert!(FitRange::of(&[], "x").is_err());
    }
}
