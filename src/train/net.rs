//! The score network as training sees it: the smallest interface the loss, the EMA and the
//! checkpoints need, plus a tiny convolutional network for tests and smoke runs.

use tch::{nn, nn::Module, Tensor};

/// `s_theta(x, sigma)`: the score of the data perturbed with noise of standard deviation `sigma`.
pub trait ScoreNet {
    /// `x`: `[B, 1, H, W]`; `sigma`: `[B]` (one noise level per image); returns `[B, 1, H, W]`.
    /// `train` switches dropout and the like on.
    fn forward_t(&self, x: &Tensor, sigma: &Tensor, train: bool) -> Tensor;
}

/// Three 3x3 convolutions with the noise level added as a per-channel bias, output divided by
/// `sigma` (the score's magnitude grows like `1 / sigma`, as NCSN++'s `scale_by_sigma` assumes).
/// Small enough to train in seconds on a CPU: for tests, not for shipped priors.
#[derive(Debug)]
pub struct TinyNet {
    conv_in: nn::Conv2D,
    conv_mid: nn::Conv2D,
    conv_out: nn::Conv2D,
    embed_1: nn::Linear,
    embed_2: nn::Linear,
}

impl TinyNet {
    pub fn new(p: &nn::Path, nf: i64) -> Self {
        let conv = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        TinyNet {
            conv_in: nn::conv2d(p / "conv_in", 1, nf, 3, conv),
            conv_mid: nn::conv2d(p / "conv_mid", nf, nf, 3, conv),
            conv_out: nn::conv2d(p / "conv_out", nf, 1, 3, conv),
            embed_1: nn::linear(p / "embed_1", 1, nf, Default::default()),
            embed_2: nn::linear(p / "embed_2", nf, nf, Default::default()),
        }
    }
}

impl ScoreNet for TinyNet {
    fn forward_t(&self, x: &Tensor, sigma: &Tensor, _train: bool) -> Tensor {
        let b = x.size()[0];
        let log_sigma = sigma.log().reshape([b, 1]);
        let e = self
            .embed_2
            .forward(&self.embed_1.forward(&log_sigma).silu())
            .reshape([b, -1, 1, 1]);
        let h = (self.conv_in.forward(x) + e).silu();
        let h = self.conv_mid.forward(&h).silu();
        self.conv_out.forward(&h) / sigma.reshape([b, 1, 1, 1])
    }
}
