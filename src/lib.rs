//! scorerecon: medical image reconstruction from incomplete measurements with score-based
//! generative priors. The data walk is read -> measure -> reconstruct -> assess -> write
//! (docs/architecture.md).

pub mod batch;
pub mod calibrate;
pub mod classic;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod io;
pub mod job;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod phantom;
pub mod pipeline;
pub mod prior;
pub mod progress;
pub mod regrid;
pub mod report;
pub mod sampler;
pub mod sde;
pub mod simulate;
pub mod tensor;
pub mod train;
pub mod volume;

pub use volume::{Modality, Provenance, Volume};

/// The crate version, reported in outputs and metadata.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
