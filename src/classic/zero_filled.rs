//! `T^-1 P^-1(Lambda) y`: the inverse transform of the zero-filled measurement. For MRI this is
//! the zero-filled inverse FFT; for CT it is filtered back projection of the sparse sinogram (the
//! transform's inverse is FBP over the full angle set, and unmeasured angles contribute zero).

use crate::ops::MeasurementOperator;
use tch::Tensor;

pub fn zero_filled(op: &MeasurementOperator, y: &Tensor) -> Tensor {
    op.transform.inverse(&(y * &op.mask))
}
