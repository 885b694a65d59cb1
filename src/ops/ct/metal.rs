//! Metal traces for metal artifact removal: segment metal by an HU threshold, dilate it a
//! little, forward-project the mask; the sinogram bins it reaches are the metal trace and
//! `Lambda = 1 - trace` keeps every other bin (method.md, "Measurement model").

use super::radon::Radon;
use anyhow::{ensure, Result};

/// HU above which a voxel is taken for metal. Titanium is about +7000 HU at 70 keV, steel more;
/// dense cortical bone stays below +2000.
pub const DEFAULT_METAL_THRESHOLD_HU: f64 = 3000.0;
/// Dilation radius in pixels (a 3x3 square): the trace then also covers the partial-volume rim
/// of the metal, which carries the same corrupted rays.
pub const DEFAULT_DILATION: usize = 1;

/// 0/1 metal mask of an `n x n` HU image: voxels above `threshold_hu`, dilated by a square of
/// radius `dilation`.
pub fn segment_metal(hu: &[f32], n: usize, threshold_hu: f64, dilation: usize) -> Result<Vec<f32>> {
    ensure!(
        hu.len() == n * n,
        "metal segmentation: image of {} voxels is not {n}x{n}",
        hu.len()
    );
    ensure!(
        threshold_hu.is_finite(),
        "--metal-threshold {threshold_hu}: not a number"
    );
    Ok(dilate(&threshold_mask(hu, threshold_hu), n, dilation))
}

/// 0/1 mask of the voxels above `threshold_hu`: the one definition of "metal" in an image.
pub fn threshold_mask(hu: &[f32], threshold_hu: f64) -> Vec<f32> {
    hu.iter()
        .map(|&v| {
            if f64::from(v) > threshold_hu {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// Binary dilation with a `(2r+1) x (2r+1)` square, separable (rows then columns).
pub fn dilate(mask: &[f32], n: usize, r: usize) -> Vec<f32> {
    if r == 0 {
        return mask.to_vec();
    }
    let pass = |src: &[f32], along_rows: bool| {
        let mut out = vec![0f32; n * n];
        for j in 0..n {
            for i in 0..n {
                let (lo, hi) = if along_rows {
                    (i.saturating_sub(r), (i + r).min(n - 1))
                } else {
                    (j.saturating_sub(r), (j + r).min(n - 1))
                };
                let hit = (lo..=hi).any(|t| {
                    if along_rows {
                        src[j * n + t] > 0.0
                    } else {
                        src[t * n + i] > 0.0
                    }
                });
                out[j * n + i] = if hit { 1.0 } else { 0.0 };
            }
        }
        out
    };
    pass(&pass(mask, true), false)
}

/// 0/1 metal trace over the sinogram of `radon` (`n_angles x n_det`): bins whose ray meets the
/// mask with a nonzero weight.
pub fn metal_trace(radon: &Radon, metal_mask: &[f32]) -> Vec<f32> {
    radon
        .project(metal_mask, 1)
        .into_iter()
        .map(|p| if p > 0.0 { 1.0 } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dilation_grows_a_point_to_a_square() {
        let n = 7;
        let mut m = vec![0f32; n * n];
        m[3 * n + 3] = 1.0;
        let d = dilate(&m, n, 1);
        assert_eq!(d.iter().sum::<f32>(), 9.0);
        assert_eq!(d[2 * n + 2], 1.0);
        assert_eq!(d[4 * n + 4], 1.0);
        assert_eq!(d[n + 3], 0.0);
    }
}
