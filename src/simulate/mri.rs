//! What a Cartesian MRI scanner would measure from a real image: the centred orthonormal FFT `T`
//! on the grid of the image, the mask `Lambda`, and circularly-symmetric complex Gaussian noise
//! at a stated SNR; with a coil array ([`measure_multicoil`]), the image's smooth phase, the
//! coils' sensitivities and their correlated noise first (`simulate::coils`). The
//! `simulate --task mri` command and the pipeline (an MR image given to `scorerecon mri`) both
//! measure through [`measure_kspace`] and [`measure_multicoil`].

use crate::ops::mri::masks::MaskSpec;
use crate::ops::mri::MriFft;
use crate::ops::rng::standard_normal;
use crate::ops::MeasurementOperator;
use anyhow::{bail, ensure, Result};
use tch::{Kind, Tensor};

/// What to measure: the mask (kind, acceleration, centre fraction, its seed) and the noise.
#[derive(Debug, Clone)]
pub struct MriSimulationSpec {
    pub mask: MaskSpec,
    /// Complex Gaussian k-space noise as SNR in dB over the measured entries; None: noise-free.
    pub snr_db: Option<f64>,
    /// Seed of the noise.
    pub seed: u64,
}

/// The operator `A = P(Lambda) T` on the `H x W` grid of `x` (`[B, 1, H, W]`, real), the
/// measurement `y = A x (+ noise)`, zero-filled, on `x`'s device, and the noise's standard
/// deviation per complex entry in `x`'s units (the root mean square over the batch; 0 when
/// noise-free).
pub fn measure_kspace(
    spec: &MriSimulationSpec,
    x: &Tensor,
) -> Result<(MeasurementOperator, Tensor, f64)> {
    let size = x.size();
    ensure!(
        size.len() == 4,
        "MRI simulation: expected [B, 1, H, W] images, got shape {size:?}"
    );
    let (h, w) = (size[2], size[3]);
    let mask = spec.mask.build(h, w)?;
    let op = MeasurementOperator::new(Box::new(MriFft::real(h, w)?), mask).to_device(x.device());
    let mut y = op.forward(x);
    let mut sigma = 0.0;
    if let Some(snr_db) = spec.snr_db {
        let (noisy, sigmas) =
            kspace_noise(&y, Some(&op.mask), NoiseLevel::SnrDb(snr_db), spec.seed)?;
        y = noisy;
        sigma = (sigmas.iter().map(|s| s * s).sum::<f64>() / sigmas.len().max(1) as f64).sqrt();
    }
    Ok((op, y, sigma))
}

/// What a coil array measured from real images: the k-space of every coil, zero-filled, and
/// what made it (for tests and the `simulate` command's record; the reconstruction estimates its
/// own maps and phase from the calibration region).
pub struct MultiCoilMeasurement {
    /// `[B, C, H, W]` complex64, zero where the mask is.
    pub kspace: Tensor,
    /// `[1, 1, H, W]` 0/1, shared by the coils.
    pub mask: Tensor,
    /// The noise's standard deviation per complex entry, on average over the coils (0: none).
    pub sigma: f64,
    /// The true sensitivities `[1, C, H, W]` and image phase `[1, 1, H, W]` (radians).
    pub maps: Tensor,
    pub phase: Tensor,
}

/// The `coils`-channel measurement of real images `x` (`[B, 1, H, W]`, the magnitude): `x`
/// times a smooth phase, times each coil's sensitivity, through the centred orthonormal FFT,
/// under the mask, plus noise correlated across the coils at `spec.snr_db` over the measured
/// entries of all coils (docs/operators-mri.md, "Multi-coil simulation").
pub fn measure_multicoil(
    spec: &MriSimulationSpec,
    coils: usize,
    x: &Tensor,
) -> Result<MultiCoilMeasurement> {
    let size = x.size();
    ensure!(
        size.len() == 4 && size[1] == 1,
        "MRI simulation: expected [B, 1, H, W] images, got shape {size:?}"
    );
    let (b, h, w) = (size[0], size[2], size[3]);
    let device = x.device();
    let mask = spec
        .mask
        .build(h, w)?
        .to_kind(Kind::Float)
        .reshape([1, 1, h, w])
        .to_device(device);
    let maps = super::coils::coil_maps(coils, h, w, device)?;
    let phase = super::coils::image_phase(h, w, spec.seed, device);
    let image = Tensor::polar(&x.to_kind(Kind::Float), &phase.expand_as(x)) * &maps;
    let kspace = crate::ops::mri::fft::centred_fft2(&image) * &mask;
    let mut sigma = 0.0;
    let kspace = match spec.snr_db {
        None => kspace,
        Some(snr) => {
            ensure!(
                snr.is_finite(),
                "k-space SNR {snr} dB: must be a finite number of decibels"
            );
            let measured = f64::try_from(mask.sum(Kind::Double))? * (b * coils as i64) as f64;
            ensure!(measured > 0.0, "k-space noise: the mask measures nothing");
            let power = f64::try_from(kspace.abs().square().sum(Kind::Double))? / measured;
            ensure!(
                power > 0.0,
                "k-space SNR {snr} dB: the images have zero signal on the mask"
            );
            sigma = (power / 10f64.powf(snr / 10.0)).sqrt();
            let noise = super::coils::coil_noise([b, coils as i64, h, w], sigma, spec.seed, device);
            (kspace + noise) * &mask
        }
    };
    Ok(MultiCoilMeasurement {
        kspace,
        mask,
        sigma,
        maps,
        phase,
    })
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
    use crate::ops::mri::MriFft;
    use crate::ops::rng::standard_normal;
    use crate::ops::Transform;
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
