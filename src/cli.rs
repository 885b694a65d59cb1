//! Arguments only: each subcommand's options and behaviour live in `commands/<name>.rs`.

use crate::commands;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "scorerecon",
    version,
    about = "Reconstruct CT and MRI from incomplete measurements with score-based generative priors"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Say what a file or folder holds: modality, size, spacing, value range, series.
    Info(commands::info::InfoArgs),
    /// Convert any supported input to NIfTI, DICOM or PNG.
    Convert(commands::convert::ConvertArgs),
    /// Sparse-view or limited-angle CT reconstruction (score-based, with FBP and FISTA-TV).
    Ct(commands::recon::ReconArgs),
    /// Undersampled MRI reconstruction (score-based, with zero-filled and TV).
    Mri(commands::recon::ReconArgs),
    /// Metal artifact removal (score-based, with FBP and linear interpolation).
    Mar(commands::recon::ReconArgs),
    /// Run many jobs from a YAML manifest; resumable, one folder per job, summary report.
    Batch(commands::batch::BatchArgs),
    /// The built-in demo: sparse-view CT and undersampled MRI on real scans, with baselines.
    Demo(commands::demo::DemoArgs),
    /// Simulate a measurement (sparse-view, limited-angle or metal CT) from a volume or phantom.
    Simulate(commands::simulate::SimulateArgs),
    /// Train a score model on your own scans (DICOM series / NIfTI volumes).
    Train(commands::train::TrainArgs),
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info(a) => commands::info::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Ct(a) => commands::recon::run(crate::job::Task::Ct, a),
        Command::Mri(a) => commands::recon::run(crate::job::Task::Mri, a),
        Command::Mar(a) => commands::recon::run(crate::job::Task::Mar, a),
        Command::Batch(a) => commands::batch::run(a),
        Command::Demo(a) => commands::demo::run(a),
        Command::Simulate(a) => commands::simulate::run(a),
        Command::Train(a) => commands::train::run(a),
    }
}
