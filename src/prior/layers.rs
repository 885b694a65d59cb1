//! The building blocks of NCSN++ (score_sde's `layerspp.py`), one small struct per block with a
//! constructor that takes its weights by name and a `forward`.
//!
//! Resampling: score_sde's NCSN++ uses FIR filters (kernel [1, 3, 3, 1]) for up/down sampling.
//! Here they are replaced by what score_sde itself does with `fir = False`: nearest-neighbour
//! upsampling and 2x2 average pooling, cheaper on CPU and with no weights either way.

use tch::nn::{self, Init, Module};
use tch::Tensor;

/// score_sde's `default_init`: variance scaling, `fan_avg`, uniform. `scale = 0` (used for the
/// last convolution of each residual branch, so blocks start as identities) becomes 1e-10 as
/// in the reference.
pub fn default_init(scale: f64, fan_in: i64, fan_out: i64) -> Init {
    let scale = if scale == 0.0 { 1e-10 } else { scale };
    let variance = scale / ((fan_in + fan_out) as f64 / 2.0);
    let bound = (3.0 * variance).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

fn conv(p: nn::Path, in_ch: i64, out_ch: i64, k: i64, init_scale: f64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: k / 2,
        ws_init: default_init(init_scale, in_ch * k * k, out_ch * k * k),
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, in_ch, out_ch, k, cfg)
}

/// 3x3 convolution, same padding.
pub fn conv3x3(p: nn::Path, in_ch: i64, out_ch: i64, init_scale: f64) -> nn::Conv2D {
    conv(p, in_ch, out_ch, 3, init_scale)
}

/// 1x1 convolution (score_sde's `NIN` and `conv1x1`).
pub fn conv1x1(p: nn::Path, in_ch: i64, out_ch: i64, init_scale: f64) -> nn::Conv2D {
    conv(p, in_ch, out_ch, 1, init_scale)
}

pub fn dense(p: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: default_init(1.0, in_dim, out_dim),
        bs_init: Some(Init::Const(0.0)),
        bias: true,
    };
    nn::linear(p, in_dim, out_dim, cfg)
}

/// GroupNorm with `min(ch / 4, 32)` groups and eps 1e-6, as everywhere in NCSN++.
pub fn group_norm(p: nn::Path, ch: i64) -> nn::GroupNorm {
    let groups = (ch / 4).clamp(1, 32);
    let cfg = nn::GroupNormConfig {
        eps: 1e-6,
        ..Default::default()
    };
    nn::group_norm(p, groups, ch, cfg)
}

/// The swish / SiLU nonlinearity of NCSN++.
pub fn act(x: &Tensor) -> Tensor {
    x.silu()
}

pub fn upsample(x: &Tensor) -> Tensor {
    let s = x.size();
    x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None)
}

pub fn downsample(x: &Tensor) -> Tensor {
    x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
}

/// Random Fourier features of `log sigma` (Tancik et al.; scale 16 in the paper): fixed,
/// untrained frequencies `W ~ N(0, scale^2)`, output `[sin(2 pi W x), cos(2 pi W x)]`.
pub struct GaussianFourierProjection {
    w: Tensor,
}

impl GaussianFourierProjection {
    pub fn new(p: nn::Path, embedding_size: i64, scale: f64) -> Self {
        // Not trained, but saved with the weights so a loaded model has the same embedding.
        let w = p.zeros_no_train("W", &[embedding_size]);
        tch::no_grad(|| {
            let mut w = w.shallow_clone();
            w.copy_(&(Tensor::randn([embedding_size], (w.kind(), w.device())) * scale));
        });
        GaussianFourierProjection { w }
    }

    /// `x`: `[B]` -> `[B, 2 * embedding_size]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let proj = x.unsqueeze(1) * self.w.unsqueeze(0) * (2.0 * std::f64::consts::PI);
        Tensor::cat(&[proj.sin(), proj.cos()], 1)
    }
}

/// The BigGAN-type residual block of NCSN++ (score_sde `ResnetBlockBigGANpp`), optionally
/// resampling by 2, with the noise embedding added after the first convolution and the
/// `1/sqrt 2` skip rescaling.
pub struct ResnetBlock {
    norm0: nn::GroupNorm,
    conv0: nn::Conv2D,
    dense0: nn::Linear,
    norm1: nn::GroupNorm,
    conv1: nn::Conv2D,
    skip: Option<nn::Conv2D>,
    up: bool,
    down: bool,
    dropout: f64,
    skip_rescale: bool,
}

pub enum Resample {
    None,
    Up,
    Down,
}

impl ResnetBlock {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: nn::Path,
        in_ch: i64,
        out_ch: i64,
        temb_dim: i64,
        resample: Resample,
        dropout: f64,
        skip_rescale: bool,
        init_scale: f64,
    ) -> Self {
        let (up, down) = match resample {
            Resample::None => (false, false),
            Resample::Up => (true, false),
            Resample::Down => (false, true),
        };
        let skip = if in_ch != out_ch || up || down {
            Some(conv1x1(&p / "skip", in_ch, out_ch, 1.0))
        } else {
            None
        };
        ResnetBlock {
            norm0: group_norm(&p / "norm0", in_ch),
            conv0: conv3x3(&p / "conv0", in_ch, out_ch, 1.0),
            dense0: dense(&p / "dense0", temb_dim, out_ch),
            norm1: group_norm(&p / "norm1", out_ch),
            conv1: conv3x3(&p / "conv1", out_ch, out_ch, init_scale),
            skip,
            up,
            down,
            dropout,
            skip_rescale,
        }
    }

    pub fn forward(&self, x: &Tensor, temb: &Tensor, train: bool) -> Tensor {
        let mut h = act(&self.norm0.forward(x));
        let mut x = x.shallow_clone();
        if self.up {
            h = upsample(&h);
            x = upsample(&x);
        } else if self.down {
            h = downsample(&h);
            x = downsample(&x);
        }
        let h = self.conv0.forward(&h);
        let h = h + self.dense0.forward(&act(temb)).unsqueeze(-1).unsqueeze(-1);
        let h = act(&self.norm1.forward(&h)).dropout(self.dropout, train);
        let h = self.conv1.forward(&h);
        let x = match &self.skip {
            Some(c) => c.forward(&x),
            None => x,
        };
        if self.skip_rescale {
            (x + h) / std::f64::consts::SQRT_2
        } else {
            x + h
        }
    }
}

/// Self-attention over all pixels (score_sde `AttnBlockpp`, DDPM-style), used only at low
/// resolution where `(HW)^2` is small.
pub struct AttnBlock {
    norm: nn::GroupNorm,
    q: nn::Conv2D,
    k: nn::Conv2D,
    v: nn::Conv2D,
    out: nn::Conv2D,
    skip_rescale: bool,
}

impl AttnBlock {
    pub fn new(p: nn::Path, ch: i64, skip_rescale: bool, init_scale: f64) -> Self {
        AttnBlock {
            norm: group_norm(&p / "norm", ch),
            q: conv1x1(&p / "q", ch, ch, 1.0),
            k: conv1x1(&p / "k", ch, ch, 1.0),
            v: conv1x1(&p / "v", ch, ch, 1.0),
            out: conv1x1(&p / "out", ch, ch, init_scale),
            skip_rescale,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let (b, c, hh, ww) = (s[0], s[1], s[2], s[3]);
        let h = self.norm.forward(x);
        let q = self.q.forward(&h).reshape([b, c, hh * ww]);
        let k = self.k.forward(&h).reshape([b, c, hh * ww]);
        let v = self.v.forward(&h).reshape([b, c, hh * ww]);
        // w[b, i, j] = <q_i, k_j> / sqrt(C), softmax over j.
        let w = (q.transpose(1, 2).bmm(&k) * (c as f64).powf(-0.5)).softmax(-1, None);
        let h = v.bmm(&w.transpose(1, 2)).reshape([b, c, hh, ww]);
        let h = self.out.forward(&h);
        if self.skip_rescale {
            (x + h) / std::f64::consts::SQRT_2
        } else {
            x + h
        }
    }
}

/// Adds a 1x1-convolved input pyramid to the features (score_sde `Combine`, method "sum").
pub struct Combine {
    conv: nn::Conv2D,
}

impl Combine {
    pub fn new(p: nn::Path, dim1: i64, dim2: i64) -> Self {
        Combine {
            conv: conv1x1(p, dim1, dim2, 1.0),
        }
    }

    pub fn forward(&self, pyramid: &Tensor, h: &Tensor) -> Tensor {
        self.conv.forward(pyramid) + h
    }
}
