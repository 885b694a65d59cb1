//! NCSN++ (paper 004, chapter 7 and appendix B.5.8; score_sde's `ncsnpp.py` is the reference
//! design), every size set by [`NcsnppConfig`] so one file serves the small CPU model and the
//! paper's 320x320 CT model.
//!
//! Read it next to the U-Net figure: noise embedding -> input conv -> for each resolution,
//! `num_res_blocks` BigGAN residual blocks (+ attention where the resolution is listed) then a
//! down-sampling residual block joined by the down-sampled input ("input skip") -> middle
//! (block, attention, block) -> for each resolution upwards, `num_res_blocks + 1` blocks on
//! the concatenated skip features (+ attention), an output head added to the up-sampled
//! output pyramid ("output skip"), an up-sampling block -> output divided by sigma.
//!
//! Differences from score_sde: FIR resampling is replaced by nearest / average-pool resampling
//! (score_sde's own `fir = False` path; see `layers.rs`); the progressive architecture is fixed
//! to the paper's choice (input skip, output skip, sum).

use super::layers::{
    act, dense, downsample, group_norm, upsample, AttnBlock, Combine, GaussianFourierProjection,
    Resample, ResnetBlock,
};
use super::metadata::{Architecture, PriorMetadata, FORMAT_VERSION};
pub use super::ncsnpp_config::NcsnppConfig;
use super::normalisation::Normalisation;
use super::ScoreModel;
use crate::sde::VeSde;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// A model config file (configs/ncsnpp_*.yaml): the network and the SDE it is trained for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub model: NcsnppConfig,
    pub sde: VeSde,
    #[serde(default)]
    pub normalisation: Normalisation,
}

impl ModelSpec {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read model config", path.display()))?;
        let spec: ModelSpec = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{}: not a valid model config", path.display()))?;
        spec.model
            .validate()
            .with_context(|| format!("{}: invalid model config", path.display()))?;
        VeSde::new(spec.sde.sigma_min, spec.sde.sigma_max)
            .with_context(|| format!("{}: invalid sde", path.display()))?;
        Ok(spec)
    }
}

struct DownLevel {
    blocks: Vec<ResnetBlock>,
    attns: Vec<Option<AttnBlock>>,
    /// Down-sampling block and the input-skip combiner (absent at the lowest resolution).
    down: Option<(ResnetBlock, Combine)>,
}

struct UpLevel {
    blocks: Vec<ResnetBlock>,
    attn: Option<AttnBlock>,
    head_norm: nn::GroupNorm,
    head_conv: nn::Conv2D,
    /// Up-sampling block (absent at the full resolution).
    up: Option<ResnetBlock>,
}

/// The network; weights live in the `VarStore` whose root it was built on.
pub struct Ncsnpp {
    pub config: NcsnppConfig,
    fourier: GaussianFourierProjection,
    temb0: nn::Linear,
    temb1: nn::Linear,
    conv_in: nn::Conv2D,
    down: Vec<DownLevel>,
    mid: (ResnetBlock, AttnBlock, ResnetBlock),
    /// Indexed by level (0 = full resolution); run from the last to the first.
    up: Vec<UpLevel>,
}

impl Ncsnpp {
    pub fn new(p: &nn::Path, config: &NcsnppConfig) -> Result<Self> {
        config.validate()?;
        let c = config;
        let nf = c.nf;
        let temb_dim = 4 * nf;
        let res = c.resolutions();
        let levels = c.ch_mult.len();
        let block = |p: nn::Path, i: i64, o: i64, r: Resample| {
            ResnetBlock::new(
                p,
                i,
                o,
                temb_dim,
                r,
                c.dropout,
                c.skip_rescale,
                c.init_scale,
            )
        };
        let attn = |p: nn::Path, ch: i64| AttnBlock::new(p, ch, c.skip_rescale, c.init_scale);

        let fourier = GaussianFourierProjection::new(p / "fourier", nf, c.fourier_scale);
        let temb0 = dense(p / "temb0", 2 * nf, temb_dim);
        let temb1 = dense(p / "temb1", temb_dim, temb_dim);
        let conv_in = super::layers::conv3x3(p / "conv_in", c.channels, nf, 1.0);

        let mut hs_c = vec![nf];
        let mut in_ch = nf;
        let mut down = Vec::with_capacity(levels);
        for (l, &mult) in c.ch_mult.iter().enumerate() {
            let lp = p / "down" / l;
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for b in 0..c.num_res_blocks {
                let out_ch = nf * mult;
                blocks.push(block(
                    &lp / format!("block{b}"),
                    in_ch,
                    out_ch,
                    Resample::None,
                ));
                in_ch = out_ch;
                attns.push(
                    c.attn_resolutions
                        .contains(&res[l])
                        .then(|| attn(&lp / format!("attn{b}"), in_ch)),
                );
                hs_c.push(in_ch);
            }
            let down_block = if l + 1 < levels {
                let blk = block(&lp / "downsample", in_ch, in_ch, Resample::Down);
                let comb = Combine::new(&lp / "input_skip", c.channels, in_ch);
                hs_c.push(in_ch);
                Some((blk, comb))
            } else {
                None
            };
            down.push(DownLevel {
                blocks,
                attns,
                down: down_block,
            });
        }

        let mp = p / "mid";
        let mid = (
            block(&mp / "block0", in_ch, in_ch, Resample::None),
            attn(&mp / "attn", in_ch),
            block(&mp / "block1", in_ch, in_ch, Resample::None),
        );

        let mut up: Vec<Option<UpLevel>> = (0..levels).map(|_| None).collect();
        for l in (0..levels).rev() {
            let lp = p / "up" / l;
            let mut blocks = Vec::new();
            for b in 0..=c.num_res_blocks {
                let out_ch = nf * c.ch_mult[l];
                let skip_ch = hs_c.pop().expect("one skip feature per block");
                blocks.push(block(
                    &lp / format!("block{b}"),
                    in_ch + skip_ch,
                    out_ch,
                    Resample::None,
                ));
                in_ch = out_ch;
            }
            let attn_l = c
                .attn_resolutions
                .contains(&res[l])
                .then(|| attn(&lp / "attn", in_ch));
            let head_norm = group_norm(&lp / "head_norm", in_ch);
            let head_conv =
                super::layers::conv3x3(&lp / "head_conv", in_ch, c.channels, c.init_scale);
            let up_block = (l > 0).then(|| block(&lp / "upsample", in_ch, in_ch, Resample::Up));
            up[l] = Some(UpLevel {
                blocks,
                attn: attn_l,
                head_norm,
                head_conv,
                up: up_block,
            });
        }
        debug_assert!(hs_c.is_empty());
        Ok(Ncsnpp {
            config: config.clone(),
            fourier,
            temb0,
            temb1,
            conv_in,
            down,
            mid,
            up: up.into_iter().map(|u| u.expect("built")).collect(),
        })
    }

    /// `s_theta(x, sigma)`: `x` `[B, C, H, W]`, `sigma` `[B]` -> score `[B, C, H, W]`.
    /// `train` switches dropout on.
    pub fn forward_t(&self, x: &Tensor, sigma: &Tensor, train: bool) -> Tensor {
        // Noise embedding of log sigma (random Fourier features, then two dense layers).
        let temb = self.fourier.forward(&sigma.log());
        let temb = self.temb1.forward(&act(&self.temb0.forward(&temb)));

        let x_in = if self.config.centered {
            x.shallow_clone()
        } else {
            x * 2.0 - 1.0
        };

        // Down path; `hs` keeps every block's output for the skip connections.
        let mut input_pyramid = x_in.shallow_clone();
        let mut hs = vec![self.conv_in.forward(&x_in)];
        for level in &self.down {
            for (blk, attn) in level.blocks.iter().zip(&level.attns) {
                let mut h = blk.forward(hs.last().unwrap(), &temb, train);
                if let Some(a) = attn {
                    h = a.forward(&h);
                }
                hs.push(h);
            }
            if let Some((blk, combine)) = &level.down {
                let h = blk.forward(hs.last().unwrap(), &temb, train);
                input_pyramid = downsample(&input_pyramid);
                hs.push(combine.forward(&input_pyramid, &h));
            }
        }

        let h = hs.last().unwrap().shallow_clone();
        let h = self.mid.0.forward(&h, &temb, train);
        let h = self.mid.1.forward(&h);
        let mut h = self.mid.2.forward(&h, &temb, train);

        // Up path with the output-skip pyramid.
        let mut pyramid: Option<Tensor> = None;
        for level in self.up.iter().rev() {
            for blk in &level.blocks {
                let skip = hs.pop().expect("skip feature");
                h = blk.forward(&Tensor::cat(&[&h, &skip], 1), &temb, train);
            }
            if let Some(a) = &level.attn {
                h = a.forward(&h);
            }
            let head = level.head_conv.forward(&act(&level.head_norm.forward(&h)));
            pyramid = Some(match pyramid {
                None => head,
                Some(p) => upsample(&p) + head,
            });
            if let Some(up) = &level.up {
                h = up.forward(&h, &temb, train);
            }
        }
        let out = pyramid.expect("at least one level");
        // The score of the VE perturbation kernel scales as 1/sigma (score_sde `scale_by_sigma`).
        out / sigma.reshape([-1, 1, 1, 1])
    }
}

/// Number of scalars in the trainable weights (the Fourier frequencies are not counted).
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// An NCSN++ network with its weights and metadata, as a [`ScoreModel`].
pub struct NcsnppPrior {
    pub vs: nn::VarStore,
    pub net: Ncsnpp,
    pub meta: PriorMetadata,
}

impl NcsnppPrior {
    /// A network with fresh random weights (training starts here; benches time it).
    pub fn new(
        config: &NcsnppConfig,
        sde: VeSde,
        normalisation: Normalisation,
        device: Device,
    ) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let net = Ncsnpp::new(&vs.root(), config)?;
        let meta = PriorMetadata {
            format_version: FORMAT_VERSION,
            architecture: Architecture::Ncsnpp(config.clone()),
            sde,
            image_size: [config.image_size, config.image_size],
            channels: config.channels,
            normalisation,
            training: None,
            prior_fit: None,
            pixel_mm: None,
        };
        Ok(NcsnppPrior { vs, net, meta })
    }

    /// Load `x.safetensors` and its sidecar `x.json`.
    pub fn load(weights: &Path, device: Device) -> Result<Self> {
        let meta = PriorMetadata::read(&PriorMetadata::sidecar_path(weights))?;
        let config = match &meta.architecture {
            Architecture::Ncsnpp(c) => c.clone(),
            other => bail!(
                "{}: the sidecar describes a {} model, not NCSN++",
                weights.display(),
                other.kind()
            ),
        };
        let mut prior = NcsnppPrior::new(&config, meta.sde, meta.normalisation.clone(), device)?;
        prior.meta = meta;
        prior.vs.load(weights).with_context(|| {
            format!(
                "{}: cannot load the weights into the NCSN++ described by its sidecar \
                 (truncated file, or weights of another configuration?)",
                weights.display()
            )
        })?;
        Ok(prior)
    }

    /// Save `x.safetensors` and its sidecar `x.json`, each atomically.
    pub fn save(&self, weights: &Path, force: bool) -> Result<()> {
        if weights.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            bail!(
                "{}: NCSN++ weights are saved as .safetensors",
                weights.display()
            );
        }
        crate::io::atomic::write_file(weights, force, |tmp| {
            // tch picks the format from the extension, so the temporary name keeps it.
            let tmp_st = tmp.with_extension("safetensors");
            self.vs
                .save(&tmp_st)
                .with_context(|| format!("{}: cannot write weights", weights.display()))?;
            std::fs::rename(&tmp_st, tmp)?;
            Ok(())
        })?;
        self.meta
            .write(&PriorMetadata::sidecar_path(weights), force)
    }
}

impl ScoreModel for NcsnppPrior {
    fn score(&self, x: &Tensor, sigma: &Tensor) -> Result<Tensor> {
        let x = x.to_kind(Kind::Float);
        let sigma = sigma.to_kind(Kind::Float);
        Ok(tch::no_grad(|| self.net.forward_t(&x, &sigma, false)))
    }
    fn image_size(&self) -> [i64; 2] {
        self.meta.image_size
    }
    fn channels(&self) -> i64 {
        self.meta.channels
    }
    fn sde(&self) -> VeSde {
        self.meta.sde
    }
    fn normalisation(&self) -> &Normalisation {
        &self.meta.normalisation
    }
    fn device(&self) -> Device {
        self.vs.device()
    }
    fn fit_range(&self) -> Option<&super::fit::FitRange> {
        self.meta.prior_fit.as_ref()
    }
    fn pixel_mm(&self) -> Option<f64> {
        self.meta.pixel_mm
    }
    fn describe(&self) -> String {
        let c = &self.net.config;
        format!(
            "NCSN++ {}x{} nf={} ch_mult={:?} blocks={} attn={:?} ({} parameters)",
            c.image_size,
            c.image_size,
            c.nf,
            c.ch_mult,
            c.num_res_blocks,
            c.attn_resolutions,
            parameter_count(&self.vs)
        )
    }
}
