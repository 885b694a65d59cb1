//! What a receive coil array adds to a real image: smooth complex coil sensitivities, a smooth
//! image phase, and receiver noise correlated across the coils (docs/operators-mri.md,
//! "Multi-coil simulation"). The multi-coil measurement itself is `simulate::mri`'s.
//!
//! **Coil sensitivities.** `C` surface loops sit evenly on a circle of radius `1.5` (in units of
//! the half field of view) around the image. A small loop's on-axis field falls off as
//! `(1 + (d / rho)^2)^(-3/2)` with the distance `d` (Biot-Savart), so each coil sees the image
//! bright near it and dim across; the phase turns with the loop's angle and across the image
//! (a rotating `B1-` field), which is what makes ESPIRiT's phase normalisation and the SENSE
//! inverse non-trivial. The maps are normalised to a unit root sum of squares at every pixel, as
//! a prescan normalisation leaves them, so the fully sampled RSS image *is* the image given: the
//! reference of every multi-coil figure is the fully sampled RSS, fastMRI's. The reconstruction
//! never sees these maps: it estimates its own from the calibration region.
//!
//! **Image phase.** A smooth second-order polynomial phase with seeded coefficients, about a
//! radian across the field of view: what B0 inhomogeneity and receive phase leave in a
//! gradient-echo image. The magnitude is the image given, the ground truth.
//!
//! **Noise.** `n = L z`, `z ~ CN(0, I)` per k-space entry and coil, `L L^H = Psi` (Cholesky),
//! `Psi = sigma^2 [(1 - rho) D + rho d d^T]`: coil variances `D = diag(d^2)` from 0.8 to 1.2 and
//! a correlation `rho = 0.2` between every pair, the order of what a head array's noise
//! pre-scan shows.

use crate::ops::rng::standard_normal;
use anyhow::{ensure, Result};
use std::f64::consts::PI;
use tch::{Device, Kind, Tensor};

/// Correlation between the noise of every pair of coils.
pub const NOISE_CORRELATION: f64 = 0.2;

/// `[1, C, H, W]` complex64 sensitivities of `coils` loops around an `H x W` image.
pub fn coil_maps(coils: usize, h: i64, w: i64, device: Device) -> Result<Tensor> {
    ensure!(
        (1..=64).contains(&coils),
        "coils {coils}: must be between 1 and 64"
    );
    let (u, v) = grid(h, w, device);
    let rho = 1.0; // loop radius, in units of the half field of view
    let mut maps = Vec::with_capacity(coils);
    for c in 0..coils {
        let theta = 2.0 * PI * c as f64 / coils as f64;
        let (px, py) = (1.5 * theta.cos(), 1.5 * theta.sin());
        let d2 = (&u - px).square() + (&v - py).square();
        let magnitude = (d2 / (rho * rho) + 1.0).pow_tensor_scalar(-1.5);
        let phase = (&u * theta.cos() + &v * theta.sin()) * (0.5 * PI) + theta;
        maps.push(Tensor::polar(&magnitude, &phase));
    }
    let maps = Tensor::stack(&maps, 0).unsqueeze(0);
    let rss = maps
        .abs()
        .square()
        .sum_dim_intlist(1, true, Kind::Double)
        .sqrt();
    Ok((maps / rss).to_kind(Kind::ComplexFloat))
}

/// `[1, 1, H, W]` smooth image phase in radians, seeded: `a0 + a1 u + a2 v + a3 u v +
/// a4 (u^2 + v^2)` with `u, v` in `[-1, 1]` and the coefficients `N(0, 0.5^2)`.
pub fn image_phase(h: i64, w: i64, seed: u64, device: Device) -> Tensor {
    let (u, v) = grid(h, w, device);
    let a = standard_normal(&[5], seed, Kind::Double, Device::Cpu) * 0.5;
    let a: Vec<f64> = Vec::try_from(a).expect("5 doubles");
    let phase = (&u * a[1] + &v * a[2] + &u * &v * a[3] + (u.square() + v.square()) * a[4]) + a[0];
    phase.to_kind(Kind::Float).reshape([1, 1, h, w])
}

/// The lower Cholesky factor `L` (`[C, C]`, complex128) of the coils' noise covariance `Psi`
/// for unit `sigma`, normalised so that the mean coil variance is 1.
pub fn noise_cholesky(coils: usize) -> Tensor {
    let c = coils as i64;
    let d = Tensor::linspace(0.8f64.sqrt(), 1.2f64.sqrt(), c, (Kind::Double, Device::Cpu));
    let dd = d.unsqueeze(1).matmul(&d.unsqueeze(0));
    let psi = &dd * NOISE_CORRELATION
        + Tensor::eye(c, (Kind::Double, Device::Cpu)) * &dd * (1.0 - NOISE_CORRELATION);
    let mean_variance = psi.diagonal(0, 0, 1).mean(Kind::Double);
    (psi / mean_variance)
        .linalg_cholesky(false)
        .to_kind(Kind::ComplexDouble)
}

/// Correlated receiver noise `[B, C, H, W]` complex64 with `E |n_c|^2 = sigma^2` on average over
/// the coils and the covariance of [`noise_cholesky`], reproducible from `seed`.
pub fn coil_noise(shape: [i64; 4], sigma: f64, seed: u64, device: Device) -> Tensor {
    let [b, c, h, w] = shape;
    // Real and imaginary parts N(0, 1/2): z ~ CN(0, 1).
    let z = (standard_normal(&[b, c, h, w, 2], seed, Kind::Double, device)
        * std::f64::consts::FRAC_1_SQRT_2)
        .view_as_complex();
    let l = noise_cholesky(c as usize).to_device(device);
    // n_c = sum_d L_cd z_d at every entry.
    let n = Tensor::einsum("cd,bdhw->bchw", &[l, z], None::<&[i64]>);
    (n * sigma).to_kind(Kind::ComplexFloat)
}

/// Pixel-centre coordinates in `[-1, 1]`: `u` along the columns, `v` along the rows, `[H, W]`
/// doubles.
fn grid(h: i64, w: i64, device: Device) -> (Tensor, Tensor) {
    let axis = |n: i64| (Tensor::arange(n, (Kind::Double, device)) + 0.5) * (2.0 / n as f64) - 1.0;
    let v = axis(h).unsqueeze(1).expand([h, w], false);
    let u = axis(w).unsqueeze(0).expand([h, w], false);
    (u, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_has_the_stated_covariance() {
        let c = 4usize;
        let n = coil_noise([2, c as i64, 64, 64], 0.5, 7, Device::Cpu).to_kind(Kind::ComplexDouble);
        // Sample covariance over the 2 * 64 * 64 entries against sigma^2 L L^H.
        let flat = n.permute([1, 0, 2, 3]).reshape([c as i64, -1]);
        let count = flat.size()[1] as f64;
        let sample = flat.matmul(&flat.conj().transpose(0, 1)) / count;
        let l = noise_cholesky(c);
        let psi = l.matmul(&l.conj().transpose(0, 1)) * 0.25;
        let err = f64::try_from((&sample - &psi).abs().max()).unwrap();
        // 8192 samples per entry: the standard error of each covariance is about 0.25 / 90.
        assert!(err < 0.015, "max covariance error {err}");
        let corr = f64::try_from(psi.select(0, 0).select(0, 1).real()).unwrap()
            / f64::try_from(psi.select(0, 0).select(0, 0).real()).unwrap();
        assert!(corr > 0.1, "coils 0 and 1 are correlated: {corr}");
    }

    #[test]
    fn maps_are_smooth_and_cover_the_image() {
        let maps = coil_maps(8, 32, 32, Device::Cpu).unwrap();
        assert_eq!(maps.size(), vec![1, 8, 32, 32]);
        // Normalised: a unit root sum of squares everywhere; each coil sees its side of the
        // image several times brighter than the far side.
        let rss = maps
            .abs()
            .square()
            .sum_dim_intlist(1, false, Kind::Float)
            .sqrt();
        let err = f64::try_from((rss - 1.0).abs().max()).unwrap();
        assert!(err < 1e-5, "rss deviates from 1 by {err}");
        let first = maps.get(0).get(0).abs();
        let (near, far) = (
            f64::try_from(first.get(16).get(31)).unwrap(),
            f64::try_from(first.get(16).get(0)).unwrap(),
        );
        assert!(near > 3.0 * far, "coil 0 near {near}, far {far}");
        assert!(coil_maps(0, 8, 8, Device::Cpu).is_err());
    }
}
