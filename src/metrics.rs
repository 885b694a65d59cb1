//! Image quality against a reference: PSNR, SSIM, NRMSE, optionally inside a region of interest,
//! plus the data-consistency residual. The convention is scikit-image's, stated in
//! docs/metrics.md and checked against it in tests/metrics.rs:
//!
//! - PSNR = `10 log10(data_range^2 / MSE)` (`peak_signal_noise_ratio`); `data_range` is always
//!   given by the caller.
//! - SSIM (Wang et al. 2004): Gaussian window `sigma = 1.5` truncated at 3.5 sigma (11 taps),
//!   `K1 = 0.01`, `K2 = 0.03`, population (co)variances, and the mean of the SSIM map over the
//!   pixels at least 5 from the border (`structural_similarity(gaussian_weights=True, sigma=1.5,
//!   use_sample_covariance=False, data_range=...)` crops `(win_size - 1) // 2`). The cropped map
//!   only needs the window inside the image, so no border padding is involved.
//! - NRMSE = `||x - ref|| / ||ref||` (`normalized_root_mse`, normalisation 'euclidean').
//! - In a region of interest: PSNR and NRMSE use only the ROI's pixels; SSIM is the mean of the
//!   (full-image, windowed) SSIM map over the ROI's pixels inside the cropped area.
//!
//! Images are `[B, 1, H, W]` or `[H, W]` real tensors on any device; results are per image.

use crate::ops::MeasurementOperator;
use anyhow::{bail, ensure, Result};
use tch::{Kind, Tensor};

/// Gaussian window of SSIM (Wang et al. 2004, as scikit-image).
pub const SSIM_SIGMA: f64 = 1.5;
/// scipy.ndimage's truncation: radius `int(3.5 * 1.5 + 0.5) = 5`, window 11.
pub const SSIM_TRUNCATE: f64 = 3.5;
pub const SSIM_K1: f64 = 0.01;
pub const SSIM_K2: f64 = 0.03;

/// Radius of the SSIM window, `int(truncate * sigma + 0.5)` as in scipy.ndimage.
pub fn ssim_radius() -> i64 {
    (SSIM_TRUNCATE * SSIM_SIGMA + 0.5) as i64
}

/// A region of interest: a 0/1 mask `[1 or B, 1, H, W]` of the pixels that count.
pub struct Roi {
    mask: Tensor,
}

impl Roi {
    /// From any 0/1 (or boolean) mask `[H, W]` or `[1 or B, 1, H, W]`.
    pub fn from_mask(mask: &Tensor) -> Result<Self> {
        Ok(Roi {
            mask: as_batch(mask, "ROI mask")?.gt(0.5),
        })
    }

    /// The centred disc of radius `radius_fraction * min(H, W) / 2` (CT's field of view with
    /// `radius_fraction = 1`). Pixel centres at `(i - (H - 1) / 2, j - (W - 1) / 2)`.
    pub fn circle(h: i64, w: i64, radius_fraction: f64) -> Result<Self> {
        ensure!(
            radius_fraction.is_finite() && radius_fraction > 0.0,
            "ROI circle radius fraction {radius_fraction}: must be > 0"
        );
        let r = radius_fraction * (h.min(w) as f64) / 2.0;
        let yy = Tensor::arange(h, (Kind::Double, tch::Device::Cpu)) - (h - 1) as f64 / 2.0;
        let xx = Tensor::arange(w, (Kind::Double, tch::Device::Cpu)) - (w - 1) as f64 / 2.0;
        let d2 = yy.square().reshape([h, 1]) + xx.square().reshape([1, w]);
        Ok(Roi {
            mask: d2.le(r * r).reshape([1, 1, h, w]),
        })
    }

    /// The body: pixels of the reference above `threshold` (e.g. -500 HU for CT, a small
    /// fraction of the maximum for MRI).
    pub fn body(reference: &Tensor, threshold: f64) -> Result<Self> {
        Ok(Roi {
            mask: as_batch(reference, "reference")?.gt(threshold),
        })
    }

    /// This region minus `region` (a 0/1 mask, e.g. the metal for MAR).
    pub fn exclude(self, region: &Tensor) -> Result<Self> {
        let r = as_batch(region, "excluded region")?
            .gt(0.5)
            .to_device(self.mask.device());
        Ok(Roi {
            mask: self.mask.logical_and(&r.logical_not()),
        })
    }

    pub fn mask(&self) -> &Tensor {
        &self.mask
    }

    fn weights(&self, like: &Tensor) -> Result<Tensor> {
        let (m, s) = (self.mask.size(), like.size());
        ensure!(
            m[2..] == s[2..] && (m[0] == 1 || m[0] == s[0]),
            "ROI mask of shape {m:?} does not fit images of shape {s:?}"
        );
        Ok(self
            .mask
            .to_device(like.device())
            .to_kind(Kind::Double)
            .expand_as(like))
    }
}

/// PSNR, SSIM and NRMSE of one image.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Scores {
    pub psnr: f64,
    pub ssim: f64,
    pub nrmse: f64,
}

/// All three metrics of each image of `x` against `reference`.
pub fn assess(
    x: &Tensor,
    reference: &Tensor,
    data_range: f64,
    roi: Option<&Roi>,
) -> Result<Vec<Scores>> {
    let p = psnr(x, reference, data_range, roi)?;
    let s = ssim(x, reference, data_range, roi)?;
    let n = nrmse(x, reference, roi)?;
    Ok((0..p.len())
        .map(|i| Scores {
            psnr: p[i],
            ssim: s[i],
            nrmse: n[i],
        })
        .collect())
}

/// Each image of the batch scored against its own data range (`data_ranges[i]` for image `i`,
/// e.g. from [`value_range_per_image`]): per-slice metrics of a multi-slice job, whose values
/// must not depend on which other slices ran with them. An ROI of one image applies to all.
pub fn assess_per_image(
    x: &Tensor,
    reference: &Tensor,
    data_ranges: &[f64],
    roi: Option<&Roi>,
) -> Result<Vec<Scores>> {
    let (x, r) = pair(x, reference)?;
    let b = x.size()[0];
    ensure!(
        data_ranges.len() as i64 == b,
        "{} data ranges for {b} images: give one per image",
        data_ranges.len()
    );
    let mut scores = Vec::with_capacity(b as usize);
    for (i, &range) in (0..b).zip(data_ranges) {
        let roi_i = roi.map(|roi| Roi {
            mask: if roi.mask.size()[0] == 1 {
                roi.mask.shallow_clone()
            } else {
                roi.mask.narrow(0, i, 1)
            },
        });
        scores.extend(assess(
            &x.narrow(0, i, 1),
            &r.narrow(0, i, 1),
            range,
            roi_i.as_ref(),
        )?);
    }
    Ok(scores)
}

/// `max - min` of each reference image of a `[B, 1, H, W]` batch (or of one `[H, W]` image),
/// over the pixels where `exclude` (a 0/1 mask of the same batch, e.g. MAR's metal) is 0 when
/// given: the per-slice data ranges of docs/metrics.md.
pub fn value_range_per_image(reference: &Tensor, exclude: Option<&Tensor>) -> Result<Vec<f64>> {
    let r = as_batch(reference, "reference")?;
    let exclude = exclude
        .map(|m| as_batch(m, "excluded region"))
        .transpose()?;
    let b = r.size()[0];
    if let Some(m) = &exclude {
        ensure!(
            m.size() == r.size(),
            "excluded region of shape {:?} does not fit references of shape {:?}",
            m.size(),
            r.size()
        );
    }
    Ok((0..b)
        .map(|i| {
            let ri = r.narrow(0, i, 1);
            match &exclude {
                Some(m) => value_range_outside(&ri, &m.narrow(0, i, 1).to_device(ri.device())),
                None => value_range(&ri),
            }
        })
        .collect())
}

/// `max - min` of the reference: the data range when none is prescribed (fastMRI uses the
/// maximum of the volume; CT reports usually fix a HU window). Over the whole tensor.
pub fn value_range(reference: &Tensor) -> f64 {
    let r = reference.to_kind(Kind::Double);
    r.max().double_value(&[]) - r.min().double_value(&[])
}

/// `max - min` of `reference` over the pixels where `exclude` is 0 (MAR: the metal is left out
/// of the data range as it is of the metrics; with it, the range would be set by the implant's
/// thousands of HU and every PSNR/SSIM would look excellent).
pub fn value_range_outside(reference: &Tensor, exclude: &Tensor) -> f64 {
    let keep = exclude.lt(0.5).expand_as(reference);
    let r = reference.to_kind(Kind::Double).masked_select(&keep);
    if r.numel() == 0 {
        return 0.0;
    }
    r.max().double_value(&[]) - r.min().double_value(&[])
}

/// `10 log10(data_range^2 / MSE)` per image (infinite when the images are equal).
pub fn psnr(
    x: &Tensor,
    reference: &Tensor,
    data_range: f64,
    roi: Option<&Roi>,
) -> Result<Vec<f64>> {
    check_range(data_range)?;
    let (x, r) = pair(x, reference)?;
    let mse = masked_mean(&(&x - &r).square(), roi)?;
    Ok(mse
        .iter()
        .map(|m| 10.0 * (data_range * data_range / m).log10())
        .collect())
}

/// `||x - ref|| / ||ref||` per image (skimage's 'euclidean' normalisation), inside the ROI if given.
pub fn nrmse(x: &Tensor, reference: &Tensor, roi: Option<&Roi>) -> Result<Vec<f64>> {
    let (x, r) = pair(x, reference)?;
    let err = masked_mean(&(&x - &r).square(), roi)?;
    let den = masked_mean(&r.square(), roi)?;
    Ok(err
        .iter()
        .zip(den.iter())
        .map(|(e, d)| (e / d).sqrt())
        .collect())
}

/// Mean SSIM per image (see the module docs for the convention and the ROI rule).
pub fn ssim(
    x: &Tensor,
    reference: &Tensor,
    data_range: f64,
    roi: Option<&Roi>,
) -> Result<Vec<f64>> {
    let map = ssim_map(x, reference, data_range)?;
    let r = ssim_radius();
    match roi {
        None => masked_mean(&map, None),
        Some(roi) => {
            let (h, w) = (map.size()[2], map.size()[3]);
            // The map covers pixels r..H-r, r..W-r: crop the ROI the same way.
            let m = roi.mask.narrow(2, r, h).narrow(3, r, w);
            let cropped = Roi { mask: m };
            masked_mean(&map, Some(&cropped))
        }
    }
}

/// The SSIM map over the cropped area `[B, 1, H - 2r, W - 2r]` (`r = 5`), in double precision:
/// the luminance-contrast-structure product of Wang et al. 2004, eq. (13), with Gaussian-weighted
/// local statistics.
pub fn ssim_map(x: &Tensor, reference: &Tensor, data_range: f64) -> Result<Tensor> {
    check_range(data_range)?;
    // skimage calls structural_similarity(im1, im2) with im1 = the reference; the formula is
    // symmetric, so the order does not matter.
    let (x, y) = pair(x, reference)?;
    let r = ssim_radius();
    let s = x.size();
    ensure!(
        s[2] > 2 * r && s[3] > 2 * r,
        "SSIM needs images of at least {0}x{0} pixels (its Gaussian window), got {1}x{2}",
        2 * r + 1,
        s[2],
        s[3]
    );
    let taps: Vec<f64> = (-r..=r)
        .map(|i| (-0.5 * (i * i) as f64 / (SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let total: f64 = taps.iter().sum();
    let g = Tensor::from_slice(&taps).to_device(x.device()) / total;
    let gy = g.reshape([1, 1, 2 * r + 1, 1]);
    let gx = g.reshape([1, 1, 1, 2 * r + 1]);
    // Separable 'valid' Gaussian filter: the output pixel (i, j) is the window centred on
    // input pixel (i + r, j + r), exactly the pixels skimage keeps after its crop.
    let filter = |t: &Tensor| {
        t.conv2d(&gy, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
            .conv2d(&gx, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
    };
    let (ux, uy) = (filter(&x), filter(&y));
    let vx = filter(&(&x * &x)) - &ux * &ux;
    let vy = filter(&(&y * &y)) - &uy * &uy;
    let vxy = filter(&(&x * &y)) - &ux * &uy;
    let c1 = (SSIM_K1 * data_range).powi(2);
    let c2 = (SSIM_K2 * data_range).powi(2);
    let num = (&ux * &uy * 2.0 + c1) * (vxy * 2.0 + c2);
    let den = (ux.square() + uy.square() + c1) * (vx + vy + c2);
    Ok(num / den)
}

/// `|A x - y| / |y|` per image: the data-consistency residual reported for every reconstruction,
/// with or without a reference (the operator's own definition, [`MeasurementOperator::residual`]).
pub fn data_consistency(op: &MeasurementOperator, x: &Tensor, y: &Tensor) -> Vec<f64> {
    op.residual(x, y)
}

fn check_range(data_range: f64) -> Result<()> {
    ensure!(
        data_range.is_finite() && data_range > 0.0,
        "data range {data_range}: must be a finite number > 0 (e.g. the reference's max - min)"
    );
    Ok(())
}

/// `[H, W]` or `[B, 1, H, W]` -> `[B, 1, H, W]` double, refusing complex and non-finite values.
fn as_batch(t: &Tensor, what: &str) -> Result<Tensor> {
    if t.is_complex() {
        bail!("{what} is complex: metrics compare real images (pass the magnitude or real part)");
    }
    let s = t.size();
    let t = match s.len() {
        2 => t.reshape([1, 1, s[0], s[1]]),
        4 if s[1] == 1 => t.shallow_clone(),
        _ => bail!("{what} has shape {s:?}: expected [H, W] or [B, 1, H, W]"),
    };
    Ok(t.to_kind(Kind::Double))
}

fn pair(x: &Tensor, reference: &Tensor) -> Result<(Tensor, Tensor)> {
    let x = as_batch(x, "image")?;
    let r = as_batch(reference, "reference")?.to_device(x.device());
    ensure!(
        x.size() == r.size(),
        "image of shape {:?} and reference of shape {:?} differ",
        x.size(),
        r.size()
    );
    for (t, what) in [(&x, "image"), (&r, "reference")] {
        let bad = t.isfinite().logical_not().any().int64_value(&[]);
        ensure!(bad == 0, "the {what} contains NaN or infinite values");
    }
    Ok((x, r))
}

/// Mean of `v` (`[B, 1, H, W]`) over each image, or over the ROI's pixels of each image.
fn masked_mean(v: &Tensor, roi: Option<&Roi>) -> Result<Vec<f64>> {
    let b = v.size()[0];
    let (sum, count) = match roi {
        None => (
            v.reshape([b, -1]).sum_dim_intlist(1, false, Kind::Double),
            Tensor::full(
                [b],
                v.size()[1..].iter().product::<i64>() as f64,
                (Kind::Double, v.device()),
            ),
        ),
        Some(roi) => {
            let w = roi.weights(v)?;
            (
                (v * &w)
                    .reshape([b, -1])
                    .sum_dim_intlist(1, false, Kind::Double),
                w.reshape([b, -1]).sum_dim_intlist(1, false, Kind::Double),
            )
        }
    };
    let sum = Vec::<f64>::try_from(sum)?;
    let count = Vec::<f64>::try_from(count)?;
    ensure!(
        count.iter().all(|c| *c > 0.0),
        "the region of interest is empty (for SSIM: inside the 5-pixel border)"
    );
    Ok(sum.iter().zip(count.iter()).map(|(s, c)| s / c).collect())
}
