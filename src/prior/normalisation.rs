//! The map between scanner values (HU for CT, intensity for MR) and the model space a score
//! model was trained in. One place for it: the samplers, the training code and the reports all
//! go through [`Normalisation::fit`] and the [`Scaling`] it returns.
//!
//! Every map is affine, `model = (value - offset) / scale`, so a linear measurement of the image
//! can be moved to model space too: `y_model = (y - offset * A 1) / scale`.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How a model's training data was scaled (stored in the metadata sidecar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[derive(Default)]
pub enum Normalisation {
    /// Model space is the voxel value itself.
    #[default]
    Identity,
    /// CT: `model = (HU - hu_min) / (hu_max - hu_min)`. With `hu_min = -1000` (air) this is
    /// the linear attenuation coefficient divided by its value at `hu_max`,
    /// `mu / mu(hu_max)`, `mu = mu_water (1 + HU / 1000)`: a physical sinogram (line integrals
    /// of `mu` in 1/mm times mm) becomes a model-space sinogram by dividing by `mu(hu_max)`,
    /// see [`Normalisation::attenuation_scale`]. Values outside the window map outside [0, 1]
    /// (nothing is clipped, so the map stays invertible).
    CtAttenuation {
        /// Linear attenuation of water in 1/mm (`ops::ct::hu::MU_WATER_PER_MM`, 70 keV).
        mu_water: f64,
        hu_min: f64,
        hu_max: f64,
    },
    /// MR: intensities divided by the given percentile of the volume's voxels (computed per
    /// volume, since MR intensity has no absolute unit): `model = value / p`.
    MrPerVolume { percentile: f64 },
}

impl Normalisation {
    /// The default CT scale, the one `ops::ct::hu` and the CT simulation use: air 0, water 0.5,
    /// +1000 HU (dense bone) 1, i.e. `mu / (2 mu_water)` (one definition of the HU <-> model map).
    pub fn ct_default() -> Self {
        Normalisation::CtAttenuation {
            mu_water: crate::ops::ct::hu::MU_WATER_PER_MM,
            hu_min: -1000.0,
            hu_max: 1000.0,
        }
    }

    /// The default MR scaling: the 99.5th percentile maps to 1.
    pub fn mr_default() -> Self {
        Normalisation::MrPerVolume { percentile: 99.5 }
    }

    /// Check the parameters (called when metadata is read).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Normalisation::Identity => Ok(()),
            Normalisation::CtAttenuation {
                mu_water,
                hu_min,
                hu_max,
            } => {
                if !(mu_water > 0.0 && mu_water.is_finite()) {
                    bail!("normalisation: mu_water must be positive (got {mu_water})");
                }
                if !(hu_min.is_finite() && hu_max.is_finite() && hu_max > hu_min) {
                    bail!("normalisation: hu_max ({hu_max}) must exceed hu_min ({hu_min})");
                }
                Ok(())
            }
            Normalisation::MrPerVolume { percentile } => {
                if !(percentile > 0.0 && percentile <= 100.0) {
                    bail!("normalisation: percentile must lie in (0, 100] (got {percentile})");
                }
                Ok(())
            }
        }
    }

    /// The affine map for one volume's values (MR needs the values; CT and Identity do not).
    pub fn fit(&self, values: &[f32]) -> Result<Scaling> {
        self.validate()?;
        match *self {
            Normalisation::Identity => Ok(Scaling {
                offset: 0.0,
                scale: 1.0,
            }),
            Normalisation::CtAttenuation { hu_min, hu_max, .. } => Ok(Scaling {
                offset: hu_min,
                scale: hu_max - hu_min,
            }),
            Normalisation::MrPerVolume { percentile } => {
                let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
                if v.is_empty() {
                    bail!("MR normalisation: the volume holds no finite values");
                }
                let rank = ((percentile / 100.0) * (v.len() - 1) as f64).round() as usize;
                let (_, p, _) = v.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
                let p = *p as f64;
                if p <= 0.0 {
                    bail!(
                        "MR normalisation: the {percentile}th percentile of the volume is {p}; \
                         it must be positive to scale by it (is the volume empty or negative?)"
                    );
                }
                Ok(Scaling {
                    offset: 0.0,
                    scale: p,
                })
            }
        }
    }

    /// The interval the training images fill in model space: [0, 1] for every map (CT: the HU
    /// window `hu_min..hu_max`; MR: zero to the volume's percentile; identity: images scaled to
    /// [0, 1], method.md). The samplers' divergence guard is built around it.
    pub fn model_range(&self) -> (f64, f64) {
        (0.0, 1.0)
    }

    /// Linear attenuation at `hu_max` (1/mm): divide a physical CT sinogram by it to get the
    /// sinogram of the model-space image (valid when `hu_min = -1000`).
    pub fn attenuation_scale(&self) -> Option<f64> {
        match *self {
            Normalisation::CtAttenuation {
                mu_water, hu_max, ..
            } => Some(mu_water * (1.0 + hu_max / 1000.0)),
            _ => None,
        }
    }
}

/// `model = (value - offset) / scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub offset: f64,
    pub scale: f64,
}

impl Scaling {
    pub fn to_model(&self, values: &[f32]) -> Vec<f32> {
        values
            .iter()
            .map(|v| ((*v as f64 - self.offset) / self.scale) as f32)
            .collect()
    }

    pub fn from_model(&self, values: &[f32]) -> Vec<f32> {
        values
            .iter()
            .map(|v| (*v as f64 * self.scale + self.offset) as f32)
            .collect()
    }

    pub fn to_model_tensor(&self, t: &Tensor) -> Tensor {
        (t - self.offset) / self.scale
    }

    pub fn from_model_tensor(&self, t: &Tensor) -> Tensor {
        t * self.scale + self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_window_maps_air_to_zero_and_hu_max_to_one_and_back() {
        let s = Normalisation::ct_default().fit(&[]).unwrap();
        let m = s.to_model(&[-1000.0, 0.0, 1000.0]);
        assert_eq!(m[0], 0.0);
        assert!((m[1] - 0.5).abs() < 1e-7);
        assert_eq!(m[2], 1.0);
        // The same map as the CT simulation's.
        assert_eq!(m[1] as f64, crate::ops::ct::hu::hu_to_unit(0.0));
        let back = s.from_model(&m);
        assert!((back[1] - 0.0).abs() < 1e-3);
        // mu(HU) / mu(hu_max) equals the model value when hu_min = -1000.
        let n = Normalisation::ct_default();
        let mu = |hu: f64| crate::ops::ct::hu::hu_to_mu(hu);
        assert!((mu(0.0) / n.attenuation_scale().unwrap() - m[1] as f64).abs() < 1e-7);
    }

    #[test]
    fn mr_percentile_scaling() {
        let v: Vec<f32> = (0..=1000).map(|i| i as f32).collect();
        let s = Normalisation::MrPerVolume { percentile: 50.0 }
            .fit(&v)
            .unwrap();
        assert_eq!(s.scale, 500.0);
        assert!(Normalisation::MrPerVolume { percentile: 50.0 }
            .fit(&[0.0, 0.0, 0.0])
            .is_err());
        assert!(Normalisation::MrPerVolume { percentile: 150.0 }
            .fit(&v)
            .is_err());
    }
}
