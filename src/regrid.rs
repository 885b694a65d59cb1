//! Putting a volume on the grid a prior learnt: the voxel axes in canonical RAS+ order, and an
//! in-plane pixel size in millimetres.
//!
//! Why: scans of different people come with their voxel axes in any order (the ITK T1 example
//! stores coronal slices along k; pyradiomics' brains are LPS with the rows running anterior to
//! posterior) and at their own pixel size (0.57 to 2 mm). A prior trained on several of them, and
//! every scan it later reconstructs, must see one anatomy at one scale in one orientation, so
//! both training (`train::data`, `pixel_mm`) and the pipeline (`--fit resample` with a prior that
//! records `pixel_mm`) pass every volume through [`Volume::to_canonical`] and
//! [`Volume::resample_in_plane`].

use crate::volume::Volume;
use anyhow::{ensure, Result};

impl Volume {
    /// The same voxels with axes permuted and flipped so that `i` runs towards the patient's
    /// right, `j` towards anterior and `k` towards superior (RAS+, the closest canonical
    /// orientation of nibabel's `as_closest_canonical`): axial slices along `k`. Each voxel axis goes
    /// to the world axis its direction is most aligned with; an oblique scan keeps its
    /// obliquity in the affine. Unchanged (no history entry) when already canonical.
    pub fn to_canonical(&self) -> Volume {
        let axis_of = axis_assignment(&self.affine);
        if axis_of
            .iter()
            .enumerate()
            .all(|(w, &(a, flip))| w == a && !flip)
        {
            return self.clone();
        }
        let old = [self.nx(), self.ny(), self.nz()];
        let new: [usize; 3] = std::array::from_fn(|w| old[axis_of[w].0]);
        let nt = self.nt();
        let mut data = Vec::with_capacity(self.data.len());
        let stride_old = [1, old[0], old[0] * old[1]];
        let mut src = [0usize; 3];
        for t in 0..nt {
            let frame = t * old[0] * old[1] * old[2];
            for k in 0..new[2] {
                for j in 0..new[1] {
                    for i in 0..new[0] {
                        for (w, &o) in [i, j, k].iter().enumerate() {
                            let (a, flip) = axis_of[w];
                            src[a] = if flip { old[a] - 1 - o } else { o };
                        }
                        let at = frame + src[0] + src[1] * stride_old[1] + src[2] * stride_old[2];
                        data.push(self.data[at]);
                    }
                }
            }
        }
        let mut out = self.clone();
        out.data = data;
        out.dims = [new[0], new[1], new[2], nt];
        // Index of the new voxel (0, 0, 0) in the old grid, for the new origin.
        let mut origin_index = [0.0f64; 3];
        for &(a, flip) in &axis_of {
            if flip {
                origin_index[a] = (old[a] - 1) as f64;
            }
        }
        for r in 0..3 {
            out.affine[r][3] = self.affine[r][3]
                + (0..3)
                    .map(|a| self.affine[r][a] * origin_index[a])
                    .sum::<f64>();
            for (w, &(a, flip)) in axis_of.iter().enumerate() {
                out.affine[r][w] = if flip { -1.0 } else { 1.0 } * self.affine[r][a];
            }
        }
        for (w, &(a, _)) in axis_of.iter().enumerate() {
            out.spacing[w] = self.spacing[a];
        }
        // A thickness belongs to the old slice axis; across another one it means nothing.
        if axis_of[2].0 != 2 {
            out.provenance.slice_thickness = None;
        }
        // Slice k of the new grid is an old slice only when the slice axis stays the slice axis;
        // its source image follows it (reversed when k is flipped).
        out.provenance.source_instances =
            if axis_of[2].0 == 2 && self.provenance.source_instances.len() == old[2] {
                (0..new[2])
                    .map(|k| {
                        let old_k = if axis_of[2].1 { old[2] - 1 - k } else { k };
                        self.provenance.source_instances[old_k].clone()
                    })
                    .collect()
            } else {
                Vec::new()
            };
        // The source's own slice positions (DICOM, possibly unevenly spaced) stay true when the
        // slice axis stays the slice axis: each moves by the in-plane shift of the new first
        // voxel. Across another axis there are no source slices to keep.
        out.slice_positions = if self.slice_positions.len() == old[2] && axis_of[2].0 == 2 {
            let shift: [f64; 3] = std::array::from_fn(|r| {
                self.affine[r][0] * origin_index[0] + self.affine[r][1] * origin_index[1]
            });
            (0..new[2])
                .map(|k| {
                    let old_k = if axis_of[2].1 { old[2] - 1 - k } else { k };
                    let p = self.slice_positions[old_k];
                    std::array::from_fn(|r| p[r] + shift[r])
                })
                .collect()
        } else {
            Vec::new()
        };
        out.provenance.history.push(format!(
            "voxel axes reordered to RAS+ ({} -> RAS)",
            orientation_code(&self.affine)
        ));
        out
    }

    /// Every slice resampled in-plane to square `pixel_mm` pixels: the grid keeps the slice's
    /// extent (`n' = round(n * spacing / pixel_mm)` pixels per axis), and each new pixel is a
    /// tent-filtered mean of the old ones (linear interpolation when enlarging; when shrinking
    /// the tent widens to the new pixel size, so no aliasing). Affine, spacing and slice
    /// positions follow, with pixel centres kept consistent.
    pub fn resample_in_plane(&self, pixel_mm: f64) -> Result<Volume> {
        ensure!(
            pixel_mm.is_finite() && pixel_mm > 0.0,
            "pixel size {pixel_mm} mm: must be a positive number"
        );
        let (nx, ny) = (self.nx(), self.ny());
        let target = |n: usize, s: f64| ((n as f64 * s / pixel_mm).round() as usize).max(1);
        let (mx, my) = (target(nx, self.spacing[0]), target(ny, self.spacing[1]));
        if (mx, my) == (nx, ny) {
            return Ok(self.clone());
        }
        let wx = tent_weights(nx, mx);
        let wy = tent_weights(ny, my);
        let n_slices = self.nz() * self.nt();
        let mut data = Vec::with_capacity(mx * my * n_slices);
        let mut rows = vec![0.0f64; nx * my];
        for s in 0..n_slices {
            let src = &self.data[s * nx * ny..(s + 1) * nx * ny];
            // Along j first (rows of the output), then along i.
            rows.iter_mut().for_each(|v| *v = 0.0);
            for (jo, taps) in wy.iter().enumerate() {
                for &(j, w) in taps {
                    let line = &src[j * nx..(j + 1) * nx];
                    let out = &mut rows[jo * nx..(jo + 1) * nx];
                    for (o, &v) in out.iter_mut().zip(line) {
                        *o += w * f64::from(v);
                    }
                }
            }
            for jo in 0..my {
                let line = &rows[jo * nx..(jo + 1) * nx];
                for taps in &wx {
                    let v: f64 = taps.iter().map(|&(i, w)| w * line[i]).sum();
                    data.push(v as f32);
                }
            }
        }
        let mut out = self.clone();
        out.data = data;
        out.dims = [mx, my, self.nz(), self.nt()];
        let ratio = [nx as f64 / mx as f64, ny as f64 / my as f64];
        out.spacing[0] = self.spacing[0] * ratio[0];
        out.spacing[1] = self.spacing[1] * ratio[1];
        // New pixel 0's centre sits at old index (ratio - 1) / 2 along each in-plane axis.
        let shift: [f64; 3] = std::array::from_fn(|r| {
            (ratio[0] - 1.0) / 2.0 * self.affine[r][0] + (ratio[1] - 1.0) / 2.0 * self.affine[r][1]
        });
        for (row, s) in out.affine.iter_mut().zip(shift) {
            row[0] *= ratio[0];
            row[1] *= ratio[1];
            row[3] += s;
        }
        for p in &mut out.slice_positions {
            for r in 0..3 {
                p[r] += shift[r];
            }
        }
        out.provenance.history.push(format!(
            "resampled in-plane to {pixel_mm} mm pixels ({nx}x{ny} -> {mx}x{my})"
        ));
        Ok(out)
    }

    /// RAS+ position (mm) of voxel index `(i, j, k)`.
    pub fn voxel_position(&self, i: f64, j: f64, k: f64) -> [f64; 3] {
        std::array::from_fn(|r| {
            self.affine[r][0] * i
                + self.affine[r][1] * j
                + self.affine[r][2] * k
                + self.affine[r][3]
        })
    }
}

/// For each world axis (R, A, S) the voxel axis that goes there and whether it is reversed.
/// Greedy on the largest remaining direction cosine, so every voxel axis is used once even for
/// oblique scans.
fn axis_assignment(affine: &[[f64; 4]; 4]) -> [(usize, bool); 3] {
    let norm = |a: usize| {
        (0..3)
            .map(|r| affine[r][a].powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12)
    };
    let mut cos = [[0.0f64; 3]; 3]; // cos[w][a]
    for (w, row) in cos.iter_mut().enumerate() {
        for (a, c) in row.iter_mut().enumerate() {
            *c = affine[w][a] / norm(a);
        }
    }
    let mut out = [(usize::MAX, false); 3];
    let mut used_axis = [false; 3];
    for _ in 0..3 {
        let mut best = (0.0f64, 0usize, 0usize);
        for (w, row) in cos.iter().enumerate() {
            for (a, c) in row.iter().enumerate() {
                if out[w].0 == usize::MAX && !used_axis[a] && c.abs() >= best.0 {
                    best = (c.abs(), w, a);
                }
            }
        }
        let (_, w, a) = best;
        out[w] = (a, cos[w][a] < 0.0);
        used_axis[a] = true;
    }
    out
}

/// The direction each voxel axis points to, nibabel's axcodes (e.g. "LPS", "LSA").
fn orientation_code(affine: &[[f64; 4]; 4]) -> String {
    let axis_of = axis_assignment(affine);
    let mut code = [' '; 3];
    for (w, &(a, flip)) in axis_of.iter().enumerate() {
        code[a] = match (w, flip) {
            (0, false) => 'R',
            (0, true) => 'L',
            (1, false) => 'A',
            (1, true) => 'P',
            (2, false) => 'S',
            _ => 'I',
        };
    }
    code.iter().collect()
}

/// Per output pixel, the `(input index, weight)` taps of a tent filter resampling `n` pixels to
/// `m` over the same extent (pixel centres at `(o + 0.5) n / m - 0.5`); weights sum to 1.
fn tent_weights(n: usize, m: usize) -> Vec<Vec<(usize, f64)>> {
    let ratio = n as f64 / m as f64;
    let support = ratio.max(1.0);
    (0..m)
        .map(|o| {
            let centre = (o as f64 + 0.5) * ratio - 0.5;
            let lo = (centre - support).floor().max(0.0) as usize;
            let hi = ((centre + support).ceil() as usize).min(n - 1);
            let mut taps: Vec<(usize, f64)> = (lo..=hi)
                .map(|i| (i, (1.0 - (i as f64 - centre).abs() / support).max(0.0)))
                .filter(|&(_, w)| w > 0.0)
                .collect();
            if taps.is_empty() {
                taps.push((centre.round().clamp(0.0, (n - 1) as f64) as usize, 1.0));
            }
            let sum: f64 = taps.iter().map(|t| t.1).sum();
            taps.iter_mut().for_each(|t| t.1 /= sum);
            taps
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::volume::{Modality, Volume};

    /// A volume whose voxel values are a linear function of the RAS position.
    fn linear_in_space(dims: [usize; 3], affine: [[f64; 4]; 4]) -> Volume {
        let mut v = Volume::new(
            vec![0.0; dims.iter().product()],
            [dims[0], dims[1], dims[2], 1],
            [1.0; 3],
            Modality::Mr,
        );
        v.affine = affine;
        for (a, s) in v.spacing.iter_mut().take(3).enumerate() {
            *s = affine
                .iter()
                .take(3)
                .map(|row| row[a].powi(2))
                .sum::<f64>()
                .sqrt();
        }
        let mut at = 0;
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let p = v.voxel_position(i as f64, j as f64, k as f64);
                    v.data[at] = (3.0 * p[0] - 2.0 * p[1] + 0.5 * p[2] + 100.0) as f32;
                    at += 1;
                }
            }
        }
        v
    }

    fn value_at(p: [f64; 3]) -> f64 {
        3.0 * p[0] - 2.0 * p[1] + 0.5 * p[2] + 100.0
    }

    #[test]
    fn canonical_order_keeps_every_voxel_at_its_world_position() {
        // LSA, like the ITK T1 example: i -> left, j -> superior, k -> anterior.
        let affine = [
            [-2.0, 0.0, 0.0, 50.0],
            [0.0, 0.0, 3.0, -20.0],
            [0.0, 2.0, 0.0, 7.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let v = linear_in_space([4, 5, 6], affine);
        let c = v.to_canonical();
        assert_eq!(c.dims[..3], [4, 6, 5]);
        assert_eq!(c.spacing[..3], [2.0, 3.0, 2.0]);
        for r in 0..3 {
            assert!(
                c.affine[r][r] > 0.0,
                "axis {r} must point to +RAS: {:?}",
                c.affine
            );
        }
        let mut at = 0;
        for k in 0..5 {
            for j in 0..6 {
                for i in 0..4 {
                    let p = c.voxel_position(i as f64, j as f64, k as f64);
                    assert!((f64::from(c.data[at]) - value_at(p)).abs() < 1e-3);
                    at += 1;
                }
            }
        }
        assert!(c.provenance.history.last().unwrap().contains("LSA"));
        // Already canonical: the same volume back.
        let again = c.to_canonical();
        assert_eq!(again.data, c.data);
        assert_eq!(again.provenance.history.len(), c.provenance.history.len());
    }

    #[test]
    fn uneven_source_slice_positions_survive_reordering() {
        // LPI-like (i -> left, j -> posterior, k -> inferior) with slices at uneven steps, as a
        // DICOM series with a gap: the new first voxel of each slice must sit where the old
        // volume puts that voxel, the source's positions included.
        let affine = [
            [-1.0, 0.0, 0.0, 10.0],
            [0.0, -1.0, 0.0, 5.0],
            [0.0, 0.0, -2.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let mut v = linear_in_space([3, 4, 3], affine);
        v.slice_positions = vec![[10.0, 5.0, 0.0], [10.0, 5.0, -2.0], [10.0, 5.0, -9.0]];
        let c = v.to_canonical();
        assert_eq!(c.slice_positions.len(), 3);
        for (k, p) in c.slice_positions.iter().enumerate() {
            // New (0, 0, k) is old (2, 3, 2 - k).
            let old = v.slice_positions[2 - k];
            let want = [old[0] - 2.0, old[1] - 3.0, old[2]];
            assert!(
                (0..3).all(|r| (p[r] - want[r]).abs() < 1e-12),
                "slice {k}: {p:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn resampling_keeps_a_linear_image_linear_and_the_extent() {
        let affine = [
            [0.5, 0.0, 0.0, 10.0],
            [0.0, 0.5, 0.0, -4.0],
            [0.0, 0.0, 2.0, 1.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        // Shrinking by a whole factor (4) and enlarging (linear interpolation): a tent filter keeps a linear
        // function exactly there (at other ratios its sampled taps are slightly lopsided).
        let v = linear_in_space([40, 48, 2], affine);
        for pixel_mm in [2.0, 0.3] {
            let margin = if pixel_mm > 1.0 { 2 } else { 3 };
            let r = v.resample_in_plane(pixel_mm).unwrap();
            let (mx, my) = (r.nx(), r.ny());
            assert_eq!(
                (mx, my),
                (
                    (20.0 / pixel_mm).round() as usize,
                    (24.0 / pixel_mm).round() as usize
                )
            );
            // Same extent: first and last pixel edges where the old ones were.
            assert!((r.spacing[0] * mx as f64 - 20.0).abs() < 1e-9);
            // Away from the edges (where the filter is cut) a linear function stays exact.
            for k in 0..2 {
                for j in margin..my - margin {
                    for i in margin..mx - margin {
                        let p = r.voxel_position(i as f64, j as f64, k as f64);
                        let got = f64::from(r.data[i + mx * (j + my * k)]);
                        assert!(
                            (got - value_at(p)).abs() < 1e-3,
                            "{pixel_mm} mm ({i},{j},{k}): {got} vs {}",
                            value_at(p)
                        );
                    }
                }
            }
        }
        // A constant stays constant everywhere, edges included.
        let flat = Volume::new(
            vec![7.0; 30 * 20],
            [30, 20, 1, 1],
            [0.7, 0.7, 1.0],
            Modality::Ct,
        );
        let r = flat.resample_in_plane(2.0).unwrap();
        assert!(r.data.iter().all(|v| (v - 7.0).abs() < 1e-5));
        assert!(flat.resample_in_plane(0.0).is_err());
        assert!(flat.resample_in_plane(f64::NAN).is_err());
    }
}
