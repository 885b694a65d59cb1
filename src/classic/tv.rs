//! Isotropic total variation and its proximal operator, shared by every TV-regularised
//! reconstruction (FISTA-TV for CT, TV compressed sensing for MRI).
//!
//! Discretisation (Beck & Teboulle 2009, "Fast gradient-based algorithms for constrained total
//! variation image denoising and deblurring problems", sec. 4; also scikit-image's Chambolle
//! solver): forward differences with a zero difference past the last row/column (Neumann
//! boundary), `TV(x) = sum_ij sqrt((D_y x)_ij^2 + (D_x x)_ij^2)`.
//!
//! Images are real `[B, 1, H, W]` tensors on any device.

use tch::{Kind, Tensor};

/// `(D_y x, D_x x)`: forward differences along `H` and `W`, zero in the last row / column.
pub fn gradient(x: &Tensor) -> (Tensor, Tensor) {
    let dy = x
        .diff(1, -2, None::<Tensor>, None::<Tensor>)
        .constant_pad_nd([0, 0, 0, 1]);
    let dx = x
        .diff(1, -1, None::<Tensor>, None::<Tensor>)
        .constant_pad_nd([0, 1, 0, 0]);
    (dy, dx)
}

/// `div = -D^T`: `(div p)_i = p_i - p_{i-1}` with `p_{-1} = 0` and the last entry of each
/// component (which `D` sets to zero) ignored, so `<D x, p> = -<x, div p>` exactly.
pub fn divergence(py: &Tensor, px: &Tensor) -> Tensor {
    let (h, w) = (py.size()[2], px.size()[3]);
    let py = py.narrow(2, 0, h - 1).constant_pad_nd([0, 0, 1, 1]);
    let px = px.narrow(3, 0, w - 1).constant_pad_nd([1, 1, 0, 0]);
    py.diff(1, -2, None::<Tensor>, None::<Tensor>) + px.diff(1, -1, None::<Tensor>, None::<Tensor>)
}

/// Isotropic TV of each image, `[B]` in double precision.
pub fn total_variation(x: &Tensor) -> Tensor {
    let (dy, dx) = gradient(&x.to_kind(Kind::Double));
    let b = x.size()[0];
    (dy.square() + dx.square())
        .sqrt()
        .reshape([b, -1])
        .sum_dim_intlist(1, false, Kind::Double)
}

/// The dual variable `p = (p_y, p_x)` of the TV prox, kept between calls so that FISTA's
/// successive prox problems start from the previous solution (warm start).
pub struct TvDual {
    py: Tensor,
    px: Tensor,
}

impl TvDual {
    pub fn zeros_like(x: &Tensor) -> Self {
        TvDual {
            py: x.zeros_like(),
            px: x.zeros_like(),
        }
    }
}

/// `prox(b) = argmin_{x in C} 1/2 ||x - b||^2 + theta TV(x)`, `C` = all images or the
/// non-negative ones, by `iterations` steps of Beck-Teboulle's fast gradient projection (FGP) on
/// the dual: `x(p) = P_C(b + theta div p)`,
/// `p <- P_{|p_ij| <= 1}(r + D x(r) / (8 theta))` with Nesterov momentum on `r`
/// (`8 >= ||D||^2` makes `1 / (8 theta)` a safe step). Starts from `dual` and leaves the last
/// dual iterate there.
pub fn prox_tv(
    b: &Tensor,
    theta: f64,
    nonneg: bool,
    iterations: usize,
    dual: &mut TvDual,
) -> Tensor {
    let project_c = |x: Tensor| if nonneg { x.clamp_min(0.0) } else { x };
    if theta <= 0.0 {
        return project_c(b.shallow_clone());
    }
    let primal = |py: &Tensor, px: &Tensor| project_c(b + divergence(py, px) * theta);
    let step = 1.0 / (8.0 * theta);
    let (mut py, mut px) = (dual.py.shallow_clone(), dual.px.shallow_clone());
    let (mut ry, mut rx) = (py.shallow_clone(), px.shallow_clone());
    let mut t = 1.0f64;
    for _ in 0..iterations {
        let x = primal(&ry, &rx);
        let (gy, gx) = gradient(&x);
        let qy = &ry + gy * step;
        let qx = &rx + gx * step;
        // Projection onto the unit ball of each pixel's 2-vector (isotropic TV).
        let scale = (qy.square() + qx.square()).sqrt().clamp_min(1.0);
        let (ny, nx) = (qy / &scale, qx / &scale);
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let momentum = (t - 1.0) / t_next;
        ry = &ny + (&ny - &py) * momentum;
        rx = &nx + (&nx - &px) * momentum;
        py = ny;
        px = nx;
        t = t_next;
    }
    let x = primal(&py, &px);
    dual.py = py;
    dual.px = px;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::inner;
    use crate::ops::rng::standard_normal;
    use tch::Device;

    #[test]
    fn divergence_is_minus_the_adjoint_of_the_gradient() {
        let x = standard_normal(&[2, 1, 9, 7], 1, Kind::Double, Device::Cpu);
        let py = standard_normal(&[2, 1, 9, 7], 2, Kind::Double, Device::Cpu);
        let px = standard_normal(&[2, 1, 9, 7], 3, Kind::Double, Device::Cpu);
        let (dy, dx) = gradient(&x);
        let lhs = inner(&dy, &py) + inner(&dx, &px);
        let rhs = -inner(&x, &divergence(&py, &px));
        assert!(
            (lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }

    #[test]
    fn tv_of_a_step_is_its_height_times_its_length() {
        // A vertical edge of height 2 across 6 rows: TV = 6 * 2.
        let x = Tensor::zeros([1, 1, 6, 5], (Kind::Double, Device::Cpu));
        let _ = x.narrow(3, 3, 2).fill_(2.0);
        assert!((total_variation(&x).double_value(&[0]) - 12.0).abs() < 1e-12);
    }
}
