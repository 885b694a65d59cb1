//! MRI operators: the centred orthonormal 2-D FFT `T` (fft.rs) and the Cartesian sampling masks
//! `Lambda` (masks.rs).

pub mod fft;
pub mod masks;

pub use fft::MriFft;
