//! What a scanner would measure: one place for the physics, used by both the `simulate` command
//! and the reconstruction pipeline (which simulates the measurement of an image input).
//!
//! - ct.rs: sparse-view / limited-angle / MAR sinograms, Poisson noise;
//! - metal.rs: materials, spectrum, metal objects, the polychromatic scan;
//! - mri.rs: Cartesian k-space of a real image under a mask, complex Gaussian noise; with coils,
//!   multi-coil k-space;
//! - coils.rs: coil sensitivities, image phase, noise correlated across coils;
//! - files.rs: a simulation written as a measurement folder (the `simulate` command's output).

pub mod coils;
pub mod ct;
pub mod files;
pub mod metal;
pub mod mri;

pub use ct::{poisson_noise, poisson_sigma, simulate_ct, CtSimulation, CtSimulationSpec, CtTask};
pub use metal::{
    default_metal, insert_metal, metal_discs, polychromatic_sinogram, Material, MetalObject,
    Spectrum,
};
