//! **Reconstruct**: every requested classical baseline, then the score-based posterior mean (and
//! per-pixel std with several samples), on one case's operator and measurement.

use super::measure::Case;
use crate::classic::fista_tv::FistaTv;
use crate::classic::{self, Baseline, BaselineKind, TvWeight, TvWeightSource};
use crate::job::JobSpec;
use crate::prior::ScoreModel;
use crate::sampler;
use anyhow::{Context, Result};
use std::time::Instant;
use tch::Tensor;

/// A reconstruction method's output for one case, model space, model size.
pub struct Recon {
    pub x: Tensor,
    pub std: Option<Tensor>,
    pub seconds: f64,
}

/// The TV weight of one measurement setting: chosen when a TV baseline first needs it (on the
/// setting's validation case when there is one), then kept for the setting's later cases.
pub struct TvChoice<'a> {
    validation: Option<&'a Case>,
    chosen: Option<TvWeight>,
}

impl<'a> TvChoice<'a> {
    pub fn new(validation: Option<&'a Case>) -> Self {
        TvChoice {
            validation,
            chosen: None,
        }
    }

    fn get(&mut self, spec: &JobSpec, case: &Case, notes: &mut Vec<String>) -> Result<&TvWeight> {
        if self.chosen.is_none() {
            let source = match (spec.tv_weight, self.validation, &case.reference) {
                (Some(rel), _, _) => TvWeightSource::Given(rel),
                (None, Some(v), _) => TvWeightSource::Tuned {
                    op: &v.op,
                    y: &v.y,
                    reference: v
                        .reference
                        .as_ref()
                        .expect("a validation case is simulated from an image"),
                },
                // No other slice to tune on (a single-slice input): tune on the reconstructed
                // slice itself. That is an oracle choice: it favours the baseline, so the
                // comparison with the score-based result stays conservative (the note says so).
                (None, None, Some(reference)) => TvWeightSource::Oracle {
                    op: &case.op,
                    y: &case.y,
                    reference,
                },
                (None, None, None) => TvWeightSource::Default,
            };
            let w = classic::tv_weight(&case.op, case.data_range(), source, spec.quiet)?;
            notes.extend(w.note.clone());
            self.chosen = Some(w);
        }
        Ok(self.chosen.as_ref().expect("chosen above"))
    }
}

/// Every baseline of `spec`, then the score-based reconstruction (`"score"`), for one case, by
/// the method's key in reports.
pub fn reconstruct_case(
    spec: &JobSpec,
    model: &dyn ScoreModel,
    case: &Case,
    tv: &mut TvChoice,
    notes: &mut Vec<String>,
) -> Result<Vec<(&'static str, Recon)>> {
    let mut recons = Vec::new();
    for &kind in &spec.baselines {
        let w = if kind.is_tv() {
            Some(tv.get(spec, case, notes)?.clone())
        } else {
            None
        };
        recons.push((
            kind.name(),
            run_baseline(kind, case, w.as_ref())
                .with_context(|| format!("baseline {}", kind.name()))?,
        ));
    }
    let t0 = Instant::now();
    let opts = sampler::SamplerOptions {
        measurement_sigma: case.noise_sigma.unwrap_or(0.0),
        ..spec.sampler_options(case.noise_free)
    };
    let posterior = sampler::reconstruct(model, &case.op, &case.y, &opts)?;
    recons.push((
        "score",
        Recon {
            x: posterior.mean,
            std: (spec.samples > 1).then_some(posterior.std),
            seconds: t0.elapsed().as_secs_f64(),
        },
    ));
    Ok(recons)
}

/// Run the baseline `kind` on a case (MAR's `fbp` is the FBP of the whole corrupted sinogram,
/// what a scanner shows).
fn run_baseline(kind: BaselineKind, case: &Case, tv: Option<&TvWeight>) -> Result<Recon> {
    let t0 = Instant::now();
    let x = match (kind, &case.fbp_full) {
        (BaselineKind::Fbp, Some(full)) => full.shallow_clone(),
        _ => {
            let mut b = Baseline::of(kind);
            if let (Baseline::FistaTv(o) | Baseline::Tv(o), Some(w)) = (&mut b, tv) {
                *o = FistaTv {
                    weight: Some(w.weight),
                    lipschitz: Some(w.lipschitz),
                    ..*o
                };
            }
            b.reconstruct(&case.op, &case.y)?
        }
    };
    Ok(Recon {
        x,
        std: None,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
