//! The exact projection onto `{x : A x = y}`:
//!
//!   `x' = x + A^T (A A^T)^-1 (y - A x)`
//!
//! the closest image (in the plain L2 norm) that reproduces the measurement. For a unitary `T`
//! (MRI, inpainting) it equals the proximal step with lambda = 1 (Theorem 8.1); for CT,
//! `T^-1` is FBP, so `proximal(.., 1)` only approximately satisfies `A x = y` and the samplers'
//! final hard data-consistency step uses this instead. `(A A^T)^-1` is applied by conjugate
//! gradients in the measurement domain (per batch element, real inner product `Re <a, b>`, so
//! complex k-space works unchanged).

use super::{batch_inner, MeasurementOperator};
use tch::Tensor;

/// Options of the conjugate-gradient solve.
#[derive(Debug, Clone, Copy)]
pub struct ProjectionOptions {
    pub max_iterations: usize,
    /// Stop when `|r_k| <= tolerance |r_0|` for every batch element.
    pub tolerance: f64,
}

impl Default for ProjectionOptions {
    fn default() -> Self {
        ProjectionOptions {
            max_iterations: 50,
            tolerance: 1e-6,
        }
    }
}

/// `x + A^T (A A^T)^-1 (y - A x)`; `y` zero-filled over T's domain as everywhere in `ops`.
/// Returns the projected image and the number of CG iterations used.
pub fn project(
    op: &MeasurementOperator,
    x: &Tensor,
    y: &Tensor,
    opts: ProjectionOptions,
) -> (Tensor, usize) {
    let r0 = (y - op.transform.forward(x)) * &op.mask;
    let rr0 = batch_inner(&r0, &r0);
    let scale0 = f64::try_from(rr0.max()).unwrap_or(0.0);
    if scale0 == 0.0 {
        return (x.shallow_clone(), 0);
    }
    let mut u = r0.zeros_like();
    let mut r = r0.shallow_clone();
    let mut p = r0.shallow_clone();
    let mut rr = rr0.shallow_clone();
    let tol2 = opts.tolerance * opts.tolerance;
    let mut iterations = 0;
    // A A^T can be singular (real images under a k-space mask: `k` and `-k` measured carry one
    // real degree of freedom), and once single-precision CG has reached its floor the rounding
    // left in those null directions is amplified without bound. So keep the best iterate and
    // stop as soon as the residual grows well past it.
    let mut best = (f64::INFINITY, u.shallow_clone());
    for _ in 0..opts.max_iterations {
        iterations += 1;
        // A A^T p, restricted to the measured entries.
        let mp = op.forward(&op.adjoint(&p));
        let alpha = &rr / batch_inner(&p, &mp).clamp_min(1e-30);
        // Not `+=` / `-=`: in place, they would write through the shallow clones that `best`,
        // `r0` and `p` hold of `u` and `r`.
        #[allow(clippy::assign_op_pattern)]
        {
            u = u + &alpha * &p;
            r = r - &alpha * &mp;
        }
        let rr_new = batch_inner(&r, &r);
        let worst = f64::try_from((&rr_new / rr0.clamp_min(1e-30)).max()).unwrap_or(f64::NAN);
        // A NaN residual stops the solve as well (`best.0` is never NaN).
        if worst.is_nan() || worst > 100.0 * best.0 {
            break;
        }
        if worst < best.0 {
            best = (worst, u.shallow_clone());
        }
        if worst <= tol2 {
            break;
        }
        let beta = &rr_new / rr.clamp_min(1e-30);
        p = &r + beta * &p;
        rr = rr_new;
    }
    (x + op.adjoint(&best.1), iterations)
}

/// `argmin_x |A x - y|^2 + gamma |x - x0|^2`, approximately: `iterations` conjugate-gradient
/// steps on the normal equations `(A^T A + gamma I) x = A^T y + gamma x0`, started at `x0`, per
/// batch element (the data step of DDS, `sampler/dds.rs`). From `x0` the first residual is
/// `A^T (y - A x0)`, so every iterate stays in `x0 + range(A^T)`: with `gamma = 0` the steps
/// move only the measured part of the image and converge to [`project`]`(x0)`; a few steps are
/// a partial move towards it. `gamma > 0` (noisy `y`) weighs the measurement against `x0`.
pub fn regularised_least_squares(
    op: &MeasurementOperator,
    x0: &Tensor,
    y: &Tensor,
    gamma: f64,
    iterations: usize,
) -> Tensor {
    let mut x = x0.shallow_clone();
    let mut r = op.adjoint(&((y - op.transform.forward(x0)) * &op.mask));
    let mut p = r.shallow_clone();
    let mut rr = batch_inner(&r, &r);
    // An image whose residual has fallen below 1e-6 of its start is done: past single
    // precision's floor, CG amplifies the rounding left in the null directions of a singular
    // A^T A (real images under a k-space mask, as in `project`) without bound, so its steps
    // are switched off rather than the whole batch stopped.
    let floor = &rr * 1e-12;
    for _ in 0..iterations {
        let active = rr.gt_tensor(&floor).to_kind(rr.kind());
        if f64::try_from(active.max()).unwrap_or(0.0) == 0.0 {
            break;
        }
        let mp = op.adjoint(&op.forward(&p)) + &p * gamma;
        let alpha = &rr / batch_inner(&p, &mp).clamp_min(1e-30) * &active;
        // Not `+=` / `-=`: in place, they would write through the shallow clones of `x0` and `p`.
        #[allow(clippy::assign_op_pattern)]
        {
            x = x + &alpha * &p;
            r = r - &alpha * &mp;
        }
        let rr_new = batch_inner(&r, &r);
        let beta = &rr_new / rr.clamp_min(1e-30);
        p = &r + beta * &p;
        rr = rr_new;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::identity::Identity;
    use tch::{Device, Kind};

    #[test]
    fn real_image_mri_projection_stays_bounded_on_a_singular_system() {
        // A real image under a 4x equispaced mask with a fully sampled centre: lines `k` and
        // `-k` both measured make A A^T singular. The projection must still reproduce y (to
        // single precision) and not blow up (it reached 1e10 before the best-iterate guard).
        use crate::ops::mri::masks::{MaskKind, MaskSpec};
        use crate::ops::mri::MriFft;
        tch::manual_seed(5);
        let (h, w) = (128, 128);
        let mask = MaskSpec {
            kind: MaskKind::Equispaced,
            acceleration: 4.0,
            center_fraction: 0.08,
            seed: 0,
        }
        .build(h, w)
        .unwrap();
        let op = MeasurementOperator::new(Box::new(MriFft::real(h, w).unwrap()), mask);
        let truth = Tensor::rand([2, 1, h, w], (Kind::Float, Device::Cpu));
        let y = op.forward(&truth);
        let x = Tensor::randn([2, 1, h, w], (Kind::Float, Device::Cpu)) * 10.0;
        // A tolerance below single precision: CG runs past its floor, where the trouble is.
        let opts = ProjectionOptions {
            max_iterations: 50,
            tolerance: 1e-10,
        };
        let (px, _) = project(&op, &x, &y, opts);
        let res = op.residual(&px, &y);
        assert!(res.iter().all(|r| *r < 1e-4), "residual {res:?}");
        let step = f64::try_from((&px - &x).abs().max()).unwrap();
        assert!(step < 100.0, "projection moved the image by {step}");
    }

    #[test]
    fn inpainting_projection_is_the_proximal_step_with_lambda_one() {
        tch::manual_seed(3);
        let mask = Tensor::rand([1, 1, 9, 7], (Kind::Float, Device::Cpu))
            .gt(0.4)
            .to_kind(Kind::Float);
        let op = MeasurementOperator::new(Box::new(Identity::new(9, 7)), mask);
        let x = Tensor::randn([3, 1, 9, 7], (Kind::Float, Device::Cpu));
        let y = op.forward(&Tensor::randn([3, 1, 9, 7], (Kind::Float, Device::Cpu)));
        let (px, it) = project(&op, &x, &y, ProjectionOptions::default());
        let prox = op.proximal(&x, &y, 1.0);
        assert!(it <= 2, "a projector mask needs one CG step, took {it}");
        assert!(f64::try_from((&px - &prox).abs().max()).unwrap() < 1e-6);
        // Already consistent input: returned unchanged.
        let (same, it0) = project(&op, &px, &y, ProjectionOptions::default());
        assert!(it0 <= 1);
        assert!(f64::try_from((&same - &px).abs().max()).unwrap() < 1e-6);
    }

    #[test]
    fn regularised_least_squares_meets_its_closed_forms() {
        // Inpainting: (Lambda + gamma) x = Lambda y + gamma x0, elementwise; A^T A = Lambda has
        // two eigenvalues, so CG is exact after two steps.
        tch::manual_seed(4);
        let mask = Tensor::rand([1, 1, 9, 7], (Kind::Float, Device::Cpu))
            .gt(0.4)
            .to_kind(Kind::Float);
        let op = MeasurementOperator::new(Box::new(Identity::new(9, 7)), mask.shallow_clone());
        let x0 = Tensor::randn([3, 1, 9, 7], (Kind::Float, Device::Cpu));
        let y = op.forward(&Tensor::randn([3, 1, 9, 7], (Kind::Float, Device::Cpu)));
        let gamma = 0.3;
        let want = (&mask * &y + &x0 * gamma) / (&mask + gamma);
        let got = regularised_least_squares(&op, &x0, &y, gamma, 5);
        assert!(f64::try_from((&got - &want).abs().max()).unwrap() < 1e-5);
        // gamma = 0: the projection of x0 onto {A x = y}.
        let (px, _) = project(&op, &x0, &y, ProjectionOptions::default());
        let got = regularised_least_squares(&op, &x0, &y, 0.0, 5);
        assert!(f64::try_from((&got - &px).abs().max()).unwrap() < 1e-5);
    }
}
