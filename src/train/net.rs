//! The score network as training sees it: the smallest interface the loss, the EMA and the
//! checkpoints need (a forward pass with gradients and a train switch), implemented by NCSN++.
//! Sampling goes through `prior::ScoreModel`, which wraps the same network without gradients.

use crate::prior::ncsnpp::Ncsnpp;
use tch::Tensor;

/// `s_theta(x, sigma)`: the score of the data perturbed with noise of standard deviation `sigma`.
pub trait ScoreNet {
    /// `x`: `[B, 1, H, W]`; `sigma`: `[B]` (one noise level per image); returns `[B, 1, H, W]`.
    /// `train` switches dropout and the like on.
    fn forward_t(&self, x: &Tensor, sigma: &Tensor, train: bool) -> Tensor;
}

impl ScoreNet for Ncsnpp {
    fn forward_t(&self, x: &Tensor, sigma: &Tensor, train: bool) -> Tensor {
        Ncsnpp::forward_t(self, x, sigma, train)
    }
}
