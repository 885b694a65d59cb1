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
    /// Train a score model on your own scans (DICOM series / NIfTI volumes).
    Train(commands::train::TrainArgs),
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info(a) => commands::info::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Train(a) => commands::train::run(a),
    }
}
