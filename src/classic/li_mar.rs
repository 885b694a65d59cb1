//! Linear-interpolation metal artifact reduction (LI, Kalender et al. 1987): replace the sinogram
//! bins of the metal trace (where `Lambda = 0`) by linear interpolation along the detector axis
//! between the nearest measured bins of the same angle, then reconstruct with the transform's
//! inverse (FBP). Generic over any sinogram `[B, 1, n_angles, n_detectors]` and mask.
//!
//! At the ends of a row, where a gap has measured bins on one side only, the nearest measured
//! value is held (as `numpy.interp`); a row with no measured bin is left at zero.

use crate::ops::MeasurementOperator;
use tch::{Kind, Tensor};

/// The sinogram with its masked-out bins filled by linear interpolation along the last axis.
pub fn interpolate_trace(sinogram: &Tensor, mask: &Tensor) -> Tensor {
    let keep = mask
        .to_device(sinogram.device())
        .gt(0.5)
        .expand_as(sinogram)
        .contiguous();
    let k = sinogram.size()[3];
    let idx = Tensor::arange(k, (Kind::Int64, sinogram.device()))
        .reshape([1, 1, 1, k])
        .expand_as(&keep)
        .contiguous();
    // Index of the nearest measured bin at or left of j (-1 if none) and at or right of j (k if
    // none): a running max from the left, a running min from the right.
    let left = idx
        .where_self(&keep, &Tensor::full_like(&idx, -1))
        .cummax(3)
        .0;
    let right = idx
        .where_self(&keep, &Tensor::full_like(&idx, k))
        .flip([3])
        .cummin(3)
        .0
        .flip([3]);
    let has_left = left.ge(0);
    let has_right = right.lt(k);
    // Missing sides borrow the other side (constant extrapolation).
    let l = left.where_self(&has_left, &right).clamp(0, k - 1);
    let r = right.where_self(&has_right, &left).clamp(0, k - 1);
    let vl = sinogram.gather(3, &l, false);
    let vr = sinogram.gather(3, &r, false);
    let span = (&r - &l).to_kind(Kind::Double);
    let frac = ((&idx - &l).to_kind(Kind::Double) / span.clamp_min(1.0)).to_kind(sinogram.kind());
    let filled = &vl + (&vr - &vl) * frac;
    // Rows without any measured bin: nothing to interpolate from.
    let any = has_left.logical_or(&has_right);
    let filled = filled.where_self(&any, &sinogram.zeros_like());
    sinogram.where_self(&keep, &filled)
}

/// LI-MAR: FBP (`T^-1`) of the interpolated sinogram.
pub fn li_mar(op: &MeasurementOperator, y: &Tensor) -> Tensor {
    op.transform.inverse(&interpolate_trace(y, &op.mask))
}
