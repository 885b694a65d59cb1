//! `Volume`: voxels plus geometry and provenance, the one type every stage passes on.
//!
//! Layout: `data` holds f32 values in C order over `(t, k, j, i)`, i.e. column `i` varies fastest,
//! then row `j`, then slice `k`, then frame `t`. This is DICOM's pixel order within a slice and
//! NIfTI's on-disk order, so neither reader needs to transpose.
//!
//! Geometry: `affine` maps the voxel index `(i, j, k, 1)` to patient coordinates in millimetres in
//! the **RAS+** frame NIfTI uses (DICOM's LPS+ positions are converted on reading and back on
//! writing), exactly as a NIfTI sform does. Voxel spacing is kept separately because a DICOM series
//! may have uneven slice steps that no single affine describes (those are kept in
//! `slice_positions`).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Imaging modality as far as reconstruction cares: it picks HU windows, normalisation and the
/// operator family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Modality {
    /// Computed tomography; voxel values in Hounsfield units.
    Ct,
    /// Magnetic resonance; voxel values in arbitrary scanner intensity.
    Mr,
    /// Anything else (secondary capture, unknown NIfTI content).
    Other,
}

impl Modality {
    /// From a DICOM Modality (0008,0060) code.
    pub fn from_dicom_code(code: &str) -> Self {
        match code.trim() {
            "CT" => Modality::Ct,
            "MR" => Modality::Mr,
            _ => Modality::Other,
        }
    }

    pub fn dicom_code(self) -> &'static str {
        match self {
            Modality::Ct => "CT",
            Modality::Mr => "MR",
            Modality::Other => "OT",
        }
    }
}

// By hand rather than `named!`, which would add a second `Display`: the names are the DICOM
// codes (`convert --modality CT|MR|OT`).
impl crate::names::Named for Modality {
    const WHAT: &'static str = "--modality";
    fn all() -> &'static [Self] {
        &[Modality::Ct, Modality::Mr, Modality::Other]
    }
    fn name(self) -> &'static str {
        self.dicom_code()
    }
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dicom_code())
    }
}

/// Where the voxels came from, so outputs can say what produced them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// Files the voxels were read from, in slice order.
    pub source_files: Vec<String>,
    /// Rescale applied to stored values: `value = slope * stored + intercept`.
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    pub series_description: Option<String>,
    pub series_instance_uid: Option<String>,
    pub study_instance_uid: Option<String>,
    /// DICOM tags worth carrying into a derived series (patient and study module), as
    /// `(tag as "GGGGEEEE", VR, value)`; empty for NIfTI sources.
    pub carried_tags: Vec<(String, String, String)>,
    /// Free-text history of the stages this volume passed through.
    pub history: Vec<String>,
    /// The nominal thickness of a slice in mm, when it is not the slice step: the source's DICOM
    /// SliceThickness, or the source's step after a selection of every n-th slice (an 18 mm
    /// step between slices 1.5 mm thick). None: the step along k.
    #[serde(default)]
    pub slice_thickness: Option<f64>,
    /// The DICOM image each slice was read from, in slice order (empty for NIfTI and NRRD
    /// sources, or once slices no longer are source slices): what a derived series' Source
    /// Image Sequence points at.
    #[serde(default)]
    pub source_instances: Vec<SourceInstance>,
}

impl Provenance {
    /// Drop what identifies the patient: the patient tags a derived DICOM series would carry
    /// (`io::dicom::PATIENT_TAGS`) and the paths of the files read (which often hold a name).
    pub fn anonymise(&mut self) {
        self.carried_tags
            .retain(|(key, _, _)| !crate::io::dicom::PATIENT_TAGS.contains(&key.as_str()));
        self.source_files.clear();
        self.history =
            vec!["read from an input (anonymised: paths and patient tags removed)".into()];
    }
}

/// One source DICOM image: its SOP Class and Instance UIDs, and its frame (1-based) in a
/// multi-frame object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInstance {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub frame: Option<u32>,
}

/// An image volume: `nt` frames of `nz` slices of `ny` rows by `nx` columns.
#[derive(Debug, Clone)]
pub struct Volume {
    pub data: Vec<f32>,
    /// `[nx, ny, nz, nt]`.
    pub dims: [usize; 4],
    /// Voxel size in mm along i, j, k (and the frame interval, seconds, or 1 when unknown).
    pub spacing: [f64; 4],
    /// Voxel index -> RAS+ mm, row major.
    pub affine: [[f64; 4]; 4],
    /// RAS+ position of the first voxel of each slice, when the source gave them (DICOM).
    pub slice_positions: Vec<[f64; 3]>,
    pub modality: Modality,
    pub provenance: Provenance,
}

impl Volume {
    /// A volume with identity direction cosines, the given spacing and zero origin.
    pub fn new(data: Vec<f32>, dims: [usize; 4], spacing: [f64; 3], modality: Modality) -> Self {
        assert_eq!(
            data.len(),
            dims.iter().product::<usize>(),
            "Volume::new: data length does not match dims"
        );
        let mut affine = [[0.0; 4]; 4];
        for (a, s) in spacing.iter().enumerate() {
            affine[a][a] = *s;
        }
        affine[3][3] = 1.0;
        Volume {
            data,
            dims,
            spacing: [spacing[0], spacing[1], spacing[2], 1.0],
            affine,
            slice_positions: Vec::new(),
            modality,
            provenance: Provenance {
                rescale_slope: 1.0,
                ..Default::default()
            },
        }
    }

    pub fn nx(&self) -> usize {
        self.dims[0]
    }
    pub fn ny(&self) -> usize {
        self.dims[1]
    }
    pub fn nz(&self) -> usize {
        self.dims[2]
    }
    pub fn nt(&self) -> usize {
        self.dims[3]
    }

    /// Number of 2-D slices over all frames.
    pub fn n_slices(&self) -> usize {
        self.dims[2] * self.dims[3]
    }

    /// Slice `k` of frame `t`, row major (`ny` rows of `nx`).
    pub fn slice(&self, k: usize, t: usize) -> &[f32] {
        let n = self.dims[0] * self.dims[1];
        let start = (t * self.dims[2] + k) * n;
        &self.data[start..start + n]
    }

    /// Minimum and maximum over finite voxels (None when there are none).
    pub fn value_range(&self) -> Option<(f32, f32)> {
        let mut it = self.data.iter().copied().filter(|v| v.is_finite());
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }

    /// The RAS+ position of the first voxel of slice `k`: the source's own (DICOM) when it gave
    /// one per slice, else the affine's.
    pub fn slice_position(&self, k: usize) -> [f64; 3] {
        match self.slice_positions.get(k) {
            Some(p) if self.slice_positions.len() == self.nz() => *p,
            _ => self.voxel_position(0.0, 0.0, k as f64),
        }
    }

    /// The RAS+ step from one slice of `ks` to the next when their positions are evenly spaced
    /// and distinct (within 0.01 mm + 1% of the step, the DICOM reader's tolerance); None when
    /// they are not, so that no single affine places them. One slice: the volume's own k axis.
    pub fn slice_step(&self, ks: &[usize]) -> Option<[f64; 3]> {
        match ks {
            [] => None,
            [_] => Some(std::array::from_fn(|r| self.affine[r][2])),
            [first, .., last] => {
                let (p0, pn) = (self.slice_position(*first), self.slice_position(*last));
                let m = (ks.len() - 1) as f64;
                let step: [f64; 3] = std::array::from_fn(|r| (pn[r] - p0[r]) / m);
                let tol = 0.01 + 0.01 * norm3(&step);
                let even = norm3(&step) > 1e-6
                    && ks.iter().enumerate().all(|(i, &k)| {
                        let p = self.slice_position(k);
                        let d: [f64; 3] =
                            std::array::from_fn(|r| p[r] - p0[r] - i as f64 * step[r]);
                        norm3(&d) <= tol
                    });
                even.then_some(step)
            }
        }
    }

    /// A new volume holding slices `ks` of frame 0 (in that order), whose affine places every
    /// one where it is in this volume: the origin at the first, the k axis the step between
    /// them ([`Volume::slice_step`]: `--slice 40,52` of a 1.5 mm series is an 18 mm step), the
    /// slice spacing its length, the slice thickness kept. Slices that are not evenly spaced
    /// are an error: no single affine describes them (write them one by one).
    pub fn select_slices(&self, ks: &[usize]) -> Result<Volume> {
        if let Some(&k) = ks.iter().find(|&&k| k >= self.nz()) {
            bail!(
                "slice {k} does not exist (the volume has {} slices)",
                self.nz()
            );
        }
        let Some(step) = self.slice_step(ks) else {
            bail!(
                "slices {ks:?} are not evenly spaced (or repeat): one volume's affine cannot \
                 place them; select evenly spaced slices or write each slice on its own"
            );
        };
        let n = self.nx() * self.ny();
        let mut data = Vec::with_capacity(n * ks.len());
        for &k in ks {
            data.extend_from_slice(self.slice(k, 0));
        }
        let mut out = self.clone();
        out.data = data;
        out.dims = [self.nx(), self.ny(), ks.len(), 1];
        let origin = self.slice_position(ks[0]);
        for r in 0..3 {
            out.affine[r][2] = step[r];
            out.affine[r][3] = origin[r];
        }
        out.spacing[2] = norm3(&step);
        if (out.spacing[2] - self.spacing[2]).abs() > 1e-6 * self.spacing[2].max(1.0) {
            out.provenance.slice_thickness =
                Some(self.provenance.slice_thickness.unwrap_or(self.spacing[2]));
        }
        out.slice_positions = if self.slice_positions.len() == self.nz() {
            ks.iter().map(|&k| self.slice_positions[k]).collect()
        } else {
            Vec::new()
        };
        out.provenance.source_files = ks
            .iter()
            .filter_map(|&k| self.provenance.source_files.get(k).cloned())
            .collect();
        out.provenance.source_instances = if self.provenance.source_instances.len() == self.nz() {
            ks.iter()
                .map(|&k| self.provenance.source_instances[k].clone())
                .collect()
        } else {
            Vec::new()
        };
        Ok(out)
    }

    /// Every frame averaged down in-plane by `k` (mean of each `k x k` block; a remainder of
    /// fewer than `k` columns or rows at the far edge is dropped), with spacing, affine and slice
    /// positions moved so each new voxel's centre is the centre of its block. This is how the
    /// training data of a prior trained with `downsample: k` were made (`train::data`), so a
    /// scan averaged down here matches what the prior saw.
    pub fn average_down(&self, k: usize) -> Volume {
        assert!(k >= 1, "average_down: factor must be at least 1");
        if k == 1 {
            return self.clone();
        }
        let (nx, ny) = (self.nx() / k, self.ny() / k);
        let n_slices = self.nz() * self.nt();
        let mut data = Vec::with_capacity(nx * ny * n_slices);
        let inv = 1.0 / (k * k) as f64;
        for s in 0..n_slices {
            let src = &self.data[s * self.nx() * self.ny()..(s + 1) * self.nx() * self.ny()];
            for j in 0..ny {
                for i in 0..nx {
                    let mut acc = 0.0f64;
                    for dj in 0..k {
                        let row = (j * k + dj) * self.nx();
                        acc += src[row + i * k..row + i * k + k]
                            .iter()
                            .map(|&v| f64::from(v))
                            .sum::<f64>();
                    }
                    data.push((acc * inv) as f32);
                }
            }
        }
        let mut out = self.clone();
        out.data = data;
        out.dims = [nx, ny, self.nz(), self.nt()];
        out.spacing[0] *= k as f64;
        out.spacing[1] *= k as f64;
        // The first new voxel's centre sits (k - 1) / 2 old voxels along each in-plane axis.
        let half = (k as f64 - 1.0) / 2.0;
        let shift: [f64; 3] =
            std::array::from_fn(|r| half * (self.affine[r][0] + self.affine[r][1]));
        for (row, s) in out.affine.iter_mut().zip(shift) {
            row[0] *= k as f64;
            row[1] *= k as f64;
            row[3] += s;
        }
        for p in &mut out.slice_positions {
            for r in 0..3 {
                p[r] += shift[r];
            }
        }
        out.provenance.history.push(format!(
            "averaged down {k}x in-plane ({}x{} -> {nx}x{ny})",
            self.nx(),
            self.ny()
        ));
        out
    }

    /// Same geometry and provenance, new voxels of the same size (a reconstruction of this volume).
    pub fn with_data(&self, data: Vec<f32>) -> Volume {
        assert_eq!(data.len(), self.data.len(), "with_data: size mismatch");
        let mut v = self.clone();
        v.data = data;
        v
    }
}

fn norm3(v: &[f64; 3]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_down_takes_block_means_and_keeps_voxel_centres() {
        // 5x4 slice, k = 2: a 2x2 result (the fifth column dropped).
        let mut v = Volume::new(
            (0..5 * 4).map(|x| x as f32).collect(),
            [5, 4, 1, 1],
            [0.5, 0.7, 2.0],
            Modality::Ct,
        );
        v.affine[0][3] = 10.0;
        v.affine[1][3] = -3.0;
        let d = v.average_down(2);
        assert_eq!(d.dims, [2, 2, 1, 1]);
        // Block (0,0): 0, 1, 5, 6 -> 3; block (1,0): 2, 3, 7, 8 -> 5; second row +10.
        assert_eq!(d.data, vec![3.0, 5.0, 13.0, 15.0]);
        assert_eq!(d.spacing[..3], [1.0, 1.4, 2.0]);
        // New voxel (0, 0) lies between old voxels 0 and 1 on each axis.
        assert!((d.affine[0][3] - 10.25).abs() < 1e-12);
        assert!((d.affine[1][3] - (-3.0 + 0.35)).abs() < 1e-12);
        assert_eq!(d.affine[0][0], 1.0);
    }

    #[test]
    fn select_slices_moves_origin_along_slice_axis() {
        let mut v = Volume::new(
            (0..2 * 2 * 3).map(|x| x as f32).collect(),
            [2, 2, 3, 1],
            [1.0, 1.0, 2.5],
            Modality::Ct,
        );
        v.affine[2][3] = -10.0;
        let s = v.select_slices(&[2]).unwrap();
        assert_eq!(s.data, vec![8.0, 9.0, 10.0, 11.0]);
        assert_eq!(s.affine[2][3], -10.0 + 2.0 * 2.5);
        assert_eq!(s.provenance.slice_thickness, None);
    }

    #[test]
    fn every_other_slice_keeps_its_position_and_uneven_ones_are_refused() {
        // 2.5 mm slices with a tilted k axis; slices 0, 2, 4: origin at slice 0, step twice the
        // column (closed form), spacing 5 mm, thickness still 2.5 mm.
        let mut v = Volume::new(
            vec![0.0; 2 * 2 * 6],
            [2, 2, 6, 1],
            [1.0, 1.0, 2.5],
            Modality::Ct,
        );
        v.affine[1][2] = 0.5;
        v.affine[0][3] = 3.0;
        let s = v.select_slices(&[0, 2, 4]).unwrap();
        for k in 0..3 {
            let want = v.voxel_position(1.0, 1.0, (2 * k) as f64);
            let got = s.voxel_position(1.0, 1.0, k as f64);
            assert!(
                (0..3).all(|r| (want[r] - got[r]).abs() < 1e-12),
                "{k}: {got:?} vs {want:?}"
            );
        }
        assert!((s.spacing[2] - 2.0 * (2.5f64.powi(2) + 0.25).sqrt()).abs() < 1e-12);
        assert_eq!(s.provenance.slice_thickness, Some(2.5));
        // Descending is evenly spaced too (a negative step); uneven and repeated are not.
        let d = v.select_slices(&[5, 3, 1]).unwrap();
        assert!(
            (d.voxel_position(0.0, 0.0, 2.0)[2] - v.voxel_position(0.0, 0.0, 1.0)[2]).abs() < 1e-12
        );
        assert!(v
            .select_slices(&[0, 1, 4])
            .unwrap_err()
            .to_string()
            .contains("not evenly spaced"));
        assert!(v.select_slices(&[3, 3]).is_err());
        assert!(v
            .select_slices(&[6])
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        // Positions the source gave (DICOM) decide: a gap makes 0, 1, 2 uneven.
        v.slice_positions = (0..6)
            .map(|k| [0.0, 0.0, 2.5 * k as f64 + if k >= 2 { 4.0 } else { 0.0 }])
            .collect();
        assert!(v.select_slices(&[0, 1, 2]).is_err());
        let s = v.select_slices(&[2, 4]).unwrap();
        assert_eq!(
            s.slice_positions,
            vec![v.slice_positions[2], v.slice_positions[4]]
        );
        assert_eq!(s.affine[2][3], 9.0);
    }
}
