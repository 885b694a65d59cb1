//! CT operators: the parallel- and fan-beam geometry (geometry.rs) apart from the projector that
//! uses it (radon.rs, with its host kernels in kernels.rs; the fan-beam rays and FBP in fan.rs),
//! filtered back projection as `T^-1` (fbp.rs),
//! the HU <-> attenuation scale (hu.rs) and the metal trace of MAR (metal.rs).

pub mod fan;
pub mod fbp;
pub mod geometry;
pub mod hu;
mod kernels;
pub mod metal;
pub mod radon;

pub use geometry::{
    ct_geometry, default_n_det, full_angles, limited_angle_rows, limited_angle_rows_over,
    rows_mask, rows_mask_values, sparse_view_rows, Beam, Detector, FanBeam, FanSpec, Geometry,
    Scan,
};
pub use radon::{Radon, SparseRadon};
