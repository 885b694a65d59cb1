//! The direct inverse of the zero-filled measurement (`Transform::inverse_masked`). For MRI this
//! is the zero-filled inverse FFT `T^-1 P^-1(Lambda) y`; for CT it is filtered back projection
//! over the measured angles (FBP over the full set of a zero-filled sinogram would be scaled by
//! measured / full angles).

use crate::ops::MeasurementOperator;
use tch::Tensor;

pub fn zero_filled(op: &MeasurementOperator, y: &Tensor) -> Tensor {
    op.transform.inverse_masked(y, &op.mask)
}
