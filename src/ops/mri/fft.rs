//! Single-coil MRI: `T` = the centred, orthonormal 2-D FFT (method.md, "Measurement model"),
//! `fftshift(fft2(ifftshift(x), norm="ortho"))` over the last two axes. Masks live in
//! [`super::masks`]; k-space noise is simulation physics (`crate::simulate::mri`).
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

use crate::ops::Transform;
use anyhow::{ensure, Result};
use tch::Tensor;

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

/// `F^H y = fftshift(ifft2(ifftshift(y), norm="ortho"))` over the last two axes, always complex.
pub fn centred_ifft2(y: &Tensor) -> Tensor {
    y.fft_ifftshift(AXES.as_slice())
        .fft_ifft2(None::<&[i64]>, AXES, "ortho")
        .fft_fftshift(AXES.as_slice())
}

impl Transform for MriFft {
    fn forward(&self, x: &Tensor) -> Tensor {
        centred_fft2(x)
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        self.to_domain(centred_ifft2(y))
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
