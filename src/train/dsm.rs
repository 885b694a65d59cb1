//! Denoising score matching for the VE SDE (method.md, "Training"; paper 004, chapter 7):
//!
//! `L = E_t E_x0 E_z || sigma(t) s_theta(x0 + sigma(t) z, sigma(t)) + z ||^2`, `t ~ U(eps, 1)`,
//!
//! i.e. the weighting `lambda(t) = sigma(t)^2` applied to `|| s_theta + z / sigma ||^2`. We report and
//! optimise the squared norm divided by the number of pixels, so the loss of a network that
//! outputs zero is 1 at every noise level and the numbers read the same at any image size (a
//! constant factor, which Adam does not see).

use super::net::ScoreNet;
use crate::ops::rng::standard_normal_from;
use crate::sde::VeSde;
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use tch::{Device, Kind, Tensor};

/// `sigma(t) = sigma_min (sigma_max / sigma_min)^t` of `sde` (`VeSde::sigma`), elementwise.
pub fn sigma_of_t(sde: &VeSde, t: &Tensor) -> Tensor {
    (t * (sde.sigma_max / sde.sigma_min).ln()).exp() * sde.sigma_min
}

/// One draw of the loss's randomness: times `t ~ U(eps, 1)` (`[B]`) and noise `z ~ N(0, I)`
/// shaped like the batch. Drawn on the host from the run's seeded stream, so a step's randomness
/// is the same on every device and after a resume.
pub fn draw_noise(
    rng: &mut ChaCha20Rng,
    shape: &[i64],
    t_eps: f64,
    device: Device,
) -> (Tensor, Tensor) {
    let b = shape[0] as usize;
    let t: Vec<f32> = (0..b)
        .map(|_| (t_eps + (1.0 - t_eps) * rng.random::<f64>()) as f32)
        .collect();
    let z = standard_normal_from(rng, shape, device);
    (Tensor::from_slice(&t).to_device(device), z)
}

/// Per-image DSM loss `|| sigma s(x0 + sigma z, sigma) + z ||^2 / n_pixels`, shape `[B]`.
/// `sigma`: `[B]`; `z`: like `x0`.
pub fn dsm_loss(
    net: &dyn ScoreNet,
    x0: &Tensor,
    sigma: &Tensor,
    z: &Tensor,
    train: bool,
) -> Tensor {
    let b = x0.size()[0];
    let s4 = sigma.reshape([b, 1, 1, 1]);
    let x_t = x0 + &s4 * z;
    let score = net.forward_t(&x_t, sigma, train).to_kind(Kind::Float);
    (score * &s4 + z)
        .square()
        .reshape([b, -1])
        .mean_dim(1, false, Kind::Float)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The exact score of `x0 ~ N(mu, s0^2 I)` perturbed by `N(0, sigma^2 I)`, optionally scaled
    /// (a wrong score) by `gain`.
    pub struct GaussianScore {
        pub mu: f64,
        pub s0: f64,
        pub gain: f64,
    }

    impl ScoreNet for GaussianScore {
        fn forward_t(&self, x: &Tensor, sigma: &Tensor, _train: bool) -> Tensor {
            let b = x.size()[0];
            let var = sigma.square().reshape([b, 1, 1, 1]) + self.s0 * self.s0;
            (x - self.mu).neg() / var * self.gain
        }
    }

    #[test]
    fn exact_gaussian_score_meets_the_closed_form_loss() {
        // E || sigma s*(x_t) + z ||^2 / n = s0^2 / (s0^2 + sigma^2) for the exact score of
        // N(mu, s0^2 I); a zero score scores 1.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (mu, s0) = (0.4, 0.3);
        let shape = [4i64, 1, 64, 64];
        let x0 = standard_normal_from(&mut rng, &shape, Device::Cpu) * s0 + mu;
        let z = standard_normal_from(&mut rng, &shape, Device::Cpu);
        let sigmas = [0.05f32, 0.3, 2.0, 20.0];
        let sigma = Tensor::from_slice(&sigmas);
        let exact = GaussianScore { mu, s0, gain: 1.0 };
        let loss = Vec::<f32>::try_from(dsm_loss(&exact, &x0, &sigma, &z, false)).unwrap();
        for (l, s) in loss.iter().zip(sigmas) {
            let want = s0 * s0 / (s0 * s0 + (s as f64).powi(2));
            assert!(
                (*l as f64 - want).abs() < 0.03 * want.max(0.05),
                "sigma {s}: {l} vs {want}"
            );
        }
        let zero = GaussianScore { mu, s0, gain: 0.0 };
        let l0 = Vec::<f32>::try_from(dsm_loss(&zero, &x0, &sigma, &z, false)).unwrap();
        assert!(l0.iter().all(|l| (l - 1.0).abs() < 0.05), "{l0:?}");
    }

    #[test]
    fn sigma_of_t_matches_the_sde() {
        let sde = VeSde::new(0.01, 100.0).unwrap();
        let times = [0.0f64, 0.37, 1.0];
        let s = Vec::<f64>::try_from(sigma_of_t(&sde, &Tensor::from_slice(&times))).unwrap();
        for (got, t) in s.iter().zip(times) {
            let want = sde.sigma(t);
            assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
        }
    }
}
