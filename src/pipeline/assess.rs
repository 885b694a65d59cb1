//! **Assess**: each method's reconstruction of a case against the case's reference (when there
//! is one: PSNR, SSIM, NRMSE per slice over the input's own extent, metal excluded for MAR), and
//! the data-consistency residual `|A x - y| / |y|` always. Collected per method over the job.

use super::input::Padding;
use super::measure::Case;
use super::reconstruct::Recon;
use crate::metrics::{self, Roi};
use crate::prior::fit::{dsm_residual, FitRange, PriorFit};
use crate::prior::ScoreModel;
use crate::report::{MethodMetrics, SweepPoint};
use anyhow::Result;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Everything a job produced for one method, over all its slices (model space, input size).
#[derive(Default)]
pub struct MethodOut {
    pub x: Vec<Tensor>,
    pub std: Vec<Tensor>,
    pub seconds: f64,
    pub psnr: Vec<f64>,
    pub ssim: Vec<f64>,
    pub nrmse: Vec<f64>,
    pub residual: Vec<f64>,
    /// Nearest-neighbour priors: each slice's relative distance to its nearest reference image.
    pub nearest_reference: Vec<f64>,
    /// Calibrated priors: each slice's prior-fit statistic (`prior::fit`).
    pub prior_fit: Vec<f64>,
}

/// The methods of one measurement setting, keyed by their report name, with the references and
/// metal masks of its cases (host, input size).
#[derive(Default)]
pub struct Assessed {
    pub methods: BTreeMap<String, MethodOut>,
    pub references: Vec<Tensor>,
    pub metal: Vec<Option<Tensor>>,
    /// Each reference slice's data range in model space (`max - min`, metal excluded), in
    /// slice order: what its PSNR and SSIM used.
    pub data_ranges: Vec<f64>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

impl Assessed {
    /// Score one case's reconstructions and keep them (padding cropped, on the host).
    pub fn add(
        &mut self,
        case: &Case,
        padding: &Padding,
        model: &dyn ScoreModel,
        recons: Vec<(&str, Recon)>,
    ) -> Result<()> {
        let crop = |t: &Tensor| padding.crop(t).to_device(Device::Cpu);
        // Each slice against its own reference's range (metal excluded), over the input's own
        // extent: a slice's score does not depend on the slices that ran with it.
        let scoring = match &case.reference {
            Some(reference) => {
                let reference = padding.crop(reference);
                let metal = case.metal.as_ref().map(|m| padding.crop(m));
                let ranges = metrics::value_range_per_image(&reference, metal.as_ref())?;
                let roi = match &metal {
                    Some(m) => Some(Roi::from_mask(&reference.ones_like())?.exclude(m)?),
                    None => None,
                };
                Some((reference, roi, ranges))
            }
            None => None,
        };
        for (name, r) in recons {
            let x = r.x.to_kind(Kind::Float);
            let m = self.methods.entry(name.to_string()).or_default();
            m.seconds += r.seconds;
            m.residual.extend(case.op.residual(&x, &case.y));
            if let Some(d) = model.nearest_reference_distance(&x)? {
                m.nearest_reference.extend(d);
            }
            if model.fit_range().is_some() {
                m.prior_fit.extend(dsm_residual(model, &x)?);
            }
            if let Some((reference, roi, ranges)) = &scoring {
                let scores =
                    metrics::assess_per_image(&padding.crop(&x), reference, ranges, roi.as_ref())?;
                for s in scores {
                    m.psnr.push(s.psnr);
                    m.ssim.push(s.ssim);
                    m.nrmse.push(s.nrmse);
                }
            }
            m.x.push(crop(&x));
            if let Some(s) = r.std {
                m.std.push(crop(&s));
            }
        }
        if let Some((_, _, ranges)) = scoring {
            self.data_ranges.extend(ranges);
        }
        if let Some(reference) = &case.reference {
            self.references.push(crop(reference));
            self.metal.push(case.metal.as_ref().map(crop));
        }
        Ok(())
    }

    /// The references of the cases, None for a measurement file (which has none).
    pub fn references(&self) -> Option<&[Tensor]> {
        (!self.references.is_empty()).then_some(self.references.as_slice())
    }

    /// The sweep's points of this setting: mean PSNR and SSIM per method.
    pub fn sweep_points(&self, x: f64) -> Vec<SweepPoint> {
        self.methods
            .iter()
            .map(|(name, m)| SweepPoint {
                x,
                method: name.clone(),
                psnr: mean(&m.psnr),
                ssim: mean(&m.ssim),
            })
            .collect()
    }

    /// The report's table: means over slices, and the per-slice values; the prior fit against
    /// `range` when the prior has one.
    pub fn metrics(&self, range: Option<&FitRange>) -> BTreeMap<String, MethodMetrics> {
        self.methods
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    MethodMetrics {
                        psnr: mean(&m.psnr),
                        ssim: mean(&m.ssim),
                        nrmse: mean(&m.nrmse),
                        seconds: m.seconds,
                        residual: mean(&m.residual),
                        psnr_per_slice: m.psnr.clone(),
                        ssim_per_slice: m.ssim.clone(),
                        nrmse_per_slice: m.nrmse.clone(),
                        nearest_reference_distance: mean(&m.nearest_reference),
                        prior_fit: range.and_then(|r| PriorFit::new(&m.prior_fit, r)),
                    },
                )
            })
            .collect()
    }
}
