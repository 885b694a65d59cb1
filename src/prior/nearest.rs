//! The training-free nearest-neighbour prior (paper 000; method.md, "Nearest-neighbour score
//! estimator"). For a reference set `{x_i}` of N images and VE noise `sigma`,
//!
//!   `score(z, sigma) = (mu - z) / sigma^2`,   `mu = sum_i w_i x_i / sum_i w_i`,
//!
//! - exact empirical score: `w_i = exp(-|z - x_i|^2 / 2 sigma^2)` over all i, normalised with
//!   log-sum-exp (at sigma = 0.01 and 65536 pixels the exponents reach -1e5 or lower: plain
//!   `exp` underflows to 0/0);
//! - KNN estimator (paper 000, eq. 11 and 13, Algorithm 1): proposal `q` proportional to
//!   `p(z | x_i)` on the k nearest neighbours and to `p(z | x_k)` (the farthest of them) on the
//!   other N - k ("tail bucket"); n draws from `q`; self-normalised weights `p / q`.
//!
//! Distances are computed in double precision: `|z|^2 + |x|^2 - 2 z.x` in f32 loses ~1e-3 of
//! absolute accuracy at 65536 pixels, which the factor `1 / 2 sigma^2 = 5000` turns into
//! errors of e^5 in the weights.
//!
//! The neighbour search here is brute force (no FAISS index), so the KNN estimator saves the
//! weighted average over N, not the search. An exact empirical score memorises: reverse
//! diffusion with it returns reference images; report [`NearestNeighbourPrior::nearest`] with
//! every reconstruction made with this prior.

use super::{Normalisation, ScoreModel};
use crate::io::{read_volume, ReadOptions};
use crate::sde::VeSde;
use anyhow::{bail, Context, Result};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

/// `sigma_min` of the nearest-neighbour prior (images in [0, 1], method.md).
pub const SIGMA_MIN: f64 = 0.01;

/// Rows of the reference set converted to f64 at a time.
const CHUNK: i64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// Exact empirical score over all N references.
    Exact,
    /// KNN self-normalised importance sampling with `k` neighbours and `n` draws.
    Knn { k: usize, n: usize },
}

impl Estimator {
    /// Paper 000 uses k = 2048, n = 256 on 50000 images; scaled down for reference sets of a
    /// few hundred slices.
    pub fn default_knn() -> Self {
        Estimator::Knn { k: 64, n: 64 }
    }
}

pub struct NearestNeighbourPrior {
    /// `[N, D]` f32, model space.
    reference: Tensor,
    /// `[N]` f64 squared norms.
    ref_sq: Tensor,
    /// `[C, H, W]` of one image.
    shape: [i64; 3],
    estimator: Estimator,
    sde: VeSde,
    normalisation: Normalisation,
    rng: Mutex<ChaCha8Rng>,
}

impl NearestNeighbourPrior {
    /// `reference`: `[N, C, H, W]` images already in model space. `sigma_max` is set to the
    /// largest pairwise distance between them (chapter 6, technique 1).
    pub fn new(
        reference: &Tensor,
        estimator: Estimator,
        normalisation: Normalisation,
    ) -> Result<Self> {
        let s = reference.size();
        if s.len() != 4 || s[0] < 1 {
            bail!("nearest-neighbour prior: the reference set must be [N, C, H, W] with N >= 1 (got {s:?})");
        }
        if let Estimator::Knn { k, n } = estimator {
            if k < 1 || n < 1 {
                bail!("nearest-neighbour prior: k and n must be at least 1 (got k = {k}, n = {n})");
            }
        }
        let reference = reference
            .to_kind(Kind::Float)
            .reshape([s[0], -1])
            .contiguous();
        if !bool::try_from(reference.isfinite().all())? {
            bail!("nearest-neighbour prior: the reference set holds NaN or Inf values");
        }
        let ref_sq =
            reference
                .to_kind(Kind::Double)
                .square()
                .sum_dim_intlist(1, false, Kind::Double);
        let mut prior = NearestNeighbourPrior {
            reference,
            ref_sq,
            shape: [s[1], s[2], s[3]],
            estimator,
            sde: VeSde {
                sigma_min: SIGMA_MIN,
                sigma_max: 1.0,
            },
            normalisation,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(0)),
        };
        let d2 = prior.squared_distances(&prior.reference.shallow_clone());
        let max_d = f64::try_from(d2.max())?.max(0.0).sqrt();
        // A single image (or identical ones) has no spread; keep the schedule well defined.
        prior.sde = VeSde::new(SIGMA_MIN, max_d.max(10.0 * SIGMA_MIN))?;
        Ok(prior)
    }

    /// Every slice of every volume in `folder` (NIfTI files, DICOM files or series folders),
    /// normalised to model space by its modality's default map.
    pub fn from_folder(folder: &Path, estimator: Estimator, device: Device) -> Result<Self> {
        let mut entries: Vec<_> = std::fs::read_dir(folder)
            .with_context(|| format!("knn:{}: cannot list the reference folder", folder.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        let mut sources: Vec<std::path::PathBuf> = Vec::new();
        let mut has_loose_dicom = false;
        for p in entries {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if p.is_dir() || crate::io::is_volume_file(&p) {
                sources.push(p);
            } else if name.ends_with(".dcm") || (!name.contains('.') && !name.is_empty()) {
                // DICOM files often have no extension (e.g. DICOMDIR layouts).
                has_loose_dicom = true;
            }
        }
        if has_loose_dicom {
            sources.insert(0, folder.to_path_buf());
        }
        if sources.is_empty() {
            bail!(
                "knn:{}: no NIfTI files, DICOM files or series folders found to use as reference images",
                folder.display()
            );
        }
        let mut data: Vec<f32> = Vec::new();
        let mut size: Option<(usize, usize)> = None;
        let mut n = 0usize;
        let mut normalisation = None;
        for src in &sources {
            let vol = read_volume(src, &ReadOptions::default()).with_context(|| {
                format!("knn:{}: reference {}", folder.display(), src.display())
            })?;
            let this = (vol.ny(), vol.nx());
            match size {
                None => size = Some(this),
                Some(s) if s != this => bail!(
                    "knn:{}: {} has {}x{} slices but earlier references have {}x{}; \
                     all reference images must share one size",
                    folder.display(),
                    src.display(),
                    this.1,
                    this.0,
                    s.1,
                    s.0
                ),
                _ => {}
            }
            let norm = match vol.modality {
                crate::Modality::Ct => Normalisation::ct_default(),
                crate::Modality::Mr => Normalisation::mr_default(),
                crate::Modality::Other => Normalisation::mr_default(),
            };
            let scaling = norm
                .fit(&vol.data)
                .with_context(|| format!("{}", src.display()))?;
            data.extend(scaling.to_model(&vol.data));
            n += vol.n_slices();
            normalisation.get_or_insert(norm);
        }
        let (h, w) = size.expect("at least one source");
        let reference = Tensor::from_slice(&data)
            .reshape([n as i64, 1, h as i64, w as i64])
            .to_device(device);
        Self::new(&reference, estimator, normalisation.unwrap_or_default())
    }

    pub fn len(&self) -> i64 {
        self.reference.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The reference images, `[N, C, H, W]`.
    pub fn reference(&self) -> Tensor {
        let [c, h, w] = self.shape;
        self.reference.reshape([-1, c, h, w])
    }

    /// `|z_b - x_i|^2` in f64, `[B, N]`; `z` is `[B, D]` or `[B, C, H, W]`.
    pub fn squared_distances(&self, z: &Tensor) -> Tensor {
        let b = z.size()[0];
        let z = z.reshape([b, -1]).to_kind(Kind::Double);
        let z_sq = z.square().sum_dim_intlist(1, true, Kind::Double);
        let n = self.len();
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = CHUNK.min(n - start);
            let x = self.reference.narrow(0, start, len).to_kind(Kind::Double);
            parts.push(z.matmul(&x.tr()) * -2.0);
            start += len;
        }
        let cross = Tensor::cat(&parts, 1);
        (cross + z_sq + self.ref_sq.unsqueeze(0)).clamp_min(0.0)
    }

    /// Index and distance of the nearest reference image for each of `x`'s `B` images.
    pub fn nearest(&self, x: &Tensor) -> Result<Vec<(i64, f64)>> {
        let d2 = self.squared_distances(x);
        let (v, i) = d2.min_dim(1, false);
        let v = Vec::<f64>::try_from(v.sqrt().to_device(Device::Cpu))?;
        let i = Vec::<i64>::try_from(i.to_device(Device::Cpu))?;
        Ok(i.into_iter().zip(v).collect())
    }

    /// Log-likelihoods `log p(z | x_i) = -|z - x_i|^2 / 2 sigma^2` (constants dropped), `[B, N]`.
    fn log_likelihoods(&self, z: &Tensor, sigma: &Tensor) -> Tensor {
        let var2 = sigma.to_kind(Kind::Double).square().reshape([-1, 1]) * 2.0;
        -self.squared_distances(z) / var2
    }

    /// Exact posterior mean `E[x | z]` over all references, `[B, D]`.
    pub fn exact_mean(&self, z: &Tensor, sigma: &Tensor) -> Tensor {
        // softmax = exp(l - logsumexp(l)): the log-sum-exp normalisation.
        let w = self.log_likelihoods(z, sigma).softmax(1, Kind::Double);
        w.to_kind(Kind::Float).matmul(&self.reference)
    }

    /// The KNN self-normalised estimate of `E[x | z]`, `[B, D]` (paper 000, Algorithm 1).
    pub fn knn_mean(&self, z: &Tensor, sigma: &Tensor, k: usize, n: usize) -> Result<Tensor> {
        let big_n = self.len() as usize;
        let k = k.min(big_n);
        let b = z.size()[0];
        let logp = self.log_likelihoods(z, sigma);
        let (top_l, top_i) = logp.topk(k as i64, 1, true, true);
        let top_l = Vec::<f64>::try_from(top_l.to_device(Device::Cpu).flatten(0, -1))?;
        let top_i = Vec::<i64>::try_from(top_i.to_device(Device::Cpu).flatten(0, -1))?;
        let logp_cpu = Vec::<f64>::try_from(logp.to_device(Device::Cpu).flatten(0, -1))?;
        let mut weights = vec![0f32; b as usize * big_n];
        let mut rng = self.rng.lock().expect("rng lock");
        for row in 0..b as usize {
            let l = &top_l[row * k..(row + 1) * k];
            let idx = &top_i[row * k..(row + 1) * k];
            let l_k = l[k - 1];
            let n_tail = big_n - k;
            // Proposal masses: the k neighbours, then the tail bucket of mass
            // (N - k) p(z | x_k) (eq. 13), all relative to the nearest neighbour's p(z | x_1) so
            // none overflows (relative to p(z | x_k), as written in the paper, they reach
            // exp(1e5) at small sigma). Only the proposal is rescaled; the weights below are not.
            let l_1 = l[0];
            let mut masses: Vec<f64> = l.iter().map(|li| (li - l_1).exp()).collect();
            masses.push(n_tail as f64 * (l_k - l_1).exp());
            let pick = WeightedIndex::new(&masses)
                .context("KNN estimator: proposal weights are not finite")?;
            let mut sorted_idx: Vec<i64> = idx.to_vec();
            sorted_idx.sort_unstable();
            let out = &mut weights[row * big_n..(row + 1) * big_n];
            for _ in 0..n {
                let a = pick.sample(&mut *rng);
                if a < k {
                    // w = p / q = Z_q for every neighbour; Z_q cancels in the normalisation.
                    out[idx[a] as usize] += 1.0;
                } else {
                    // Uniform over the N - k non-neighbours; w = Z_q p(z|x_j) / p(z|x_k).
                    let mut j = rng.random_range(0..n_tail) as i64;
                    for s in &sorted_idx {
                        if *s <= j {
                            j += 1;
                        }
                    }
                    let lj = logp_cpu[row * big_n + j as usize];
                    out[j as usize] += (lj - l_k).exp() as f32;
                }
            }
            let total: f32 = out.iter().sum();
            out.iter_mut().for_each(|w| *w /= total);
        }
        let w = Tensor::from_slice(&weights)
            .reshape([b, big_n as i64])
            .to_device(self.reference.device());
        Ok(w.matmul(&self.reference))
    }
}

impl ScoreModel for NearestNeighbourPrior {
    fn score(&self, x: &Tensor, sigma: &Tensor) -> Result<Tensor> {
        let s = x.size();
        if s.len() != 4 || [s[1], s[2], s[3]] != self.shape {
            bail!(
                "nearest-neighbour prior: input {:?} does not match the reference images {:?}",
                s,
                self.shape
            );
        }
        let z = x.reshape([s[0], -1]);
        let mu = match self.estimator {
            Estimator::Exact => self.exact_mean(&z, sigma),
            Estimator::Knn { k, n } => self.knn_mean(&z, sigma, k, n)?,
        };
        let var = sigma.to_kind(Kind::Float).square().reshape([-1, 1]);
        Ok(((mu - z.to_kind(Kind::Float)) / var).reshape(s.as_slice()))
    }
    fn image_size(&self) -> [i64; 2] {
        [self.shape[1], self.shape[2]]
    }
    fn channels(&self) -> i64 {
        self.shape[0]
    }
    fn sde(&self) -> VeSde {
        self.sde
    }
    fn normalisation(&self) -> &Normalisation {
        &self.normalisation
    }
    fn device(&self) -> Device {
        self.reference.device()
    }
    fn reseed(&self, seed: u64) {
        *self.rng.lock().expect("rng lock") = ChaCha8Rng::seed_from_u64(seed);
    }
    fn nearest_reference_distance(&self, x: &Tensor) -> Result<Option<Vec<f64>>> {
        let d2 = self.squared_distances(&x.to_device(self.device()));
        let (d2_min, nearest) = d2.min_dim(1, false);
        let ref_sq = self.ref_sq.index_select(0, &nearest);
        let rel = (d2_min.clamp_min(0.0) / ref_sq.clamp_min(1e-30)).sqrt();
        Ok(Some(Vec::<f64>::try_from(rel.to_kind(Kind::Double))?))
    }
    fn describe(&self) -> String {
        match self.estimator {
            Estimator::Exact => {
                format!("exact empirical score over {} reference images", self.len())
            }
            Estimator::Knn { k, n } => format!(
                "KNN score estimator (k = {k}, n = {n}) over {} reference images",
                self.len()
            ),
        }
    }
}
