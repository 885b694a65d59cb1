//! The sizes of the NCSN++ network ([`super::ncsnpp`]), apart from the network so that the
//! metadata sidecar ([`super::metadata`]) can name them without depending on the network code.
//! YAML/JSON via serde: configs/ncsnpp_*.yaml and the `architecture` of a sidecar.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

fn default_fourier_scale() -> f64 {
    16.0
}
fn default_true() -> bool {
    true
}

/// Every size of the network. YAML/JSON via serde (configs/ncsnpp_*.yaml, the metadata sidecar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NcsnppConfig {
    /// Square image side the network is built for (`H = W`).
    pub image_size: i64,
    /// Image channels (1 for CT and magnitude MR).
    pub channels: i64,
    /// Base number of feature channels.
    pub nf: i64,
    /// Channel multiplier per resolution; `len` resolutions, halving each time.
    pub ch_mult: Vec<i64>,
    pub num_res_blocks: usize,
    /// Resolutions (side lengths) that get self-attention.
    pub attn_resolutions: Vec<i64>,
    #[serde(default)]
    pub dropout: f64,
    /// Standard deviation of the random Fourier frequencies of the `log sigma` embedding.
    #[serde(default = "default_fourier_scale")]
    pub fourier_scale: f64,
    /// Divide every residual sum by sqrt 2.
    #[serde(default = "default_true")]
    pub skip_rescale: bool,
    /// Inputs already centred on 0; when false (data in [0, 1], the paper's CT/MRI setting) the
    /// network maps `x -> 2x - 1` first.
    #[serde(default)]
    pub centered: bool,
    /// Initial scale of the last convolution of each residual branch (0: blocks start as
    /// identities, as in the paper's configs).
    #[serde(default)]
    pub init_scale: f64,
}

impl NcsnppConfig {
    /// Side length at each resolution level.
    pub fn resolutions(&self) -> Vec<i64> {
        (0..self.ch_mult.len())
            .map(|i| self.image_size >> i)
            .collect()
    }

    pub fn validate(&self) -> Result<()> {
        if self.ch_mult.is_empty() || self.nf < 1 || self.channels < 1 || self.num_res_blocks < 1 {
            bail!("NCSN++ config: nf, channels, num_res_blocks and ch_mult must be positive / non-empty");
        }
        let levels = self.ch_mult.len() as u32;
        if self.image_size < 1 || self.image_size % (1 << (levels - 1)) != 0 {
            bail!(
                "NCSN++ config: image_size {} must be divisible by 2^(len(ch_mult) - 1) = {}",
                self.image_size,
                1 << (levels - 1)
            );
        }
        for &m in &self.ch_mult {
            let ch = self.nf * m;
            let groups = (ch / 4).clamp(1, 32);
            if m < 1 || ch % groups != 0 {
                bail!(
                    "NCSN++ config: nf * ch_mult = {ch} channels cannot be split into \
                     min(ch / 4, 32) = {groups} GroupNorm groups; use a multiple of 4"
                );
            }
        }
        let res = self.resolutions();
        for r in &self.attn_resolutions {
            if !res.contains(r) {
                bail!("NCSN++ config: attention resolution {r} is not one of the network's resolutions {res:?}");
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!(
                "NCSN++ config: dropout must lie in [0, 1) (got {})",
                self.dropout
            );
        }
        Ok(())
    }
}
