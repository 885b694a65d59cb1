//! Multi-coil MRI: the SENSE transform `T x = (F S_c x)_c` over `C` receive coils
//! (Pruessmann et al. 1999), `F` the centred orthonormal 2-D FFT of [`super::fft`] and `S_c` the
//! coil sensitivities (estimated by [`super::espirit`]). Images are `[B, 1, H, W]`, k-space is
//! `[B, C, H, W]`; the mask `Lambda` (`[1, 1, H, W]`) is shared by the coils, as in a Cartesian
//! acquisition, where every coil receives the same phase-encoding lines.
//!
//! **Image domain.** [`ImageDomain::Complex`] is plain SENSE: `T^T y = sum_c conj(S_c) F^H y_c`.
//! [`ImageDomain::Real`] keeps the image real, as the magnitude-trained priors need, and then
//! the adjoint is the real part of that sum (exact under `Re <.,.>`, as for the single-coil FFT).
//! Real data of a real object do not exist in MRI: the image has a phase `phi` (B0, coil and
//! receiver phases). [`Sense::with_phase`] folds a known smooth estimate of it into the maps,
//! `S_c e^{i phi}`, so that the real unknown `x` is the magnitude-like image and the measured
//! image is `x e^{i phi}` (docs/operators-mri.md, "Multi-coil").

use super::fft::{centred_fft2, centred_ifft2, ImageDomain};
use crate::ops::Transform;
use anyhow::{ensure, Result};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

/// `sum_c |S_c|^2` below this (relative to its maximum) is outside the maps' support: the
/// coil-combined inverse is 0 there rather than a division by ~0 (ESPIRiT crops its maps to 0
/// outside the object).
const SUPPORT_EPS: f64 = 1e-6;

/// The maps and `1 / sum_c |S_c|^2` (0 off the support) on one device.
struct Maps {
    maps: Tensor,
    inverse_norm: Tensor,
}

impl Maps {
    fn to_device(&self, device: Device) -> Maps {
        Maps {
            maps: self.maps.to_device(device),
            inverse_norm: self.inverse_norm.to_device(device),
        }
    }
}

/// The SENSE transform over `C` coils of an `H x W` image.
pub struct Sense {
    /// Behind a lock because tensors are not `Sync` (`Transform` is): a call takes shallow
    /// clones and lets go. Moved to the device of the first input that lives elsewhere.
    maps: Mutex<Maps>,
    domain: ImageDomain,
    c: i64,
    h: i64,
    w: i64,
}

impl Sense {
    /// SENSE with the coil sensitivities `maps`, `[C, H, W]` or `[B, C, H, W]` complex (B = 1
    /// is shared by every image of a batch), and images in `domain`.
    pub fn new(maps: Tensor, domain: ImageDomain) -> Result<Self> {
        let maps = if maps.dim() == 3 {
            maps.unsqueeze(0)
        } else {
            maps
        };
        let s = maps.size();
        ensure!(
            s.len() == 4 && s.iter().all(|&n| n >= 1),
            "coil sensitivities of shape {s:?}: expected [C, H, W] or [B, C, H, W]"
        );
        ensure!(
            matches!(maps.kind(), Kind::ComplexFloat | Kind::ComplexDouble),
            "coil sensitivities of kind {:?}: expected complex64 (or complex128)",
            maps.kind()
        );
        let norm = maps.abs().square().sum_dim_intlist(1, true, None::<Kind>);
        let max = f64::try_from(norm.max().to_kind(Kind::Double)).unwrap_or(0.0);
        ensure!(
            max.is_finite() && max > 0.0,
            "coil sensitivities are zero (or not finite) everywhere"
        );
        let support = norm.gt(SUPPORT_EPS * max);
        let inverse_norm = norm
            .reciprocal()
            .where_self(&support, &norm.zeros_like())
            .contiguous();
        Ok(Sense {
            maps: Mutex::new(Maps {
                maps: maps.contiguous(),
                inverse_norm,
            }),
            domain,
            c: s[1],
            h: s[2],
            w: s[3],
        })
    }

    /// SENSE on real images with a known image phase `phase` (radians, `[B, 1, H, W]` or
    /// `[1, 1, H, W]`) folded into the maps: `T x = F (S_c e^{i phase} x)`. The way a
    /// magnitude-trained prior reconstructs complex multi-coil data: `x` is real and the image
    /// that was measured is `x e^{i phase}`.
    pub fn with_phase(maps: Tensor, phase: &Tensor) -> Result<Self> {
        let maps = if maps.dim() == 3 {
            maps.unsqueeze(0)
        } else {
            maps
        };
        let (ms, ps) = (maps.size(), phase.size());
        ensure!(
            ps.len() == 4 && ps[1] == 1 && ms.len() == 4 && ps[2..] == ms[2..],
            "image phase of shape {ps:?} for coil sensitivities {ms:?}: expected [B, 1, H, W] \
             with the maps' H x W"
        );
        ensure!(
            ps[0] == ms[0] || ps[0] == 1 || ms[0] == 1,
            "image phase for {} images with coil sensitivities for {}: give one of them for \
             every image, or one for all",
            ps[0],
            ms[0]
        );
        ensure!(
            !phase.is_complex(),
            "the image phase is an angle in radians (real), not a complex tensor"
        );
        let rotation = Tensor::polar(
            &phase.ones_like().to_kind(Kind::Float),
            &phase.to_kind(Kind::Float),
        )
        .to_device(maps.device());
        Self::new(&maps * rotation, ImageDomain::Real)
    }

    pub fn domain(&self) -> ImageDomain {
        self.domain
    }

    /// The maps (with any folded phase) and `1 / sum_c |S_c|^2` on `device`.
    fn maps_on(&self, device: Device) -> (Tensor, Tensor) {
        let mut m = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        if m.maps.device() != device {
            *m = m.to_device(device);
        }
        (m.maps.shallow_clone(), m.inverse_norm.shallow_clone())
    }

    /// The coil maps (with any folded phase), `[B or 1, C, H, W]`.
    pub fn maps(&self) -> Tensor {
        self.maps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .maps
            .shallow_clone()
    }

    /// `sum_c conj(S_c) F^H y_c`, complex `[B, 1, H, W]`.
    fn coil_combine(maps: &Tensor, y: &Tensor) -> Tensor {
        (maps.conj() * centred_ifft2(y)).sum_dim_intlist(1, true, None::<Kind>)
    }

    fn to_domain(&self, x: Tensor) -> Tensor {
        match self.domain {
            ImageDomain::Real => x.real().contiguous(),
            ImageDomain::Complex => x,
        }
    }
}

impl Transform for Sense {
    /// `(F S_c x)_c`: `[B, 1, H, W]` -> `[B, C, H, W]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        let (maps, _) = self.maps_on(x.device());
        centred_fft2(&(maps * x))
    }
    /// `sum_c conj(S_c) F^H y_c` (its real part for real images).
    fn adjoint(&self, y: &Tensor) -> Tensor {
        let (maps, _) = self.maps_on(y.device());
        self.to_domain(Self::coil_combine(&maps, y))
    }
    /// The coil-combined inverse `sum_c conj(S_c) F^H y_c / sum_c |S_c|^2` (0 where the maps
    /// vanish): the exact left inverse on the maps' support, the least-squares solution of
    /// `T x = y` pixel by pixel. For maps normalised to `sum_c |S_c|^2 = 1` (ESPIRiT's) it is
    /// the adjoint.
    fn inverse(&self, y: &Tensor) -> Tensor {
        let (maps, inverse_norm) = self.maps_on(y.device());
        self.to_domain(Self::coil_combine(&maps, y) * inverse_norm)
    }
    fn image_shape(&self) -> [i64; 2] {
        [self.h, self.w]
    }
    fn measurement_shape(&self) -> [i64; 2] {
        [self.h, self.w]
    }
    fn channels(&self) -> i64 {
        self.c
    }
    fn describe(&self) -> String {
        let d = match self.domain {
            ImageDomain::Real => "real",
            ImageDomain::Complex => "complex",
        };
        format!(
            "SENSE over {} coils, centred orthonormal 2-D FFT {}x{} ({d} images)",
            self.c, self.h, self.w
        )
    }
}
