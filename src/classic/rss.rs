//! Zero-filled root sum of squares, the multi-coil direct reconstruction as fastMRI defines it
//! (`fastmri.rss` of the inverse FFT of the masked k-space):
//! `sqrt(sum_c |F^H (Lambda y_c)|^2)`. It needs no coil maps; for maps normalised to
//! `sum_c |S_c|^2 = 1` and full k-space it is `|x|`.

use crate::ops::mri::fft::centred_ifft2;
use crate::ops::MeasurementOperator;
use tch::{Kind, Tensor};

/// `[B, 1, H, W]` real from zero-filled Cartesian k-space `y`, `[B, C, H, W]`.
pub fn rss(op: &MeasurementOperator, y: &Tensor) -> Tensor {
    rss_of(&(y * &op.mask))
}

/// The root sum of squares of the coil images of centred k-space `[B, C, H, W]` as it is (the
/// fully sampled reference of a multi-coil case).
pub fn rss_of(kspace: &Tensor) -> Tensor {
    centred_ifft2(kspace)
        .abs()
        .square()
        .sum_dim_intlist(1, true, None::<Kind>)
        .sqrt()
}
