//! Measurement operators `A = P(Lambda) T` (method.md, "Measurement model").
//!
//! Tensors are batched: images are `[B, 1, H, W]`; the transformed domain is whatever `T`
//! produces (`[B, 1, n_angles, n_detectors]` sinograms, `[B, 1, H, W]` complex k-space,
//! `[B, C, H, W]` for `C` receive coils).
//!
//! Representation of `P(Lambda)`: a measurement `y` is stored **zero-filled over T's whole
//! domain** together with the 0/1 mask `Lambda` of the same shape, i.e. we store `P^-1(Lambda) y`.
//! Then `P(Lambda) T x` is `Lambda * T x`, `A^T y = T^T (Lambda * y)`, and every formula of the
//! paper can be written with elementwise products on the device, with no gathers or ragged shapes.
//! The inner products of the adjoint identity are unchanged by this embedding.

use tch::{Kind, Tensor};

pub mod ct;
pub mod identity;
pub mod mri;
pub mod norm;
pub mod projection;
pub mod rng;

/// The full transform `T` shared by every task of one modality.
pub trait Transform: Send + Sync {
    /// `T x`.
    fn forward(&self, x: &Tensor) -> Tensor;
    /// `T^T y`: the exact adjoint of [`Transform::forward`] under the real inner product
    /// `Re <a, b>` (matched back projection for CT; the inverse FFT for the unitary MRI transform).
    fn adjoint(&self, y: &Tensor) -> Tensor;
    /// `T^-1 y`: filtered back projection over the full angle set for CT, the exact inverse FFT
    /// for MRI.
    fn inverse(&self, y: &Tensor) -> Tensor;
    /// The direct inverse of a zero-filled measurement `y` with mask `mask`. The default,
    /// `T^-1 (mask * y)`, is right for the unitary MRI transform; CT overrides it with FBP over the
    /// measured angles only, because FBP over the full set of a zero-filled sinogram comes out
    /// scaled by (measured / full) angles.
    fn inverse_masked(&self, y: &Tensor, mask: &Tensor) -> Tensor {
        self.inverse(&(y * mask))
    }
    /// `mask * T x`, what `A x` is zero-filled. The default computes all of `T x`; CT projects
    /// only the angles the mask keeps (23 of 180 for sparse-view CT).
    fn forward_masked(&self, x: &Tensor, mask: &Tensor) -> Tensor {
        self.forward(x) * mask
    }
    /// `T^T (mask * y)`, i.e. `A^T y`; CT back projects only the angles the mask keeps.
    fn adjoint_masked(&self, y: &Tensor, mask: &Tensor) -> Tensor {
        self.adjoint(&(y * mask))
    }
    /// `[H, W]` of the image domain.
    fn image_shape(&self) -> [i64; 2];
    /// Shape of the transformed domain without the batch and channel axes.
    fn measurement_shape(&self) -> [i64; 2];
    /// Channels of the transformed domain, `C` of `[B, C, M, K]`: 1, or the receive coils of
    /// multi-coil MRI, which share one mask `Lambda` (`[1, 1, M, K]`, broadcast over them).
    fn channels(&self) -> i64 {
        1
    }
    /// A short human-readable description for reports and errors.
    fn describe(&self) -> String;
}

/// `A = P(Lambda) T`.
pub struct MeasurementOperator {
    pub transform: Box<dyn Transform>,
    /// 0/1 mask over the transformed domain, `[1, 1, M, K]` (broadcast over the batch), f32.
    pub mask: Tensor,
}

impl MeasurementOperator {
    pub fn new(transform: Box<dyn Transform>, mask: Tensor) -> Self {
        let m = transform.measurement_shape();
        let mask = mask.to_kind(Kind::Float).reshape([1, 1, m[0], m[1]]);
        MeasurementOperator { transform, mask }
    }

    /// `A` with `Lambda = 1` everywhere (the full measurement).
    pub fn full(transform: Box<dyn Transform>) -> Self {
        let m = transform.measurement_shape();
        let mask = Tensor::ones([1, 1, m[0], m[1]], (Kind::Float, tch::Device::Cpu));
        Self::new(transform, mask)
    }

    pub fn to_device(mut self, device: tch::Device) -> Self {
        self.mask = self.mask.to_device(device);
        self
    }

    /// Flat indices (over `M * K`) of the entries `Lambda` keeps, on the mask's device.
    fn kept_indices(&self) -> Tensor {
        self.mask.flatten(0, -1).gt(0.5).nonzero().squeeze_dim(1)
    }

    /// Number of measured entries `m` of one channel (the rows of `P(Lambda)` per coil).
    pub fn n_measured(&self) -> i64 {
        self.kept_indices().size()[0]
    }

    /// `P(Lambda) z`: the entries of `z` (`[B, C, M, K]`) that `Lambda` keeps, packed as
    /// `[B, C m]`, channel by channel (the measurement vector `y` of method.md without the
    /// zero-filling; the coils share the mask).
    pub fn keep(&self, z: &Tensor) -> Tensor {
        let idx = self.kept_indices().to_device(z.device());
        z.flatten(2, -1).index_select(2, &idx).flatten(1, -1)
    }

    /// `P^-1(Lambda) y`: packed measurements `[B, C m]` back into `T`'s domain `[B, C, M, K]`,
    /// zero where `Lambda = 0`. `keep(zero_fill(y)) = y`; `zero_fill(keep(z)) = Lambda z`.
    pub fn zero_fill(&self, y: &Tensor) -> Tensor {
        let [m, k] = self.transform.measurement_shape();
        let c = self.transform.channels();
        let b = y.size()[0];
        let idx = self.kept_indices().to_device(y.device());
        Tensor::zeros([b, c, m * k], (y.kind(), y.device()))
            .index_copy(2, &idx, &y.reshape([b, c, -1]))
            .reshape([b, c, m, k])
    }

    /// `A x = P(Lambda) T x`, zero-filled.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.transform.forward_masked(x, &self.mask)
    }

    /// `A^T y = T^T P^-1(Lambda) y`.
    pub fn adjoint(&self, y: &Tensor) -> Tensor {
        self.transform.adjoint_masked(y, &self.mask)
    }

    /// The proximal data-consistency step `k(x, y, lambda)` of Theorem 8.1:
    ///
    /// `x' = T^-1 [ lambda Lambda P^-1(Lambda) y + (1 - lambda) Lambda T x + (I - Lambda) T x ]`
    ///
    /// computed as `x + T^-1 [ lambda Lambda (y - T x) ]`. The two are equal whenever
    /// `T^-1 T = I`: exactly for the MRI FFT, and up to FBP's discretisation error for CT. We apply
    /// `T^-1` to the correction only because, for CT, the literal form re-applies `FBP o Radon` to the
    /// whole sample at every step, and its high-frequency gain above 1 compounds over hundreds of
    /// sampling steps into divergence (measured: NaN after ~100 PC steps on the head CT).
    /// For multi-coil SENSE `T^-1` is the coil-combined inverse, a left inverse only (`T` maps
    /// one image to `C` coils), so the step moves `x` towards the data but `A x' = y` does not
    /// hold at `lambda = 1`; [`projection::project`] gives that exactly.
    pub fn proximal(&self, x: &Tensor, y: &Tensor, lambda: f64) -> Tensor {
        let correction = (y - self.transform.forward(x)) * &self.mask * lambda;
        x + self.transform.inverse(&correction)
    }

    /// `|A x - y| / |y|`, the data-consistency residual reported for every reconstruction
    /// (one value per batch element).
    pub fn residual(&self, x: &Tensor, y: &Tensor) -> Vec<f64> {
        let b = x.size()[0];
        let r = (self.forward(x) - y * &self.mask)
            .abs()
            .square()
            .reshape([b, -1])
            .sum_dim_intlist(1, false, Kind::Double);
        let n = (y * &self.mask)
            .abs()
            .square()
            .reshape([b, -1])
            .sum_dim_intlist(1, false, Kind::Double);
        let r = Vec::<f64>::try_from(r.sqrt()).unwrap_or_default();
        let n = Vec::<f64>::try_from(n.sqrt()).unwrap_or_default();
        r.iter()
            .zip(n.iter())
            .map(|(a, b)| if *b > 0.0 { a / b } else { *a })
            .collect()
    }
}

/// Real inner product `Re <a, b>` summed over all entries, in double precision; what the adjoint
/// identity `<A x, y> = <x, A^T y>` is stated in.
pub fn inner(a: &Tensor, b: &Tensor) -> f64 {
    real_products(a, b, true)
        .sum(Kind::Double)
        .double_value(&[])
}

/// Per batch element `Re <a, b>`, shaped `[B, 1, 1, 1]` for broadcasting, in the inputs' own
/// precision (summed as f32): what the conjugate-gradient solve of `projection` iterates with.
pub fn batch_inner(a: &Tensor, b: &Tensor) -> Tensor {
    let p = real_products(a, b, false);
    let n = p.size()[0];
    p.reshape([n, -1])
        .sum_dim_intlist(1, false, Kind::Float)
        .reshape([n, 1, 1, 1])
}

/// The terms `Re(conj(a) b)` of both inner products: in double precision (`double`, for
/// [`inner`]) or in the inputs' own kind (for [`batch_inner`]), the precision each had before
/// they shared this.
fn real_products(a: &Tensor, b: &Tensor, double: bool) -> Tensor {
    let complex = a.is_complex() || b.is_complex();
    let cast = |t: &Tensor| match (double, complex) {
        (true, true) => t.to_kind(Kind::ComplexDouble),
        (true, false) => t.to_kind(Kind::Double),
        (false, _) => t.shallow_clone(),
    };
    let (a, b) = (cast(a), cast(b));
    if complex {
        (a.conj() * b).real()
    } else {
        a * b
    }
}

#[cfg(test)]
mod tests {
    use super::identity::Identity;
    use super::*;
    use tch::Device;

    fn inpainting(h: i64, w: i64) -> MeasurementOperator {
        let mask = Tensor::rand([1, 1, h, w], (Kind::Float, Device::Cpu))
            .gt(0.5)
            .to_kind(Kind::Float);
        MeasurementOperator::new(Box::new(Identity::new(h, w)), mask)
    }

    #[test]
    fn proximal_endpoints() {
        tch::manual_seed(0);
        let a = inpainting(8, 8);
        let x = Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        let y = a.forward(&Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu)));
        // lambda = 0 leaves x alone; lambda = 1 makes A x' = y exactly.
        let x0 = a.proximal(&x, &y, 0.0);
        assert!(f64::try_from((&x0 - &x).abs().max()).unwrap() < 1e-7);
        let x1 = a.proximal(&x, &y, 1.0);
        assert!(a.residual(&x1, &y).iter().all(|r| *r < 1e-7));
    }

    #[test]
    fn keep_and_zero_fill_are_p_and_its_right_inverse() {
        tch::manual_seed(2);
        let a = inpainting(6, 5);
        let z = Tensor::randn([2, 1, 6, 5], (Kind::Float, Device::Cpu));
        let y = a.keep(&z);
        assert_eq!(y.size(), vec![2, a.n_measured()]);
        // P P^-1 = I on measurements; P^-1 P = Lambda on the transformed domain.
        assert!(f64::try_from((a.keep(&a.zero_fill(&y)) - &y).abs().max()).unwrap() == 0.0);
        let back = a.zero_fill(&y);
        assert!(f64::try_from((back - &z * &a.mask).abs().max()).unwrap() == 0.0);
    }

    #[test]
    fn adjoint_identity() {
        tch::manual_seed(1);
        let a = inpainting(16, 12);
        let x = Tensor::randn([3, 1, 16, 12], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([3, 1, 16, 12], (Kind::Float, Device::Cpu));
        let lhs = inner(&a.forward(&x), &y);
        let rhs = inner(&x, &a.adjoint(&y));
        assert!((lhs - rhs).abs() / lhs.abs() < 1e-6, "{lhs} vs {rhs}");
    }

    /// Both inner products against `sum_k (Re a_k Re b_k + Im a_k Im b_k)` written out in f64,
    /// per image and over the batch, for real and complex inputs.
    #[test]
    fn inner_products_match_the_written_out_sum() {
        use crate::ops::rng::standard_normal;
        let shape = [3i64, 1, 4, 5];
        let re = |s| standard_normal(&shape, s, Kind::Float, Device::Cpu);
        let a = Tensor::complex(&re(1), &re(2));
        let b = Tensor::complex(&re(3), &re(4));
        let real_b = re(5);
        let parts = |t: &Tensor| -> Vec<f64> {
            let t = if t.is_complex() {
                t.view_as_real()
            } else {
                Tensor::stack(&[t.shallow_clone(), t.zeros_like()], -1)
            };
            Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
        };
        for (x, y) in [(&a, &b), (&a, &real_b), (&real_b, &real_b)] {
            let (px, py) = (parts(x), parts(y));
            let per = px.len() / 3;
            let want: Vec<f64> = (0..3)
                .map(|k| (k * per..(k + 1) * per).map(|i| px[i] * py[i]).sum())
                .collect();
            let got = Vec::<f64>::try_from(batch_inner(x, y).to_kind(Kind::Double).flatten(0, -1))
                .unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
            }
            let total: f64 = want.iter().sum();
            assert!((inner(x, y) - total).abs() < 1e-12 * (1.0 + total.abs()));
        }
    }
}
