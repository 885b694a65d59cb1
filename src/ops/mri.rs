//! Single-coil MRI: `T` = the centred, orthonormal 2-D FFT (method.md, "Measurement model"),
//! `fftshift(fft2(ifftshift(x), norm="ortho"))` over the last two axes, and complex Gaussian
//! k-space noise at a stated SNR. Masks live in [`super::masks`].
//!
//! **Image domain.** The score models are trained on real images (magnitude or real part, as in
//! the paper's code), so the default is [`ImageDomain::Real`]: `T` maps a real image to complex
//! k-space, `T^T y = Re F^H y` is its exact adjoint under `Re <.,.>` (for real `x`,
//! `Re <F x, y> = Re <x, F^H y> = <x, Re F^H y>`), and `T^-1 = T^T` is an exact left inverse
//! (`Re F^H F x = x`). The proximal step then returns `Re F^H [...]`, which satisfies
//! `A x' = y` at `lambda = 1` only when the data are those of a real image on a mask that is
//! point symmetric in k-space (`k -> -k`); on other masks it keeps the Hermitian part of the
//! correction (docs/operators-mri.md). [`ImageDomain::Complex`] keeps complex images throughout:
//! `T^-1 = F^H`, and `A x' = y` holds exactly at `lambda = 1` for every mask.

use super::rng::standard_normal;
use super::Transform;
use anyhow::{bail, ensure, Result};
use tch::{Kind, Tensor};

const AXES: [i64; 2] = [-2, -1];

/// Whether images are real (`[B, 1, H, W]` float) or complex (`[B, 1, H, W]` complex float).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageDomain {
    Real,
    Complex,
}

/// The centred orthonormal 2-D FFT over an `H x W` image.
pub struct MriFft {
    h: i64,
    w: i64,
    domain: ImageDomain,
}

impl MriFft {
    pub fn new(h: i64, w: i64, domain: ImageDomain) -> Result<Self> {
        ensure!(
            h >= 1 && w >= 1,
            "MRI image size {h}x{w}: both sides must be at least 1"
        );
        Ok(MriFft { h, w, domain })
    }

    /// Real images (the score models' domain).
    pub fn real(h: i64, w: i64) -> Result<Self> {
        Self::new(h, w, ImageDomain::Real)
    }

    /// Complex images.
    pub fn complex(h: i64, w: i64) -> Result<Self> {
        Self::new(h, w, ImageDomain::Complex)
    }

    pub fn domain(&self) -> ImageDomain {
        self.domain
    }

    /// `F^H y` (centred, orthonormal), always complex.
    fn centred_ifft2(y: &Tensor) -> Tensor {
        y.fft_ifftshift(AXES.as_slice())
            .fft_ifft2(None::<&[i64]>, AXES, "ortho")
            .fft_fftshift(AXES.as_slice())
    }

    fn to_domain(&self, x: Tensor) -> Tensor {
        match self.domain {
            ImageDomain::Real => x.real().contiguous(),
            ImageDomain::Complex => x,
        }
    }
}

/// `fftshift(fft2(ifftshift(x), norm="ortho"))` over the last two axes.
pub fn centred_fft2(x: &Tensor) -> Tensor {
    x.fft_ifftshift(AXES.as_slice())
        .fft_fft2(None::<&[i64]>, AXES, "ortho")
        .fft_fftshift(AXES.as_slice())
}

impl Transform for MriFft {
    fn forward(&self, x: &Tensor) -> Tensor {
        centred_fft2(x)
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        self.to_domain(Self::centred_ifft2(y))
    }
    /// The transform is unitary, so the inverse is the adjoint (for real images: the exact left
    /// inverse `Re F^H`).
    fn inverse(&self, y: &Tensor) -> Tensor {
        self.adjoint(y)
    }
    fn image_shape(&self) -> [i64; 2] {
        [self.h, self.w]
    }
    fn measurement_shape(&self) -> [i64; 2] {
        [self.h, self.w]
    }
    fn describe(&self) -> String {
        let d = match self.domain {
            ImageDomain::Real => "real",
            ImageDomain::Complex => "complex",
        };
        format!(
            "centred orthonormal 2-D FFT {}x{} ({d} images)",
            self.h, self.w
        )
    }
}

/// How much k-space noise to add.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoiseLevel {
    /// `SNR_dB = 10 log10(P / sigma^2)`, `P` = the mean of `|y_k|^2` over the measured entries
    /// of each image, `sigma^2 = E |n_k|^2` per complex entry.
    SnrDb(f64),
    /// `sigma` directly: `E |n_k|^2 = sigma^2`, i.e. `sigma^2 / 2` in each of the real and
    /// imaginary parts.
    Sigma(f64),
}

/// `y + n` with `n` circularly-symmetric complex Gaussian noise, `n_k ~ CN(0, sigma^2)`.
///
/// `kspace` is `[B, 1, H, W]` complex; `mask` (`[1 or B, 1, H, W]`, 0/1) marks the measured
/// entries: the SNR is measured over them and the result is zero outside them (the zero-filled
/// storage of ops/mod.rs). Without a mask every entry counts as measured. Returns the noisy
/// k-space and `sigma` for each image. Reproducible from `seed` on every device.
pub fn kspace_noise(
    kspace: &Tensor,
    mask: Option<&Tensor>,
    level: NoiseLevel,
    seed: u64,
) -> Result<(Tensor, Vec<f64>)> {
    let size = kspace.size();
    ensure!(
        size.len() == 4,
        "k-space noise: expected a [B, 1, H, W] k-space, got shape {size:?}"
    );
    let b = size[0];
    let device = kspace.device();
    let y = kspace.to_kind(Kind::ComplexDouble);
    let mask = match mask {
        Some(m) => m
            .to_device(device)
            .to_kind(Kind::Double)
            .expand_as(&y.real())
            .contiguous(),
        None => Tensor::ones_like(&y.real()),
    };
    let count = Vec::<f64>::try_from(mask.reshape([b, -1]).sum_dim_intlist(
        1,
        false,
        Kind::Double,
    ))?;
    let power = Vec::<f64>::try_from((y.abs().square() * &mask).reshape([b, -1]).sum_dim_intlist(
        1,
        false,
        Kind::Double,
    ))?;
    let mut sigma = Vec::with_capacity(b as usize);
    for i in 0..b as usize {
        let s = match level {
            NoiseLevel::Sigma(s) => {
                if !(s.is_finite() && s >= 0.0) {
                    bail!("k-space noise sigma {s}: must be a finite number >= 0");
                }
                s
            }
            NoiseLevel::SnrDb(snr) => {
                if !snr.is_finite() {
                    bail!("k-space SNR {snr} dB: must be a finite number of decibels");
                }
                ensure!(
                    count[i] > 0.0,
                    "k-space noise: the mask of image {i} measures nothing"
                );
                let p = power[i] / count[i];
                ensure!(
                    p > 0.0,
                    "k-space SNR {snr} dB: image {i} has zero signal on the mask"
                );
                (p / 10f64.powf(snr / 10.0)).sqrt()
            }
        };
        sigma.push(s);
    }
    // Real and imaginary parts are each N(0, sigma^2 / 2).
    let z = standard_normal(
        &[b, size[1], size[2], size[3], 2],
        seed,
        Kind::Double,
        device,
    )
    .view_as_complex();
    let scale = Tensor::from_slice(&sigma)
        .to_device(device)
        .reshape([b, 1, 1, 1])
        * std::f64::consts::FRAC_1_SQRT_2;
    let noisy = (y + z * scale) * &mask;
    let kind = if kspace.kind() == Kind::ComplexDouble {
        Kind::ComplexDouble
    } else {
        Kind::ComplexFloat
    };
    Ok((noisy.to_kind(kind), sigma))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn noise_has_the_stated_snr() {
        let x = standard_normal(&[2, 1, 64, 48], 3, Kind::Float, Device::Cpu);
        let t = MriFft::real(64, 48).unwrap();
        let y = t.forward(&x);
        let (noisy, sigma) = kspace_noise(&y, None, NoiseLevel::SnrDb(20.0), 11).unwrap();
        let n = (&noisy - &y)
            .abs()
            .square()
            .reshape([2, -1])
            .mean_dim(1, false, Kind::Double);
        let p = y
            .abs()
            .square()
            .reshape([2, -1])
            .mean_dim(1, false, Kind::Double);
        for i in 0..2 {
            let snr = 10.0 * (p.double_value(&[i]) / n.double_value(&[i])).log10();
            // 3072 complex samples: the empirical noise power is within a few percent.
            assert!((snr - 20.0).abs() < 0.3, "snr {snr}");
            let s2 = p.double_value(&[i]) / 100.0;
            assert!((sigma[i as usize].powi(2) / s2 - 1.0).abs() < 1e-5); // f32 k-space
        }
        assert!(kspace_noise(&y, None, NoiseLevel::Sigma(-1.0), 0).is_err());
        assert!(kspace_noise(&y, None, NoiseLevel::SnrDb(f64::NAN), 0).is_err());
    }
}
