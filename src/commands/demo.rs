//! `scorerecon demo`: the options; the demo itself is `crate::demo`.

use crate::demo::{self, DemoOptions};
use crate::tensor::DeviceChoice;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
    /// Noise levels of the CT case, sampled with the probability-flow ODE (at least 200).
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Noise levels of the MRI case, sampled with DDS (at least 5; the MRI CPU preset's 50).
    #[arg(long, default_value_t = 50)]
    pub mri_steps: usize,
    /// Where the tensors live.
    #[arg(long, default_value = "cpu", value_parser = crate::cli::named::<DeviceChoice>())]
    pub device: DeviceChoice,
    /// No progress (bars on a terminal, timestamped lines otherwise).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: DemoArgs) -> Result<()> {
    demo::run(&DemoOptions {
        out: a.out,
        force: a.force,
        steps: a.steps,
        mri_steps: a.mri_steps,
        device: a.device,
        quiet: a.quiet,
    })
}
