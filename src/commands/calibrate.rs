//! `scorerecon calibrate`: the options; the calibration is `crate::calibrate`.

use crate::calibrate::{self, CalibrateOptions, ValidationVolume};
use crate::job::Fit;
use crate::prior::PriorRef;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The model to calibrate: a shipped name (models/) or a .safetensors / .pt file; its
    /// metadata sidecar gets the range.
    #[arg(long)]
    pub model: PriorRef,
    /// A validation volume (subjects the model did not train on), as PATH or PATH:SLICES
    /// (`3..=9`, `3..10`, `3,5,8`); repeatable. Without slices: every slice.
    #[arg(long = "input", required = true, value_parser = calibrate::parse_volume)]
    pub inputs: Vec<ValidationVolume>,
    /// How slices of another size are fitted to the prior's grid, as for reconstruction.
    #[arg(long, default_value = "error", value_parser = crate::cli::named::<Fit>())]
    pub fit: Fit,
    /// Replace a range the model already has.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: CalibrateArgs) -> Result<()> {
    let c = calibrate::run(&CalibrateOptions {
        model: a.model,
        volumes: a.inputs,
        fit: a.fit,
        force: a.force,
    })?;
    let r = &c.range;
    println!(
        "{}: prior fit over {} validation images: mean {:.4}, sd {:.4}, range {:.4} .. {:.4}; \
         reconstructions above {:.4} are flagged",
        c.sidecar.display(),
        r.n_images,
        r.mean,
        r.sd,
        r.min,
        r.max,
        r.limit()
    );
    Ok(())
}
