//! The training data set: DICOM series and NIfTI volumes (mixed, in folders or given one by
//! one), split into 2-D axial slices in model space, with a held-out part for the validation
//! loss (docs/training.md, "Data").
//!
//! - CT: Hounsfield units to attenuation on [0, 1], `x = (HU - hu_min) / (hu_max - hu_min)`
//!   (with `hu_min = -1000` this is `mu / mu(hu_max)`), negatives to 0 so air and the padding
//!   outside the field of view are background 0 (paper 004, B.6.3). The map goes into the model's
//!   metadata so reconstructions can undo it.
//! - MR: each volume divided by its own `mr_percentile` (99.5th by default): MR intensities have
//!   no absolute unit, and a percentile ignores a few hot voxels where the maximum would not.
//! - Split: with several volumes, whole volumes are held out (the last ones in path order);
//!   never interleaved slices of one volume, whose neighbours are near copies. With a single
//!   volume, a contiguous slab of slices is held out with `val_gap` slices on each side left out
//!   of both parts.
//! - Augmentation (training batches only): random crops when a slice is larger than the model,
//!   random left-right (and optionally up-down) flips. Smaller slices are zero-padded, centred.

use super::config::{DataModality, TrainConfig};
use crate::io::{read_volume, ReadOptions};
use crate::ops::ct::hu::MU_WATER_PER_MM;
use crate::prior::Normalisation;
use crate::volume::{Modality, Volume};
use anyhow::{bail, Context, Result};
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// One 2-D slice in model space.
#[derive(Debug, Clone)]
pub struct Slice {
    pub data: Vec<f32>,
    pub h: usize,
    pub w: usize,
    /// Index into `DataSet::volumes`.
    pub volume: usize,
    /// Slice index `k` in the source volume.
    pub index: usize,
}

/// What became of one source volume.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeSummary {
    pub name: String,
    pub dims: [usize; 4],
    /// `train`, `validation` or `split`.
    pub role: String,
    pub train_slices: usize,
    pub val_slices: usize,
    /// Slices skipped as (nearly) empty.
    pub empty_slices: usize,
}

pub struct DataSet {
    pub modality: DataModality,
    /// The map from scanner values to model space (goes into the metadata sidecar).
    pub normalisation: Normalisation,
    pub train: Vec<Slice>,
    pub val: Vec<Slice>,
    pub volumes: Vec<VolumeSummary>,
    /// The held-out part in words, for the metadata and the model card.
    pub holdout: String,
}

impl DataSet {
    /// Read every volume under `cfg.data` and build the slices and the split. Errors (nothing
    /// there, nothing readable, CT mixed with MR) come before any training.
    pub fn load(cfg: &TrainConfig) -> Result<DataSet> {
        if cfg.data.is_empty() {
            return Self::from_volumes(Vec::new(), cfg);
        }
        let candidates = discover(&cfg.data)?;
        let mut volumes = Vec::new();
        let mut failures = Vec::new();
        for path in &candidates {
            match read_volume(path, &ReadOptions::default()) {
                Ok(v) => volumes.push((path.display().to_string(), v)),
                Err(e) => {
                    // The readers name the file already; say it once.
                    let e = format!("{e:#}");
                    let name = path.display().to_string();
                    failures.push(if e.contains(&name) {
                        e
                    } else {
                        format!("{name}: {e}")
                    });
                }
            }
        }
        if volumes.is_empty() {
            let roots: Vec<String> = cfg.data.iter().map(|p| p.display().to_string()).collect();
            bail!(
                "{}: no readable image among {} candidate(s) (DICOM series or NIfTI volumes); first: {}",
                roots.join(", "),
                candidates.len(),
                failures.first().map(String::as_str).unwrap_or("none")
            );
        }
        for f in &failures {
            eprintln!("warning: skipping {f}");
        }
        Self::from_volumes(volumes, cfg)
    }

    /// Build the data set from volumes already in memory (`name`, volume).
    pub fn from_volumes(volumes: Vec<(String, Volume)>, cfg: &TrainConfig) -> Result<DataSet> {
        let modality = resolve_modality(&volumes, cfg.modality)?;
        let normalisation = match modality {
            DataModality::Mr => Normalisation::MrPerVolume {
                percentile: cfg.mr_percentile,
            },
            _ => Normalisation::CtAttenuation {
                mu_water: MU_WATER_PER_MM,
                hu_min: cfg.hu_min,
                hu_max: cfg.hu_max,
            },
        };
        let n_vol = volumes.len();
        // Several volumes: the last `ceil(n * val_fraction)` are held out (training keeps one).
        let n_val_vol = if n_vol > 1 && cfg.val_fraction > 0.0 {
            ((n_vol as f64 * cfg.val_fraction).ceil() as usize).clamp(1, n_vol - 1)
        } else {
            0
        };
        let mut ds = DataSet {
            modality,
            normalisation: normalisation.clone(),
            train: vec![],
            val: vec![],
            volumes: vec![],
            holdout: String::new(),
        };
        let mut held = Vec::new();
        for (vi, (name, vol)) in volumes.into_iter().enumerate() {
            let slices = model_slices(&vol, &normalisation, cfg)
                .with_context(|| format!("{name}: cannot prepare its slices"))?;
            let nz = slices.len();
            // Which slice indices go where: true = validation, None = left out (gap).
            let roles: Vec<Option<bool>> = if vi >= n_vol - n_val_vol {
                vec![Some(true); nz]
            } else if n_vol == 1 && cfg.val_fraction > 0.0 {
                let (lo, hi) = slab(nz, cfg.val_fraction, cfg.val_position, cfg.val_gap)
                    .with_context(|| format!("{name}: cannot hold out a slab"))?;
                held.push(format!(
                    "slices {lo}..={} of {name} (k index, {} slices; {} slices left out on each side)",
                    hi - 1,
                    hi - lo,
                    cfg.val_gap
                ));
                (0..nz)
                    .map(|k| {
                        if (lo..hi).contains(&k) {
                            Some(true)
                        } else if k + cfg.val_gap >= lo && k < hi + cfg.val_gap {
                            None
                        } else {
                            Some(false)
                        }
                    })
                    .collect()
            } else {
                vec![Some(false); nz]
            };
            if vi >= n_vol - n_val_vol {
                held.push(format!("all of {name}"));
            }
            let mut summary = VolumeSummary {
                name: name.clone(),
                dims: vol.dims,
                role: match (n_vol, vi >= n_vol - n_val_vol) {
                    (_, true) => "validation".into(),
                    (1, false) if cfg.val_fraction > 0.0 => "split".into(),
                    _ => "train".into(),
                },
                train_slices: 0,
                val_slices: 0,
                empty_slices: 0,
            };
            for (k, (data, h, w)) in slices.into_iter().enumerate() {
                let Some(is_val) = roles[k] else { continue };
                if foreground(&data) < cfg.min_foreground {
                    summary.empty_slices += 1;
                    continue;
                }
                let s = Slice {
                    data,
                    h,
                    w,
                    volume: vi,
                    index: k,
                };
                if is_val {
                    summary.val_slices += 1;
                    ds.val.push(s);
                } else {
                    summary.train_slices += 1;
                    ds.train.push(s);
                }
            }
            ds.volumes.push(summary);
        }
        if cfg.phantoms > 0 {
            ds.add_phantoms(cfg)?;
            let n_val = ds.volumes.last().map(|v| v.val_slices).unwrap_or(0);
            if n_val > 0 {
                held.push(format!("phantoms 0..{n_val} of {}", cfg.phantoms));
            }
        }
        if ds.train.is_empty() {
            bail!(
                "no training slices left (every slice is held out or below min_foreground {}); \
                 lower val_fraction or min_foreground",
                cfg.min_foreground
            );
        }
        ds.holdout = if held.is_empty() {
            "none (val_fraction 0)".into()
        } else {
            held.join("; ")
        };
        Ok(ds)
    }

    /// `cfg.phantoms` random-ellipse phantoms (`phantom::random_ellipses`: a water body with
    /// fat-to-bone ellipses), rasterised at the scans' resolution and mapped like a CT scan.
    /// Each is an independent draw, so holding out the first `val_fraction` of them is a split
    /// by "volume".
    fn add_phantoms(&mut self, cfg: &TrainConfig) -> Result<()> {
        if self.modality == DataModality::Mr {
            bail!("phantoms {}: the phantom generator makes CT slices; it cannot be mixed with MR data", cfg.phantoms);
        }
        let n = (cfg.image_size * cfg.downsample) as usize;
        let n_val = if cfg.val_fraction > 0.0 && cfg.phantoms > 1 {
            ((cfg.phantoms as f64 * cfg.val_fraction).round() as usize).clamp(1, cfg.phantoms - 1)
        } else {
            0
        };
        let vi = self.volumes.len();
        let mut summary = VolumeSummary {
            name: format!("{} random-ellipse phantoms", cfg.phantoms),
            dims: [n, n, cfg.phantoms, 1],
            role: if n_val > 0 {
                "split".into()
            } else {
                "train".into()
            },
            train_slices: 0,
            val_slices: 0,
            empty_slices: 0,
        };
        for i in 0..cfg.phantoms {
            // Seeds apart from the run's step streams; the same phantoms for the same seed.
            let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let (hu, _) = crate::phantom::phantom_hu("ellipses", n, seed)?;
            let vol = Volume::new(hu, [n, n, 1, 1], [1.0, 1.0, 1.0], Modality::Ct);
            for (data, h, w) in model_slices(&vol, &self.normalisation, cfg)? {
                let s = Slice {
                    data,
                    h,
                    w,
                    volume: vi,
                    index: i,
                };
                if i < n_val {
                    summary.val_slices += 1;
                    self.val.push(s);
                } else {
                    summary.train_slices += 1;
                    self.train.push(s);
                }
            }
        }
        self.volumes.push(summary);
        Ok(())
    }

    /// A training batch `[b, 1, size, size]` on `device`: random slices, crops and flips.
    pub fn train_batch(
        &self,
        rng: &mut ChaCha20Rng,
        b: i64,
        size: i64,
        cfg: &TrainConfig,
        device: Device,
    ) -> Tensor {
        let size = size as usize;
        let mut buf = Vec::with_capacity(b as usize * size * size);
        for _ in 0..b {
            let s = &self.train[rng.random_range(0..self.train.len())];
            let (oy, ox) = if cfg.random_crop {
                (
                    rng.random_range(0..=s.h.saturating_sub(size)),
                    rng.random_range(0..=s.w.saturating_sub(size)),
                )
            } else {
                (s.h.saturating_sub(size) / 2, s.w.saturating_sub(size) / 2)
            };
            let flip_lr = cfg.flip_lr && rng.random::<bool>();
            let flip_ud = cfg.flip_ud && rng.random::<bool>();
            buf.extend(crop(s, size, oy, ox, flip_lr, flip_ud));
        }
        Tensor::from_slice(&buf)
            .reshape([b, 1, size as i64, size as i64])
            .to_device(device)
    }

    /// Validation batch `i`: held-out slices `i*b ..`, centre crops, no flips (the same images
    /// at every evaluation).
    pub fn val_batch(&self, i: usize, b: i64, size: i64, device: Device) -> Option<Tensor> {
        if self.val.is_empty() {
            return None;
        }
        let size = size as usize;
        let mut buf = Vec::with_capacity(b as usize * size * size);
        for j in 0..b as usize {
            let s = &self.val[(i * b as usize + j) % self.val.len()];
            buf.extend(crop(
                s,
                size,
                s.h.saturating_sub(size) / 2,
                s.w.saturating_sub(size) / 2,
                false,
                false,
            ));
        }
        Some(
            Tensor::from_slice(&buf)
                .reshape([b, 1, size as i64, size as i64])
                .to_device(device),
        )
    }

    /// sigma_max from the data (paper 004, chapter 6, technique 1): the largest pairwise
    /// Euclidean distance between training slices (centre crops at model size), over a random
    /// subsample of at most `n` slices.
    pub fn estimate_sigma_max(&self, rng: &mut ChaCha20Rng, n: usize, size: i64) -> f64 {
        let n = n.min(self.train.len());
        let size_u = size as usize;
        let idx = rand::seq::index::sample(rng, self.train.len(), n);
        let mut buf = Vec::with_capacity(n * size_u * size_u);
        for i in idx.iter() {
            let s = &self.train[i];
            buf.extend(crop(
                s,
                size_u,
                s.h.saturating_sub(size_u) / 2,
                s.w.saturating_sub(size_u) / 2,
                false,
                false,
            ));
        }
        max_pairwise_distance(&Tensor::from_slice(&buf).reshape([n as i64, -1]))
    }
}

/// The largest Euclidean distance between rows of `x` (`[N, D]`), in double precision.
pub fn max_pairwise_distance(x: &Tensor) -> f64 {
    let x = x.to_kind(Kind::Double);
    if x.size()[0] < 2 {
        return 0.0;
    }
    // |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, one matrix product instead of N^2 differences.
    let sq = x.square().sum_dim_intlist(1, true, Kind::Double);
    let d2 = &sq + sq.transpose(0, 1) - x.matmul(&x.transpose(0, 1)) * 2.0;
    d2.clamp_min(0.0).max().sqrt().double_value(&[])
}

/// Candidate inputs under `roots`: NIfTI files, and folders that hold other files (DICOM
/// series). A folder with no file at all is an error.
pub fn discover(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for root in roots {
        if !root.exists() {
            bail!("{}: no such file or folder (--data)", root.display());
        }
        if root.is_file() {
            out.push(root.clone());
            continue;
        }
        let before = out.len();
        let mut n_files = 0;
        walk(root, &mut out, &mut n_files)
            .with_context(|| format!("{}: cannot list the folder", root.display()))?;
        if n_files == 0 {
            bail!(
                "{}: the data folder is empty (put DICOM series, NIfTI or NRRD volumes in it)",
                root.display()
            );
        }
        if out.len() == before {
            bail!(
                "{}: no DICOM series, NIfTI or NRRD volume found in the folder",
                root.display()
            );
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, n_files: &mut usize) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|s| s.to_str())
                .unwrap_or(".")
                .starts_with('.')
        })
        .collect();
    entries.sort();
    let mut other_files = false;
    for p in &entries {
        if p.is_dir() {
            walk(p, out, n_files)?;
        } else if p.is_file() {
            *n_files += 1;
            if crate::io::is_volume_file(p) {
                out.push(p.clone());
            } else if !crate::io::is_detached_data(p) {
                other_files = true;
            }
        }
    }
    if other_files {
        out.push(dir.to_path_buf());
    }
    Ok(())
}

fn resolve_modality(volumes: &[(String, Volume)], want: DataModality) -> Result<DataModality> {
    if want != DataModality::Auto {
        return Ok(want);
    }
    let mut found: Option<(DataModality, &str)> = None;
    for (name, v) in volumes {
        let m = match v.modality {
            Modality::Ct => DataModality::Ct,
            Modality::Mr => DataModality::Mr,
            Modality::Other => bail!(
                "{name}: the file does not say whether it is CT or MR (NIfTI never does); set modality: ct or mr"
            ),
        };
        match found {
            Some((f, first)) if f != m => bail!(
                "{name} is {:?} but {first} is {:?}: one model per modality (train them separately)",
                m,
                f
            ),
            None => found = Some((m, name)),
            _ => {}
        }
    }
    Ok(found.map(|f| f.0).unwrap_or(DataModality::Ct))
}

/// Frame 0 of `vol` as model-space slices `(data, h, w)`: put on the `pixel_mm` grid in RAS+
/// order when the config asks, else averaged down by `cfg.downsample`. The intensity scaling
/// is fitted on the volume as stored, as the pipeline fits it on an input scan.
fn model_slices(
    vol: &Volume,
    normalisation: &Normalisation,
    cfg: &TrainConfig,
) -> Result<Vec<(Vec<f32>, usize, usize)>> {
    let n0 = vol.nx() * vol.ny() * vol.nz();
    if vol.data[..n0].iter().any(|v| !v.is_finite()) {
        bail!("the volume holds NaN or infinite voxels");
    }
    let scaling = normalisation.fit(&vol.data[..n0])?;
    let regridded;
    let vol = match cfg.pixel_mm {
        Some(p) => {
            regridded = vol.to_canonical().resample_in_plane(p)?;
            &regridded
        }
        None => vol,
    };
    let (nx, ny, nz) = (vol.nx(), vol.ny(), vol.nz());
    let frame0 = &vol.data[..nx * ny * nz];
    let k = cfg.downsample;
    if (nx as i64) < k || (ny as i64) < k {
        bail!("{nx}x{ny} slices are smaller than downsample {k}");
    }
    let t = Tensor::from_slice(frame0).reshape([nz as i64, 1, ny as i64, nx as i64]);
    // Negatives (below air in CT, below zero in MR) are background: 0.
    let t = scaling.to_model_tensor(&t).clamp_min(0.0);
    let t = if k > 1 {
        t.avg_pool2d([k, k], [k, k], [0, 0], false, true, None::<i64>)
    } else {
        t
    };
    let (h, w) = (t.size()[2] as usize, t.size()[3] as usize);
    let all = Vec::<f32>::try_from(t.contiguous().flatten(0, -1))?;
    Ok(all
        .chunks_exact(h * w)
        .map(|c| (c.to_vec(), h, w))
        .collect())
}

/// Share of pixels above 0.05 in model space (5 % of the range: tissue, not air or noise).
fn foreground(data: &[f32]) -> f64 {
    data.iter().filter(|v| **v > 0.05).count() as f64 / data.len().max(1) as f64
}

/// The held-out slab `[lo, hi)` of a single volume of `nz` slices: `round(nz * fraction)`
/// slices centred at `position * nz`, kept `gap` slices away from both ends so training slices
/// remain on both sides when possible.
pub fn slab(nz: usize, fraction: f64, position: f64, gap: usize) -> Result<(usize, usize)> {
    let len = ((nz as f64 * fraction).round() as usize).max(1);
    if len + 2 * gap + 1 > nz {
        bail!(
            "{nz} slices cannot hold a validation slab of {len} with {gap} gap slices on each side \
             and still leave training slices; lower val_fraction or val_gap"
        );
    }
    let centre = (position * nz as f64).round() as isize;
    let lo = (centre - len as isize / 2).clamp(0, (nz - len) as isize) as usize;
    Ok((lo, lo + len))
}

/// `size x size` window of `s` at `(oy, ox)` (zero-padded, centred, where `s` is smaller),
/// optionally flipped.
fn crop(s: &Slice, size: usize, oy: usize, ox: usize, flip_lr: bool, flip_ud: bool) -> Vec<f32> {
    let (py, px) = (size.saturating_sub(s.h) / 2, size.saturating_sub(s.w) / 2);
    let mut out = vec![0.0f32; size * size];
    for r in 0..size.min(s.h) {
        for c in 0..size.min(s.w) {
            let (rr, cc) = (r + py, c + px);
            let rr = if flip_ud { size - 1 - rr } else { rr };
            let cc = if flip_lr { size - 1 - cc } else { cc };
            out[rr * size + cc] = s.data[(r + oy) * s.w + c + ox];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_give_one_entry_per_volume_file_and_one_per_dicom_folder() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "a.nii.gz",
            "b.nrrd",
            "c.nhdr",
            "c.raw.gz",
            "sub/x.dcm",
            "sub/y.dcm",
        ] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let found = discover(&[d.path().to_path_buf()]).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        // The detached NRRD's data file is read through its header, not as a DICOM folder.
        assert_eq!(names, vec!["a.nii.gz", "b.nrrd", "c.nhdr", "sub"]);
    }
    use rand::SeedableRng;

    fn cfg() -> TrainConfig {
        TrainConfig {
            data: vec!["x".into()],
            modality: DataModality::Ct,
            image_size: 8,
            min_foreground: 0.0,
            ..Default::default()
        }
    }

    fn volume(nz: usize, value: f32) -> Volume {
        // 8 x 6 slices whose voxels hold the slice index plus `value` HU.
        let mut data = Vec::new();
        for k in 0..nz {
            data.extend(std::iter::repeat_n(value + k as f32, 48));
        }
        Volume::new(data, [8, 6, nz, 1], [1.0, 1.0, 1.0], Modality::Ct)
    }

    #[test]
    fn single_volume_holds_out_a_contiguous_slab_with_gaps() {
        let mut c = cfg();
        c.val_fraction = 0.2;
        c.val_gap = 3;
        let ds = DataSet::from_volumes(vec![("v".into(), volume(40, 0.0))], &c).unwrap();
        let val: Vec<usize> = ds.val.iter().map(|s| s.index).collect();
        let train: Vec<usize> = ds.train.iter().map(|s| s.index).collect();
        assert_eq!(val, (16..24).collect::<Vec<_>>());
        // 3 slices left out on each side, nothing shared.
        assert!(train.iter().all(|k| *k < 13 || *k >= 27), "{train:?}");
        assert_eq!(train.len(), 40 - 8 - 6);
        // CT map: (HU - hu_min) / (hu_max - hu_min) with the defaults -1000 and 2000.
        assert!((ds.val[0].data[0] - 1016.0 / 3000.0).abs() < 1e-6);
    }

    #[test]
    fn several_volumes_hold_out_whole_volumes() {
        let mut c = cfg();
        c.val_fraction = 0.3;
        let vols = (0..4)
            .map(|i| (format!("v{i}"), volume(5, 100.0 * i as f32)))
            .collect();
        let ds = DataSet::from_volumes(vols, &c).unwrap();
        assert!(ds.val.iter().all(|s| s.volume >= 2));
        assert!(ds.train.iter().all(|s| s.volume < 2));
        assert_eq!((ds.train.len(), ds.val.len()), (10, 10));
    }

    #[test]
    fn phantoms_add_independent_ct_slices_with_a_held_out_share() {
        let mut c = cfg();
        c.data.clear();
        c.phantoms = 10;
        c.val_fraction = 0.2;
        let ds = DataSet::from_volumes(vec![], &c).unwrap();
        assert_eq!((ds.train.len(), ds.val.len()), (8, 2));
        // A body (water is (0 HU + 1000) / 3000) in the middle, air (0) in the corner.
        let s = &ds.train[0];
        assert!(s.data[4 * 8 + 4] > 0.1, "{:?}", s.data);
        assert_eq!(s.data[0], 0.0);
        c.modality = DataModality::Mr;
        assert!(DataSet::from_volumes(vec![], &c).is_err());
    }

    #[test]
    fn crops_pad_and_flip() {
        let s = Slice {
            data: (0..6).map(|x| x as f32).collect(),
            h: 2,
            w: 3,
            volume: 0,
            index: 0,
        };
        // 4x4 window: the 2x3 slice padded, centred (1 row above, 0 columns left).
        let c = crop(&s, 4, 0, 0, false, false);
        assert_eq!(&c[4..8], &[0.0, 1.0, 2.0, 0.0]);
        let f = crop(&s, 4, 0, 0, true, false);
        assert_eq!(&f[4..8], &[0.0, 2.0, 1.0, 0.0]);
        let big = Slice {
            data: (0..16).map(|x| x as f32).collect(),
            h: 4,
            w: 4,
            volume: 0,
            index: 0,
        };
        assert_eq!(
            crop(&big, 2, 1, 2, false, false),
            vec![6.0, 7.0, 10.0, 11.0]
        );
    }

    #[test]
    fn batches_are_reproducible_from_the_stream() {
        let ds = DataSet::from_volumes(vec![("v".into(), volume(30, 0.0))], &cfg()).unwrap();
        let b1 = ds.train_batch(
            &mut ChaCha20Rng::seed_from_u64(5),
            3,
            8,
            &cfg(),
            Device::Cpu,
        );
        let b2 = ds.train_batch(
            &mut ChaCha20Rng::seed_from_u64(5),
            3,
            8,
            &cfg(),
            Device::Cpu,
        );
        assert!(b1.equal(&b2));
        assert_eq!(b1.size(), vec![3, 1, 8, 8]);
    }
}
