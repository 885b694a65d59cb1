//! **Read**: the prior, checked against the task, and the job's input: an image volume (the
//! measurement is then simulated from it and it is the reference) or a measurement file (the
//! operator and `y` come from the file; there is no reference).
//!
//! Everything between read and write happens in the prior's model space (CT: `ops::ct::hu`'s
//! attenuation scale, MR: per-volume percentile scaling); [`Scaling`] goes back to HU / scanner
//! intensity on output.

use crate::io::kspace::{self, RawKspace};
use crate::io::measurement::{self, Measurement, MeasurementModality};
use crate::io::{self, ReadOptions};
use crate::job::{Fit, InvalidSettings, JobSpec, Task, BEAM_KEYS};
use crate::ops::mri::masks::MaskKind;
use crate::prior::normalisation::{Normalisation, Scaling};
use crate::prior::ScoreModel;
use crate::simulate::CtTask;
pub use crate::tensor::Padding;
use crate::volume::{Modality, Volume};
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use tch::{Device, Tensor};

/// The prior, checked against the task before any work.
pub fn load_model(spec: &JobSpec, device: Device) -> Result<Box<dyn ScoreModel>> {
    let Some(prior) = &spec.model else {
        return Err(InvalidSettings("no prior given: pass --model NAME (shipped, see models/), a .safetensors or .pt file, or knn:FOLDER".into()).into());
    };
    let model = prior.load(device)?;
    let ct_prior = matches!(model.normalisation(), Normalisation::CtAttenuation { .. });
    let mr_prior = matches!(model.normalisation(), Normalisation::MrPerVolume { .. });
    match spec.task {
        Task::Ct | Task::Mar if mr_prior => bail!(
            "prior {prior}: it was trained on MR images (per-volume intensity scaling); the {} command needs a CT prior (HU)",
            spec.task.name()
        ),
        Task::Mri if ct_prior => bail!(
            "prior {prior}: it was trained on CT images (HU); the mri command needs an MR prior"
        ),
        _ => {}
    }
    Ok(model)
}

/// The padding of `h x w` slices to the prior's `model` grid under `--fit`.
fn fit_padding(h: usize, w: usize, model: [i64; 2], mode: Fit, input: &Path) -> Result<Padding> {
    let (mh, mw) = (model[0] as usize, model[1] as usize);
    if (h, w) != (mh, mw) {
        if mode == Fit::Error {
            bail!(
                "{}: slices are {w}x{h} but the prior works on {mw}x{mh}; use a prior trained at \
                 this size, or pass --fit resample (put the scan on the prior's grid as its \
                 training data were, then pad) or --fit pad (zero-pad smaller slices)",
                input.display()
            );
        }
        if h > mh || w > mw {
            match mode {
                // Only a prior with a pixel size gets here: its grid covers less than the scan.
                Fit::Resample => bail!(
                    "{}: at the prior's pixel size the slices are {w}x{h}, larger than its {mw}x{mh} \
                     grid (the scan's field of view is wider than the prior's); crop the scan, or \
                     use a prior trained with a larger image_size or pixel_mm",
                    input.display()
                ),
                _ => bail!(
                    "{}: slices are {w}x{h}, larger than the prior's {mw}x{mh}; --fit pad only pads \
                     (--fit resample puts the scan on the prior's grid)",
                    input.display()
                ),
            }
        }
    }
    Ok(Padding { h, w, mh, mw })
}

/// An image input, read and fitted to the prior.
pub struct ImageInput {
    /// The volume, on the prior's grid when `--fit resample` asked for it.
    pub vol: Volume,
    /// The slices reconstructed.
    pub ks: Vec<usize>,
    /// Model space <-> scanner values, fitted on the whole volume at full resolution.
    pub scaling: Scaling,
    pub padding: Padding,
    /// What `--fit resample` did to the scan, in words for the report (None: nothing).
    pub resampled: Option<String>,
    /// A slice for tuning the TV weight, away from the reconstructed ones.
    pub validation_slice: Option<usize>,
}

impl ImageInput {
    /// The host slices `ks` (scanner values) as a `[B, 1, ny, nx]` tensor.
    pub fn slices(&self, ks: &[usize]) -> Result<Tensor> {
        crate::tensor::slices_to_tensor(&self.vol, ks, Device::Cpu)
    }
}

/// A raw k-space file (fastMRI or ISMRMRD HDF5, Siemens twix) and the slices to reconstruct.
pub struct KspaceInput {
    pub raw: RawKspace,
    pub ks: Vec<usize>,
}

/// What a job reads.
pub enum Input {
    Image(ImageInput),
    Measurement(Measurement),
    Kspace(KspaceInput),
}

/// Read the job's input (`spec` validated, the prior loaded).
pub fn read(spec: &JobSpec, model: &dyn ScoreModel) -> Result<Input> {
    if is_measurement(&spec.input) {
        let m = measurement::read_measurement(&spec.input)?;
        match m.meta.modality {
            MeasurementModality::Ct => check_ct_fits(spec, &m, model)?,
            MeasurementModality::Mri => check_mri_fits(spec, &m, model)?,
        }
        return Ok(Input::Measurement(m));
    }
    if kspace::is_kspace_file(&spec.input) {
        return read_kspace(spec, model);
    }
    let mut vol = io::read_volume(
        &spec.input,
        &ReadOptions {
            series_uid: spec.series.clone(),
        },
    )?;
    if spec.anonymise {
        vol.provenance.anonymise();
    }
    check_modality(spec, &vol)?;
    if vol.modality == Modality::Other {
        // NIfTI does not say; the task does.
        vol.modality = if spec.task == Task::Mri {
            Modality::Mr
        } else {
            Modality::Ct
        };
    }
    if vol.nt() > 1 {
        bail!(
            "{}: a 4-D volume ({} frames); reconstruct one frame at a time",
            spec.input.display(),
            vol.nt()
        );
    }
    // Scaled before any resampling, as the training data were (MR: the volume's percentile).
    let scaling = model.normalisation().fit(&vol.data).with_context(|| {
        format!(
            "{}: scaling to the prior's model space",
            spec.input.display()
        )
    })?;
    let (vol, resampled) = fit_grid(spec.fit, vol, model)
        .with_context(|| format!("{}: resampling to the prior's grid", spec.input.display()))?;
    // Slice numbers count along the grid the prior sees (RAS+ k for a prior with a pixel size).
    let ks = choose_slices(spec, vol.nz())?;
    let padding = fit_padding(
        vol.ny(),
        vol.nx(),
        model.image_size(),
        spec.fit,
        &spec.input,
    )?;
    let validation_slice = validation_slice(&vol, &ks);
    Ok(Input::Image(ImageInput {
        vol,
        ks,
        scaling,
        padding,
        resampled,
        validation_slice,
    }))
}

fn check_modality(spec: &JobSpec, vol: &Volume) -> Result<()> {
    match (spec.task, vol.modality) {
        (Task::Ct | Task::Mar, Modality::Mr) => bail!(
            "{}: this is an MR image; the {} command reconstructs CT (use `scorerecon mri`)",
            spec.input.display(),
            spec.task.name()
        ),
        (Task::Mri, Modality::Ct) => bail!(
            "{}: this is a CT image; the mri command reconstructs MR (use `scorerecon ct` or `mar`)",
            spec.input.display()
        ),
        _ => Ok(()),
    }
}

fn choose_slices(spec: &JobSpec, nz: usize) -> Result<Vec<usize>> {
    let ks: Vec<usize> = if spec.all_slices {
        (0..nz).collect()
    } else if spec.slices.is_empty() {
        vec![nz / 2]
    } else {
        spec.slices.clone()
    };
    for &k in &ks {
        if k >= nz {
            bail!(
                "{}: slice {k} does not exist (the volume has {nz} slices, 0..={})",
                spec.input.display(),
                nz.saturating_sub(1)
            );
        }
    }
    Ok(ks)
}

/// A raw k-space file fixes its coils and noise, and, when it is undersampled, its mask: flags
/// that would change them are errors. A fully sampled file takes a retrospective mask from
/// `--acceleration`, `--center-fraction` and `--mask`.
fn check_kspace_flags(spec: &JobSpec, given: &GivenFlags) -> Result<()> {
    let file = spec.input.display();
    ensure!(
        given.views.is_empty()
            && given.full_views.is_none()
            && given.limited_angle.is_none()
            && given.photons.is_none()
            && given.beam.is_empty(),
        "{file}: CT flags (--views, --full-views, --limited-angle, --photons, beam geometry) given for raw MRI k-space"
    );
    ensure!(
        given.snr_db.is_none(),
        "{file}: --snr-db simulates noise; raw k-space already carries its own"
    );
    ensure!(
        !given.coils,
        "{file}: --coils simulates a coil array; raw k-space has its own coils"
    );
    if !given.acceleration.is_empty() || given.center_fraction.is_some() || given.mask.is_some() {
        let raw = kspace::read_kspace(&spec.input)?;
        ensure!(
            raw.mask.is_none(),
            "{file}: the k-space is undersampled and fixes its own mask; --acceleration, \
             --center-fraction and --mask apply to fully sampled k-space only"
        );
    }
    Ok(())
}

/// A raw k-space file for the `mri` command, on the prior's grid: the file's slices chosen as an
/// image's are (the middle one by default).
fn read_kspace(spec: &JobSpec, model: &dyn ScoreModel) -> Result<Input> {
    let file = spec.input.display();
    ensure!(
        spec.task == Task::Mri,
        "{file}: raw MRI k-space; use `scorerecon mri`"
    );
    let raw = kspace::read_kspace(&spec.input)?;
    let &[slices, _, rows, cols] = raw.kspace.shape() else {
        unreachable!("RawKspace holds [slices, coils, rows, cols]")
    };
    let [mh, mw] = model.image_size();
    ensure!(
        (rows as i64, cols as i64) == (mh, mw),
        "{file}: the k-space is {cols}x{rows} (after readout oversampling is removed) but the prior \
         works on {mw}x{mh} images; use a prior trained at {cols}x{rows}"
    );
    let ks = choose_slices(spec, slices)?;
    Ok(Input::Kspace(KspaceInput { raw, ks }))
}

/// `--fit resample`: a prior that records its pixel size gets the scan in RAS+ axis order at
/// that pixel size (`regrid.rs`, as its training slices were made); any other prior gets the
/// slices averaged down by the smallest integer factor that brings them within its grid.
/// Returns the volume and a sentence for the report (None when nothing was done).
fn fit_grid(fit: Fit, vol: Volume, model: &dyn ScoreModel) -> Result<(Volume, Option<String>)> {
    if fit != Fit::Resample {
        return Ok((vol, None));
    }
    let [mh, mw] = model.image_size().map(|s| s as usize);
    let (nx, ny) = (vol.nx(), vol.ny());
    if let Some(p) = model.pixel_mm() {
        let out = vol.to_canonical().resample_in_plane(p)?;
        let note = format!(
            "--fit resample: the scan ({nx}x{ny}, {:.3}x{:.3} mm) was put in RAS+ axis order and \
             resampled in-plane to the prior's {p} mm pixels ({}x{}), as its training slices were; \
             the reference and every output are on that grid.",
            vol.spacing[0],
            vol.spacing[1],
            out.nx(),
            out.ny()
        );
        return Ok((out, Some(note)));
    }
    let k = ny.div_ceil(mh).max(nx.div_ceil(mw)).max(1);
    if k == 1 {
        return Ok((vol, None));
    }
    let out = vol.average_down(k);
    let note = format!(
        "--fit resample: slices were averaged down {k}x in-plane to {}x{} (as the prior's \
         training data were); the reference and every output are on that grid.",
        out.nx(),
        out.ny()
    );
    Ok((out, Some(note)))
}

/// A slice for tuning, away from the reconstructed ones (>= 8 slices from each), the nearest to
/// the first reconstructed slice; None when the volume has no such slice.
fn validation_slice(vol: &Volume, ks: &[usize]) -> Option<usize> {
    let far = |k: usize| ks.iter().all(|&s| (s as i64 - k as i64).abs() >= 8);
    let k0 = ks[0] as i64;
    (0..vol.nz())
        .filter(|&k| far(k))
        .min_by_key(|&k| (k as i64 - k0).abs())
}

/// The files a job reads, which its output may not replace or hold: the input, and for a
/// measurement its data and mask files (which may sit in a subfolder of the sidecar's).
pub fn files_read(spec: &JobSpec) -> Vec<std::path::PathBuf> {
    let mut files = vec![spec.input.clone()];
    if is_measurement(&spec.input) {
        if let Ok(meta) = measurement::read_sidecar(&spec.input) {
            let dir = spec.input.parent().unwrap_or(Path::new("."));
            files.push(dir.join(&meta.data_file));
            files.push(dir.join(&meta.mask_file));
        }
    }
    files
}

/// Whether `path` names a measurement sidecar (a `.json` file carrying the format tag).
pub fn is_measurement(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json") && path.is_file()
}

/// What a CT measurement says about its geometry, checked against the command and the prior
/// before any work: a CT measurement for `ct` (sparse-view, limited-angle) or `mar`, with the
/// prior's image size.
fn check_ct_fits(spec: &JobSpec, m: &Measurement, model: &dyn ScoreModel) -> Result<()> {
    let file = spec.input.display();
    let Some(ct) = &m.meta.ct else {
        bail!("{file}: a CT measurement needs its \"ct\" geometry");
    };
    match (spec.task, &ct.task) {
        (Task::Mri, _) => bail!("{file}: a CT sinogram; the mri command needs MRI k-space"),
        (Task::Ct, CtTask::Mar { .. }) => {
            bail!("{file}: a metal-artifact measurement; use `scorerecon mar`")
        }
        (Task::Mar, CtTask::SparseView { .. } | CtTask::LimitedAngle { .. }) => {
            bail!("{file}: a sparse-view or limited-angle measurement; use `scorerecon ct`")
        }
        _ => {}
    }
    let [mh, mw] = model.image_size();
    let n = ct.geometry.image_size as i64;
    ensure!(
        (n, n) == (mh, mw),
        "{file}: the measurement is of a {n}x{n} image but the prior works on {mw}x{mh}; \
         simulate at the prior's size or use a prior trained at {n}x{n}"
    );
    Ok(())
}

/// The same for MRI k-space: the mri command, and a k-space grid equal to the prior's image.
fn check_mri_fits(spec: &JobSpec, m: &Measurement, model: &dyn ScoreModel) -> Result<()> {
    let file = spec.input.display();
    ensure!(
        spec.task == Task::Mri,
        "{file}: an MRI k-space measurement; use `scorerecon mri`"
    );
    let [_, h, w] = m.meta.shape;
    let [mh, mw] = model.image_size();
    ensure!(
        (h as i64, w as i64) == (mh, mw),
        "{file}: the k-space is {w}x{h} but the prior works on {mw}x{mh} images; measure on the \
         prior's grid (`scorerecon simulate --task mri --downsample K --pad-to N`) or use a prior \
         trained at {w}x{h}"
    );
    Ok(())
}

/// The measurement settings a user gave (None / empty where not given): the job's settings whose
/// keys the user wrote, on the command line or in a manifest entry (a preset config's values are
/// defaults, not statements about a file, so they are not "given").
#[derive(Clone, Debug, Default)]
pub struct GivenFlags {
    pub slices: bool,
    pub views: Vec<usize>,
    pub full_views: Option<usize>,
    pub limited_angle: Option<f64>,
    pub photons: Option<f64>,
    pub acceleration: Vec<f64>,
    pub center_fraction: Option<f64>,
    pub mask: Option<MaskKind>,
    pub snr_db: Option<f64>,
    pub coils: bool,
    /// The beam settings given (`--geometry` and the fan-beam scanner's), by key.
    pub beam: Vec<&'static str>,
}

impl GivenFlags {
    /// The settings of `spec` whose keys appear in `given`.
    pub fn of(spec: &JobSpec, given: &serde_yaml_ng::Mapping) -> Self {
        let has = |k: &str| given.contains_key(k);
        GivenFlags {
            slices: (has("slices") && !spec.slices.is_empty())
                || (has("all_slices") && spec.all_slices),
            views: if has("views") {
                spec.views.clone()
            } else {
                vec![]
            },
            full_views: has("full_views").then_some(spec.full_views),
            limited_angle: spec.limited_angle.filter(|_| has("limited_angle")),
            photons: spec.photons.filter(|_| has("photons")),
            acceleration: if has("acceleration") {
                spec.acceleration.clone()
            } else {
                vec![]
            },
            center_fraction: has("center_fraction").then_some(spec.center_fraction),
            mask: has("mask").then_some(spec.mask),
            snr_db: spec.snr_db.filter(|_| has("snr_db")),
            coils: has("coils"),
            beam: BEAM_KEYS.into_iter().filter(|k| has(k)).collect(),
        }
    }
}

/// Settings that describe a measurement's geometry must agree with the file's (the file wins; a
/// contradiction is an error rather than a silent choice). Nothing to check for an image input.
pub fn check_flags(spec: &JobSpec, given: &GivenFlags) -> Result<()> {
    let path = spec.input.as_path();
    if kspace::is_kspace_file(path) {
        return check_kspace_flags(spec, given);
    }
    if !is_measurement(path) {
        return Ok(());
    }
    ensure!(
        !given.slices,
        "{}: a measurement file is reconstructed whole; --slice and --all-slices (`slices`, `all_slices` in a manifest) select slices of an image",
        path.display()
    );
    let views = given.views.as_slice();
    let (full_views, limited_angle, photons) =
        (given.full_views, given.limited_angle, given.photons);
    // The sidecar holds the geometry; the data are read (and checked) by the job itself.
    let meta = measurement::read_sidecar(path)?;
    let file = path.display();
    if meta.modality == MeasurementModality::Mri {
        let mri = meta.mri.clone().unwrap_or_default();
        let differs = |flag: Option<f64>, file_value: Option<f64>| match (flag, file_value) {
            (Some(a), Some(b)) => (a - b).abs() > 1e-9,
            (Some(_), None) => true,
            _ => false,
        };
        let acc = match given.acceleration.as_slice() {
            [] => None,
            [r] => Some(*r),
            _ => bail!("{file}: a measurement file has one acceleration; --acceleration sweeps need an image"),
        };
        let file_mask = mri.mask.as_deref().and_then(|m| m.parse::<MaskKind>().ok());
        ensure!(
            !differs(acc, mri.acceleration)
                && !differs(given.center_fraction, mri.center_fraction)
                && given.mask.is_none_or(|k| Some(k) == file_mask),
            "{file}: --acceleration {acc:?} / --center-fraction {:?} / --mask {:?} contradict the \
             measurement (acceleration {:?}, centre fraction {:?}, mask {:?}); a measurement file \
             fixes its own mask",
            given.center_fraction,
            given.mask.map(MaskKind::name),
            mri.acceleration,
            mri.center_fraction,
            mri.mask
        );
        ensure!(
            given.snr_db.is_none(),
            "{file}: --snr-db simulates noise; a measurement file already carries its own"
        );
        ensure!(
            views.is_empty() && full_views.is_none() && limited_angle.is_none() && photons.is_none(),
            "{file}: CT flags (--views, --full-views, --limited-angle, --photons) given for MRI k-space"
        );
        return Ok(());
    }
    let Some(ct) = &meta.ct else { return Ok(()) };
    ensure!(
        !spec.rebin || ct.geometry.fan.is_some(),
        "{file}: --rebin turns fan-beam data into parallel beam; this measurement is parallel beam already (leave --rebin out)"
    );
    ensure!(
        given.beam.is_empty(),
        "{file}: --{} given, but a measurement file fixes its own beam geometry (its \"ct\".\"geometry\"; docs/formats.md)",
        given.beam.join(", --").replace('_', "-")
    );
    if let Some(f) = full_views {
        ensure!(
            f == ct.geometry.n_angles(),
            "{file}: --full-views {f} contradicts the measurement's {} angles",
            ct.geometry.n_angles()
        );
    }
    match (&ct.task, views, limited_angle) {
        (_, [], None) => {}
        (CtTask::SparseView { views: v }, [w], None) if w == v => {}
        (CtTask::LimitedAngle { wedge_deg, .. }, [], Some(w)) if (w - wedge_deg).abs() < 1e-9 => {}
        (task, _, _) => bail!(
            "{file}: --views {views:?} / --limited-angle {limited_angle:?} contradict the \
             measurement ({task:?}); a measurement file fixes its own views"
        ),
    }
    ensure!(
        photons.is_none(),
        "{file}: --photons simulates noise; a measurement file already carries its own"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::{Mapping, Value};

    fn yaml(text: &str) -> Mapping {
        match serde_yaml_ng::from_str(text).unwrap() {
            Value::Mapping(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn only_the_keys_the_user_wrote_are_given() {
        // A preset's `views: [23]` and `full_views` are in the spec but were not written for
        // this input.
        let written = yaml("input: m.json\nphotons: 1.0e5\nslices: [3]\n");
        let mut preset = yaml("views: [23]\nfull_views: 180\n");
        preset.extend(written.clone());
        let spec = JobSpec::from_yaml(Some(Task::Ct), &preset, "test").unwrap();
        assert_eq!(spec.views, vec![23]);
        let given = GivenFlags::of(&spec, &written);
        assert!(given.views.is_empty() && given.full_views.is_none());
        assert_eq!(given.photons, Some(1.0e5));
        assert!(given.slices);
        let given = GivenFlags::of(&spec, &preset);
        assert_eq!((given.views, given.full_views), (vec![23], Some(180)));
        let mri = yaml("mask: random\n");
        let spec = JobSpec::from_yaml(Some(Task::Mri), &mri, "test").unwrap();
        assert_eq!(GivenFlags::of(&spec, &mri).mask, Some(MaskKind::Random));
        assert_eq!(GivenFlags::of(&spec, &Mapping::new()).mask, None);
    }
}
