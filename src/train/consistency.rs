//! The consistency regulariser of paper 003 (Daras et al., "Consistent diffusion models"),
//! method.md, "Consistency regulariser":
//!
//! `L_cons = 1/2 || E[h(x_t', t') | x_t] - h(x_t, t) ||^2`,  `h(x, t) = x + sigma(t)^2 s(x, t)`,
//!
//! the Tweedie denoiser must be a martingale along the model's own reverse SDE. `t' ~ U[t - e, t]`
//! is reached from `x_t` by a few reverse-diffusion steps of the model (paper: 6), with no
//! gradient through `x_t'` (the paper trains on this first summand of the gradient only). The
//! expectation is estimated with `samples` independent paths (one in training, as the paper).
//! As with the DSM loss, the squared norm is divided by the number of pixels.

use super::net::ScoreNet;
use crate::ops::rng::standard_normal_from;
use crate::sde;
use rand_chacha::ChaCha20Rng;
use tch::{Kind, Tensor};

/// Tweedie's denoiser `h(x, sigma) = x + sigma^2 s(x, sigma)`; `sigma`: `[B]`.
pub fn tweedie(net: &dyn ScoreNet, x: &Tensor, sigma: &Tensor, train: bool) -> Tensor {
    let b = x.size()[0];
    let score = net.forward_t(x, sigma, train).to_kind(Kind::Float);
    sde::tweedie(x, &score, &sigma.square().reshape([b, 1, 1, 1]))
}

/// Reverse-diffusion steps of the model from noise level `sigma_from` down to `sigma_to`
/// (`[B]` each), `steps` geometric levels apart:
/// `x <- x + (s_i^2 - s_{i+1}^2) s(x, s_i) + sqrt(s_i^2 - s_{i+1}^2) z`. No gradient.
pub fn reverse_steps(
    net: &dyn ScoreNet,
    x: &Tensor,
    sigma_from: &Tensor,
    sigma_to: &Tensor,
    steps: usize,
    rng: &mut ChaCha20Rng,
) -> Tensor {
    tch::no_grad(|| {
        let b = x.size()[0];
        let ratio = (sigma_to / sigma_from).log();
        let level = |k: usize| sigma_from * (&ratio * (k as f64 / steps as f64)).exp();
        let mut x = x.shallow_clone();
        for k in 0..steps {
            let (s_i, s_next) = (level(k), level(k + 1));
            let var = (s_i.square() - s_next.square()).reshape([b, 1, 1, 1]);
            let score = net.forward_t(&x, &s_i, false).to_kind(Kind::Float);
            let z = standard_normal_from(rng, &x.size(), x.device());
            x = sde::reverse_diffusion(&x, &score, &z, &var);
        }
        x
    })
}

/// How `E[h(x_t', t') | x_t]` is estimated: the mean over `samples` reverse paths of `steps`
/// reverse-diffusion steps each.
#[derive(Debug, Clone, Copy)]
pub struct ReversePaths {
    pub steps: usize,
    pub samples: i64,
}

/// Per-image `L_cons`, `[B]`: `x_t` at levels `sigma_t`, regularised against `sigma_tp <= sigma_t`
/// along `paths`.
pub fn consistency_loss(
    net: &dyn ScoreNet,
    x_t: &Tensor,
    sigma_t: &Tensor,
    sigma_tp: &Tensor,
    paths: ReversePaths,
    rng: &mut ChaCha20Rng,
    train: bool,
) -> Tensor {
    let ReversePaths { steps, samples } = paths;
    let size = x_t.size();
    let b = size[0];
    // Repeat each image `samples` times along the batch: [b * samples, 1, H, W].
    let rep = |t: &Tensor| t.repeat_interleave_self_int(samples, 0, None);
    let x_rep = rep(x_t);
    let x_tp = reverse_steps(net, &x_rep, &rep(sigma_t), &rep(sigma_tp), steps, rng).detach();
    let h_tp = tweedie(net, &x_tp, &rep(sigma_tp), train)
        .reshape([b, samples, -1])
        .mean_dim(1, false, Kind::Float);
    let h_t = tweedie(net, x_t, sigma_t, train).reshape([b, -1]);
    (h_tp - h_t).square().mean_dim(1, false, Kind::Float) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::dsm::tests::GaussianScore;
    use rand::SeedableRng;
    use tch::Device;

    fn loss_for(gain: f64) -> f64 {
        // Gaussian toy: x0 ~ N(mu, s0^2 I), x_t ~ p_t = N(mu, (s0^2 + sigma_t^2) I). The exact
        // score's Tweedie denoiser is a martingale under reverse diffusion (each step keeps
        // E[h] exactly for a Gaussian), so only Monte Carlo noise of the mean remains.
        let (mu, s0) = (0.5, 0.3);
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let sigma_t = Tensor::from_slice(&[0.3f32, 1.0]);
        let sigma_tp = Tensor::from_slice(&[0.15f32, 0.5]);
        let shape = [2i64, 1, 16, 16];
        let std = (sigma_t.square() + s0 * s0).sqrt().reshape([2, 1, 1, 1]);
        let x_t = standard_normal_from(&mut rng, &shape, Device::Cpu) * std + mu;
        let net = GaussianScore { mu, s0, gain };
        let l = consistency_loss(
            &net,
            &x_t,
            &sigma_t,
            &sigma_tp,
            ReversePaths {
                steps: 6,
                samples: 2000,
            },
            &mut rng,
            false,
        );
        l.mean(Kind::Double).double_value(&[])
    }

    #[test]
    fn exact_denoiser_is_consistent_and_a_perturbed_one_is_not() {
        let exact = loss_for(1.0);
        let perturbed = loss_for(1.3);
        assert!(exact < 1e-4, "exact score: L_cons = {exact}");
        assert!(
            perturbed > 20.0 * exact,
            "perturbed {perturbed} vs exact {exact}"
        );
    }
}
