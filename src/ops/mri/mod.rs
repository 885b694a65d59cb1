//! MRI operators: the centred orthonormal 2-D FFT `T` (fft.rs), the multi-coil SENSE transform
//! (sense.rs) with its coil sensitivities (espirit.rs), and the Cartesian sampling masks
//! `Lambda` (masks.rs).

pub mod espirit;
pub mod fft;
pub mod masks;
pub mod sense;

pub use fft::MriFft;
pub use sense::Sense;
