//! Coil sensitivities from the auto-calibration (ACS) region of centred k-space: ESPIRiT
//! (Uecker et al., "ESPIRiT - an eigenvalue approach to autocalibrating parallel MRI: where
//! SENSE meets GRAPPA", MRM 71:990-1001, 2014), a low-resolution fallback, and the smooth image
//! phase that [`super::sense::Sense::with_phase`] folds into the maps. Options and defaults are
//! BART's `ecalib` (0.8.00); docs/operators-mri.md, "ESPIRiT", walks through the algorithm.
//!
//! k-space is one slice, `[C, H, W]` complex, centred as [`super::fft::centred_fft2`] makes it
//! (DC at `(H / 2, W / 2)`); maps come back `[C, H, W]` complex64.

use super::fft::centred_ifft2;
use anyhow::{ensure, Result};
use tch::{Kind, Tensor};

/// Where the per-pixel eigenvectors take their phase from (an eigenvector is defined up to a
/// unit complex factor, and SENSE is unchanged by a phase common to all coils).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseReference {
    /// BART's default: the phase of the projection on the first principal component of the
    /// calibration data (the first virtual coil of SVD coil compression), so that no single
    /// coil's drop-out far from it drives the reference. The component's own phase is fixed as
    /// LAPACK leaves it (last entry real), which reproduces BART's maps exactly.
    PrincipalComponent,
    /// The phase of the first coil (BART `ecalib -P`, sigpy's `EspiritCalib`).
    FirstCoil,
}

/// Settings of [`espirit`], BART `ecalib`'s defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EspiritOptions {
    /// The largest ACS side (`ecalib -r`, 24): the region used is the fully sampled run through
    /// the centre along each axis, at most this long.
    pub calib: usize,
    /// The side of the k-space kernel (`ecalib -k`, 6).
    pub kernel: usize,
    /// Kernels kept from the calibration matrix (`ecalib -t`, 0.001): those whose singular
    /// value exceeds `sqrt(threshold)` times the largest, BART's rule (an energy threshold).
    pub threshold: f64,
    /// Maps are zeroed where the top eigenvalue is at most this (`ecalib -c`, 0.8): outside
    /// the object no coil sees signal and the eigenvalue falls away from 1.
    pub crop: f64,
    pub phase_reference: PhaseReference,
}

impl Default for EspiritOptions {
    fn default() -> Self {
        EspiritOptions {
            calib: 24,
            kernel: 6,
            threshold: 0.001,
            crop: 0.8,
            phase_reference: PhaseReference::PrincipalComponent,
        }
    }
}

/// ESPIRiT's estimate.
pub struct Espirit {
    /// `[C, H, W]` complex64, unit norm over the coils where `eigenvalues > crop`, 0 elsewhere.
    pub maps: Tensor,
    /// The top eigenvalue per pixel, `[H, W]` f32 (about 1 inside the object).
    pub eigenvalues: Tensor,
    /// The ACS region used, `[rows, columns]`.
    pub calib: [usize; 2],
    /// Kernels kept of `kernel^2 C`.
    pub kernels: usize,
}

/// The width of the contiguous fully sampled centre of a 1-D column mask: the run of sampled
/// columns through the DC column `W / 2` (0 when it is not sampled).
pub fn calibration_width(mask_cols: &[bool]) -> usize {
    let centre = mask_cols.len() / 2;
    if mask_cols.get(centre) != Some(&true) {
        return 0;
    }
    let right = mask_cols[centre..].iter().take_while(|&&m| m).count();
    let left = mask_cols[..centre].iter().rev().take_while(|&&m| m).count();
    left + right
}

fn check_kspace(kspace: &Tensor) -> Result<(i64, i64, i64)> {
    let s = kspace.size();
    ensure!(
        s.len() == 3 && s.iter().all(|&n| n >= 1),
        "multi-coil k-space of shape {s:?}: expected one slice [C, H, W]"
    );
    ensure!(
        kspace.is_complex(),
        "multi-coil k-space of kind {:?}: expected complex",
        kspace.kind()
    );
    Ok((s[0], s[1], s[2]))
}

/// The ACS block of side at most `calib` along each axis, limited to the fully sampled (nonzero
/// in some coil) run through the centre, as BART's `ecalib` finds it; `[C, rows, cols]` and its
/// offsets.
fn calibration_region(kspace: &Tensor, calib: usize) -> Result<(Tensor, [i64; 2])> {
    let (_, h, w) = check_kspace(kspace)?;
    let sampled = kspace.abs().sum_dim_intlist(0, false, Kind::Double).gt(0.0);
    let run = |line: Tensor| {
        let line = Vec::<bool>::try_from(line.contiguous()).unwrap_or_default();
        calibration_width(&line).min(calib) as i64
    };
    let cols = run(sampled.select(0, h / 2));
    let rows = run(sampled.select(1, w / 2));
    ensure!(
        rows >= 1 && cols >= 1,
        "the k-space centre (row {}, column {}) is not sampled: no calibration region",
        h / 2,
        w / 2
    );
    let (r0, c0) = (h / 2 - rows / 2, w / 2 - cols / 2);
    Ok((kspace.narrow(1, r0, rows).narrow(2, c0, cols), [r0, c0]))
}

/// ESPIRiT maps (one set, BART `ecalib -m1`) of one slice of centred k-space `[C, H, W]`.
///
/// 1. The calibration matrix: every `k x k` patch of the ACS region over all coils is a row
///    (`C k^2` columns). Its row space holds the patches of any image the coils could see.
/// 2. Its singular vectors with `s_i > sqrt(threshold) s_max` (BART's rule) span that space;
///    they are the eigenvectors of the patches' covariance `sum_r p_r p_r^H`
///    (`linalg_eigh`, as BART computes them), `s_i^2` its eigenvalues.
/// 3. In image space the projection onto that span is, at each pixel `x`, the `C x C` matrix
///    `W(x) = 1/k^2 sum_n g_n(x) g_n(x)^H`, `g_n` the (unnormalised) inverse DFT of kernel `n`
///    zero-padded to `H x W`. True sensitivities are its eigenvector with eigenvalue 1.
/// 4. The top eigenvector of every `W(x)` (batched `linalg_eigh`), its phase taken relative to
///    `phase_reference`, zeroed where the eigenvalue is at most `crop`.
pub fn espirit(kspace: &Tensor, opts: &EspiritOptions) -> Result<Espirit> {
    let (c, h, w) = check_kspace(kspace)?;
    let k = opts.kernel as i64;
    ensure!(k >= 1, "ESPIRiT kernel size 0");
    ensure!(
        opts.threshold.is_finite() && (0.0..1.0).contains(&opts.threshold),
        "ESPIRiT threshold {}: must be in [0, 1)",
        opts.threshold
    );
    ensure!(
        opts.crop.is_finite() && opts.crop < 1.0,
        "ESPIRiT crop {}: must be below 1 (the eigenvalue inside the object)",
        opts.crop
    );
    let (acs, _) = calibration_region(kspace, opts.calib)?;
    // The calibration matrix's eigendecomposition in double precision: its small singular
    // values decide which kernels are kept.
    let acs = acs.to_kind(Kind::ComplexDouble);
    let (rows, cols) = (acs.size()[1], acs.size()[2]);
    ensure!(
        rows >= k && cols >= k,
        "ESPIRiT: the calibration region {rows}x{cols} is smaller than the {k}x{k} kernel; \
         sample a larger fully sampled centre or use a smaller kernel"
    );

    // 1-2. Patches [R, C k k] in (coil, row, column) order, and the span of their rows.
    let patches = acs
        .unfold(1, k, 1)
        .unfold(2, k, 1)
        .permute([1, 2, 0, 3, 4])
        .reshape([-1, c * k * k]);
    let covariance = patches.transpose(0, 1).matmul(&patches.conj());
    let (energy, vectors) = covariance.linalg_eigh("L");
    let energy = Vec::<f64>::try_from(energy.flip([0]).clamp_min(0.0)).unwrap_or_default();
    let singular: Vec<f64> = energy.iter().map(|e| e.sqrt()).collect();
    let top = singular.first().copied().unwrap_or(0.0);
    ensure!(top > 0.0, "ESPIRiT: the calibration region holds no signal");
    let kept = singular
        .iter()
        .filter(|&&s| s / top > opts.threshold.sqrt())
        .count() as i64;
    // Columns in descending order; kernel n is a [C, k, k] patch.
    let kernels = vectors
        .flip([1])
        .narrow(1, 0, kept)
        .transpose(0, 1)
        .reshape([kept, c, k, k])
        .to_kind(Kind::ComplexFloat);

    // 3. W(x) = 1/k^2 sum_n g_n g_n^H, accumulated over chunks of kernels to bound memory at
    // 16 C H W. Where the kernel sits in the padded grid only multiplies every g_n by one
    // phase per pixel, which cancels in g g^H.
    let device = acs.device();
    let mut gram = Tensor::zeros([h * w, c, c], (Kind::ComplexFloat, device));
    let (r0, c0) = (h / 2 - k / 2, w / 2 - k / 2);
    let dft_scale = ((h * w) as f64).sqrt();
    for start in (0..kept).step_by(16) {
        let n = (kept - start).min(16);
        let padded = Tensor::zeros([n, c, h, w], (Kind::ComplexFloat, device));
        padded
            .narrow(2, r0, k)
            .narrow(3, c0, k)
            .copy_(&kernels.narrow(0, start, n));
        let g = (centred_ifft2(&padded) * dft_scale)
            .reshape([n, c, h * w])
            .permute([2, 1, 0]);
        gram += g.matmul(&g.conj().transpose(1, 2));
    }
    gram /= (k * k) as f64;

    // 4. The top eigenvector per pixel.
    let (values, vectors) = gram.linalg_eigh("L");
    let eigenvalues = values.select(1, c - 1).reshape([h, w]);
    let maps = vectors.select(2, c - 1).transpose(0, 1).reshape([c, h, w]);
    let reference = match opts.phase_reference {
        PhaseReference::FirstCoil => maps.select(0, 0),
        PhaseReference::PrincipalComponent => {
            // The first principal component of the coils over the ACS: the top eigenvector
            // of their covariance sum_k y(k) y(k)^H.
            let y = acs.reshape([c, -1]).to_kind(Kind::ComplexFloat);
            let (_, coils) = y.matmul(&y.conj().transpose(0, 1)).linalg_eigh("L");
            let principal = coils.select(1, c - 1);
            // An eigenvector's own phase is arbitrary; BART's (LAPACK's) has a real last
            // entry, and with it our maps agree with BART's phase included (to 5%,
            // tests/ops_sense.rs); with any other choice they differ by a constant phase.
            let principal = &principal * unit_phase(&principal.select(0, c - 1)).conj();
            (principal.conj().reshape([c, 1, 1]) * &maps).sum_dim_intlist(0, false, None::<Kind>)
        }
    };
    let inside = eigenvalues.gt(opts.crop).to_kind(Kind::Float);
    Ok(Espirit {
        maps: (maps * unit_phase(&reference).conj() * inside).contiguous(),
        eigenvalues: eigenvalues.to_kind(Kind::Float),
        calib: [rows as usize, cols as usize],
        kernels: kept as usize,
    })
}

/// `e^{i arg z}` (1 where `z = 0`).
fn unit_phase(z: &Tensor) -> Tensor {
    Tensor::polar(&z.abs().ones_like(), &z.angle())
}

/// Coil images of the ACS region (at most `calib` square, as [`espirit`] finds it) under a
/// separable Hann window, zero-padded to `H x W`: `[C, H, W]` complex, low resolution, without
/// the ringing a hard-edged ACS block gives.
fn lowres_coil_images(kspace: &Tensor, calib: usize) -> Result<Tensor> {
    let (c, h, w) = check_kspace(kspace)?;
    let (acs, [r0, c0]) = calibration_region(&kspace.to_kind(Kind::ComplexFloat), calib)?;
    let (rows, cols) = (acs.size()[1], acs.size()[2]);
    // sin^2(pi (j + 1) / (n + 1)): a Hann window whose ends are not zero, so a short ACS
    // keeps all its lines.
    let hann = |n: i64| {
        let j = Tensor::arange(n, (Kind::Float, kspace.device())) + 1.0;
        (j * (std::f64::consts::PI / (n + 1) as f64)).sin().square()
    };
    let window = hann(rows).reshape([1, rows, 1]) * hann(cols).reshape([1, 1, cols]);
    let padded = Tensor::zeros([c, h, w], (Kind::ComplexFloat, kspace.device()));
    padded
        .narrow(1, r0, rows)
        .narrow(2, c0, cols)
        .copy_(&(acs * window));
    Ok(centred_ifft2(&padded))
}

/// The fallback estimate: low-resolution coil images (Hann-windowed ACS of side at most
/// `calib`) divided by their root sum of squares, `[C, H, W]` complex64, 0 where the RSS is
/// below 1e-6 of its maximum. Phase relative to the body of the image, not to a coil: unlike
/// ESPIRiT's, these maps carry the image's own low-resolution phase.
pub fn lowres_maps(kspace: &Tensor, calib: usize) -> Result<Tensor> {
    let images = lowres_coil_images(kspace, calib)?;
    let rss = images
        .abs()
        .square()
        .sum_dim_intlist(0, true, None::<Kind>)
        .sqrt();
    let max = f64::try_from(rss.max()).unwrap_or(0.0);
    ensure!(
        max > 0.0,
        "low-resolution maps: the ACS region holds no signal"
    );
    let inverse = rss
        .reciprocal()
        .where_self(&rss.gt(1e-6 * max), &rss.zeros_like());
    Ok(images * inverse)
}

/// A smooth estimate of the image phase for [`super::sense::Sense::with_phase`]: the phase of
/// the coil-combined low-resolution image `sum_c conj(S_c) I_c` (`I_c` the Hann-windowed ACS
/// coil images of side at most `calib`), `[1, 1, H, W]` f32 radians. Relative to the maps'
/// own phase reference, which is what folding it into those maps needs.
pub fn calibration_phase(kspace: &Tensor, maps: &Tensor, calib: usize) -> Result<Tensor> {
    let (c, h, w) = check_kspace(kspace)?;
    ensure!(
        maps.size() == [c, h, w],
        "coil sensitivities of shape {:?} for k-space {:?}: expected [C, H, W] alike",
        maps.size(),
        [c, h, w]
    );
    let images = lowres_coil_images(kspace, calib)?;
    let combined =
        (maps.to_kind(Kind::ComplexFloat).conj() * images).sum_dim_intlist(0, false, None::<Kind>);
    Ok(combined.angle().to_kind(Kind::Float).reshape([1, 1, h, w]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_width_counts_the_run_through_the_centre() {
        let mask = |s: &str| s.chars().map(|ch| ch == '1').collect::<Vec<_>>();
        // W = 10, centre column 5.
        assert_eq!(calibration_width(&mask("1000111000")), 3);
        assert_eq!(calibration_width(&mask("1001111100")), 5);
        assert_eq!(calibration_width(&mask("0000110000")), 2);
        assert_eq!(calibration_width(&mask("1111101111")), 0);
        assert_eq!(calibration_width(&mask("1111111111")), 10);
        assert_eq!(calibration_width(&[]), 0);
    }
}
