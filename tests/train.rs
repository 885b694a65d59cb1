//! `scorerecon train` and the training machinery: the loss goes down on a tiny data set, a run
//! killed after a checkpoint and resumed writes the same loss curve and the same weights as an
//! uninterrupted one, Adam matches torch.optim.Adam, sigma_max matches numpy, the shipped weights
//! are the EMA and load as a prior, and bad input is refused before training starts.

mod common;

use common::{nibabel_file, pydicom_file, python_array};
use scorerecon::train::adam::Adam;
use scorerecon::train::data::max_pairwise_distance;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The CLI with one libtorch thread: on a busy 2-core machine the default pool spins and runs
/// these tiny networks 10-25x slower (the pool size is read when libtorch loads, so only the
/// environment can set it).
fn bin() -> std::process::Command {
    let mut c = common::bin();
    c.env("OMP_NUM_THREADS", "1");
    c
}

/// A tiny NCSN++ on 16x16 crops of the real MR volume `anatomical.nii` (33x41x25, nibabel's
/// test data), small enough for a few steps per second on a busy CPU.
fn tiny_args(out: &Path, steps: u64) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "train".into(),
        "--data".into(),
        nibabel_file("anatomical.nii").display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--steps".into(),
        steps.to_string(),
        "--device".into(),
        "cpu".into(),
        "--image-size".into(),
        "16".into(),
        "--batch-size".into(),
        "8".into(),
        "--lr".into(),
        "2e-3".into(),
        "--quiet".into(),
    ];
    for s in [
        "modality=mr",
        "downsample=2",
        "warmup=5",
        "model.nf=8",
        "model.ch_mult=[1, 2]",
        "val_every=5",
        "val_batches=1",
        "val_fraction=0.2",
        "val_gap=2",
    ] {
        a.push("--set".into());
        a.push(s.into());
    }
    a
}

/// Set `flag` to `value` in `args`, replacing an earlier value (clap refuses repeated flags).
fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|s| s == flag) {
        Some(i) => args[i + 1] = value.into(),
        None => args.extend([flag.into(), value.into()]),
    }
}

fn run_ok(args: &[String]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "scorerecon {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn losses(csv: &Path) -> Vec<f64> {
    std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn loss_decreases_and_the_weights_written_are_the_ema_and_load_as_a_prior() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mr_tiny");
    let mut args = tiny_args(&out, 60);
    args.extend(["--preview", "4", "--preview-steps", "40"].map(String::from));
    let stdout = run_ok(&args);
    assert!(stdout.contains("held out: slices"), "{stdout}");
    let l = losses(&dir.path().join("mr_tiny.loss.csv"));
    assert_eq!(l.len(), 60);
    let first: f64 = l[..15].iter().sum::<f64>() / 15.0;
    let last: f64 = l[45..].iter().sum::<f64>() / 15.0;
    assert!(
        last < 0.8 * first,
        "loss did not decrease: first 15 steps {first}, last 15 {last}"
    );
    assert!(dir.path().join("mr_tiny.loss.svg").exists());
    // Four unconditional samples in a 2x2 grid of 16x16 tiles with 2-pixel gaps.
    let grid = image::open(dir.path().join("mr_tiny.samples.png"))
        .unwrap()
        .to_luma8();
    assert_eq!(grid.dimensions(), (34, 34));

    // The model file holds the EMA weights of the last checkpoint, under the network's names.
    let weights: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("mr_tiny.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let ckpt = Tensor::read_safetensors(dir.path().join("mr_tiny.ckpt/state.safetensors")).unwrap();
    let mut n_ema = 0;
    for (k, v) in &ckpt {
        if let Some(name) = k.strip_prefix("ema.") {
            assert!(
                weights[name].equal(v),
                "{name} differs from the checkpoint's EMA"
            );
            n_ema += 1;
        }
    }
    assert_eq!(n_ema, weights.len());
    // ... and load as a prior through the sampler's door, with the data's normalisation.
    let prior = scorerecon::prior::load_prior(
        &dir.path().join("mr_tiny.safetensors").to_string_lossy(),
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(prior.image_size(), [16, 16]);
    assert!(matches!(
        prior.normalisation(),
        scorerecon::prior::Normalisation::MrPerVolume { .. }
    ));
    let s = prior
        .score(
            &Tensor::rand([2, 1, 16, 16], (Kind::Float, Device::Cpu)),
            &Tensor::from_slice(&[0.1f32, 1.0]),
        )
        .unwrap();
    assert_eq!(s.size(), vec![2, 1, 16, 16]);
    assert!(bool::try_from(s.isfinite().all()).unwrap());
    // Training calibrated the prior-fit range on its held-out slices (the count printed above).
    let fit = prior
        .fit_range()
        .expect("training writes the prior-fit range");
    let held: usize = stdout
        .split(" held out")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .expect("the held-out count in the summary");
    assert_eq!(fit.n_images, held, "{stdout}");
    assert!(fit.min > 0.0 && fit.min <= fit.mean && fit.mean <= fit.max);
}

#[test]
fn killed_and_resumed_run_matches_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let broken = dir.path().join("broken");
    let mut a = tiny_args(&whole, 12);
    a.extend(["--checkpoint-every".into(), "4".into()]);
    run_ok(&a);

    // Killed after step 10: the last checkpoint is step 8, steps 9-10 are lost.
    let mut b = tiny_args(&broken, 12);
    b.extend([
        "--checkpoint-every".into(),
        "4".into(),
        "--abort-after-step".into(),
        "10".into(),
    ]);
    let killed = bin().args(&b).output().unwrap();
    assert!(!killed.status.success());
    assert!(
        !dir.path().join("broken.safetensors").exists(),
        "a killed run wrote a model"
    );
    let ckpt_state = std::fs::read_to_string(dir.path().join("broken.ckpt/state.json")).unwrap();
    assert!(ckpt_state.contains("\"step\": 8"), "{ckpt_state}");

    b.retain(|s| s != "--abort-after-step" && s != "10");
    b.push("--resume".into());
    run_ok(&b);
    let csv_whole = std::fs::read_to_string(dir.path().join("whole.loss.csv")).unwrap();
    let csv_resumed = std::fs::read_to_string(dir.path().join("broken.loss.csv")).unwrap();
    assert_eq!(csv_whole.lines().count(), 13);
    assert_eq!(csv_whole, csv_resumed, "the resumed loss curve differs");
    let w1 = std::fs::read(dir.path().join("whole.safetensors")).unwrap();
    let w2 = std::fs::read(dir.path().join("broken.safetensors")).unwrap();
    assert!(w1 == w2, "the resumed run's weights differ");

    // Resuming with a different training setting is refused.
    let mut c = b.clone();
    set_flag(&mut c, "--lr", "1e-3");
    set_flag(&mut c, "--steps", "14");
    let e = bin().args(&c).output().unwrap();
    assert!(!e.status.success());
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("--resume: lr differ"), "{err}");
}

#[test]
fn adam_with_warmup_and_clipping_matches_torch() {
    // Minimise || A p - b ||^2 for 8 steps with warm-up over 3 steps and clipping at 0.5, in
    // torch (independent reference) and in our Adam; the parameters must agree.
    let script = r#"
import sys, numpy as np, torch
torch.set_default_dtype(torch.float64)
A = torch.tensor([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]]); b = torch.tensor([1.0, -2.0])
p = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
opt = torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
for step in range(1, 9):
    for g in opt.param_groups: g['lr'] = 0.1 * min(step / 3, 1.0)
    opt.zero_grad(); ((A @ p - b) ** 2).sum().backward()
    torch.nn.utils.clip_grad_norm_([p], 0.5)
    opt.step()
np.asarray(p.detach().numpy(), dtype='<f8').tofile(sys.argv[1])
"#;
    let want = python_array(script, &[]);
    // The VarStore holds f32 variables, so the comparison allows for f32 rounding.
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs
        .root()
        .var_copy("p", &Tensor::from_slice(&[0.3f32, -0.2, 0.1]));
    let a = Tensor::from_slice(&[1.0f32, 2.0, -1.0, 0.5, -3.0, 2.0]).reshape([2, 3]);
    let b = Tensor::from_slice(&[1.0f32, -2.0]);
    let mut adam = Adam::new(&vs, 0.9, 0.999, 1e-8);
    for step in 1..=8u64 {
        Adam::zero_grad(&vs);
        (a.matmul(&p) - &b).square().sum(Kind::Float).backward();
        Adam::clip_grad_norm(&vs, 0.5).unwrap();
        adam.step(&vs, Adam::scheduled_lr(0.1, 3, step));
    }
    let got = Vec::<f32>::try_from(p.detach()).unwrap();
    let start = [0.3, -0.2, 0.1];
    for ((g, w), s) in got.iter().zip(&want).zip(start) {
        assert!((*g as f64 - w).abs() < 2e-6, "ours {got:?}, torch {want:?}");
        assert!((w - s).abs() > 0.05, "the reference barely moved: {want:?}");
    }
}

#[test]
fn sigma_max_is_the_largest_pairwise_distance_as_numpy_computes_it() {
    let script = r#"
import sys, numpy as np
x = np.random.default_rng(7).random((40, 64)) * np.linspace(0.1, 3, 40)[:, None]
d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)).max()
np.concatenate([[d], x.ravel()]).astype('<f8').tofile(sys.argv[1])
"#;
    let v = python_array(script, &[]);
    let x = Tensor::from_slice(&v[1..]).reshape([40, 64]);
    let got = max_pairwise_distance(&x);
    assert!((got - v[0]).abs() < 1e-9 * v[0], "{got} vs numpy {}", v[0]);
}

#[test]
fn several_volumes_in_a_mixed_folder_hold_out_a_whole_volume() {
    // A folder with a NIfTI volume and a DICOM series (both MR): the series, last in path order,
    // is held out whole.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("scans");
    std::fs::create_dir_all(data.join("series")).unwrap();
    std::fs::copy(nibabel_file("anatomical.nii"), data.join("anatomical.nii")).unwrap();
    std::fs::copy(
        pydicom_file("MR_small.dcm"),
        data.join("series/MR_small.dcm"),
    )
    .unwrap();
    let out = dir.path().join("m");
    let mut a = tiny_args(&out, 2);
    let i = a.iter().position(|s| s == "--data").unwrap();
    a[i + 1] = data.display().to_string();
    let stdout = run_ok(&a);
    assert!(
        stdout.contains("held out: all of") && stdout.contains("series"),
        "{stdout}"
    );
    let meta = std::fs::read_to_string(dir.path().join("m.json")).unwrap();
    assert!(meta.contains("all of") && meta.contains("series"), "{meta}");
}

fn refused(args: &[String], needle: &str, out: &Path) {
    let o = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "accepted: {}", args.join(" "));
    assert!(
        err.contains(needle),
        "error does not mention `{needle}`: {err}"
    );
    // One error line, last (the readers may print warnings about skipped files before it).
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {err}");
    assert!(
        err.trim_end().lines().last().unwrap().starts_with("error:"),
        "{err}"
    );
    let name = out.file_name().unwrap().to_string_lossy().to_string();
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .collect();
    assert!(
        leftovers.is_empty(),
        "outputs written before the error: {leftovers:?}"
    );
}

#[test]
fn bad_input_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let junk = dir.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("notes.txt"), "not an image").unwrap();
    std::fs::write(junk.join("scan.nii"), [0u8; 40]).unwrap();

    let with_data = |d: &Path| {
        let mut a = tiny_args(&out, 3);
        set_flag(&mut a, "--data", &d.display().to_string());
        a
    };
    refused(&with_data(&empty), "empty", &out);
    refused(&with_data(&junk), "no readable image", &out);
    refused(
        &with_data(&dir.path().join("missing")),
        "no such file",
        &out,
    );

    let mut neg = tiny_args(&out, 3);
    set_flag(&mut neg, "--lr", "-1e-4");
    refused(&neg, "lr -0.0001", &out);
    // The same from a config file (named flags win over the file, so drop --lr).
    let neg_cfg = dir.path().join("neg.yaml");
    std::fs::write(&neg_cfg, "lr: -1.0e-4\n").unwrap();
    let mut neg = tiny_args(&out, 3);
    let i = neg.iter().position(|s| s == "--lr").unwrap();
    neg.drain(i..i + 2);
    neg.extend(["--config".into(), neg_cfg.display().to_string()]);
    refused(&neg, "lr -0.0001", &out);

    let cfg = dir.path().join("typo.yaml");
    std::fs::write(&cfg, "steps: 10\nlearning_rate: 0.001\n").unwrap();
    let mut typo = tiny_args(&out, 3);
    typo.extend(["--config".into(), cfg.display().to_string()]);
    refused(&typo, "learning_rate", &out);

    let mut nan = tiny_args(&out, 3);
    nan.extend(["--set".into(), "sigma_max=.nan".into()]);
    refused(&nan, "sigma_max", &out);

    let mut resume = tiny_args(&out, 3);
    resume.push("--resume".into());
    refused(&resume, "no checkpoint", &out);
}

#[test]
fn shipped_training_configs_parse_and_validate() {
    for name in ["train_ct.yaml", "train_mri.yaml", "train_mri_aug.yaml"] {
        let path = common::root().join("configs").join(name);
        let mut c = scorerecon::train::TrainConfig::from_file(&path).unwrap();
        assert!(c.data.is_empty(), "{name}: the data comes from --data");
        c.data = vec![path.clone()];
        c.device = "cpu".into();
        c.validate().unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!((c.image_size, c.downsample), (128, 2), "{name}");
    }
    // The cross-subject priors resample to a pixel size instead.
    for (name, mm) in [("train_mri_head.yaml", 2.0), ("train_ct_body.yaml", 2.5)] {
        let path = common::root().join("configs").join(name);
        let mut c = scorerecon::train::TrainConfig::from_file(&path).unwrap();
        c.data = vec![path.clone()];
        c.device = "cpu".into();
        c.validate().unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(
            (c.image_size, c.downsample, c.pixel_mm),
            (128, 1, Some(mm)),
            "{name}"
        );
    }
}

#[test]
fn fine_tuning_starts_from_the_init_weights_and_augmented_runs_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    run_ok(&tiny_args(&base, 6));
    let base_w = dir.path().join("base.safetensors");

    // With a vanishing learning rate the EMA written after 3 steps is the init weights.
    let ft = dir.path().join("ft");
    let mut a = tiny_args(&ft, 3);
    set_flag(&mut a, "--lr", "1e-12");
    a.extend(["--set".into(), format!("init={}", base_w.display())]);
    run_ok(&a);
    let read = |p: &Path| -> std::collections::BTreeMap<String, Tensor> {
        Tensor::read_safetensors(p).unwrap().into_iter().collect()
    };
    let (w0, w1) = (read(&base_w), read(&dir.path().join("ft.safetensors")));
    assert_eq!(w0.len(), w1.len());
    let mut worst = 0.0f64;
    for (k, v) in &w0 {
        worst = worst.max((v - &w1[k]).abs().max().double_value(&[]));
    }
    assert!(
        worst < 1e-6,
        "fine-tuned weights moved {worst} from the init"
    );
    // A fine-tuned model keeps the noise scale it was trained for.
    let sigma = |p: &Path| -> f64 {
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        j["sde"]["sigma_max"].as_f64().unwrap()
    };
    assert_eq!(
        sigma(&dir.path().join("base.json")),
        sigma(&dir.path().join("ft.json"))
    );

    // Another network is refused before any training.
    let bad = dir.path().join("bad");
    let mut b = tiny_args(&bad, 3);
    b.extend([
        "--set".into(),
        format!("init={}", base_w.display()),
        "--set".into(),
        "model.nf=4".into(),
    ]);
    refused(&b, "init", &bad);

    // Deformed batches draw from the step's stream: killed and resumed equals uninterrupted.
    let augment = [
        "augment.probability=1",
        "augment.rotate_deg=10",
        "augment.scale=0.1",
        "augment.shift_px=1",
        "augment.elastic_px=0.5",
        "augment.elastic_points=3",
    ];
    let with_aug = |out: &Path| {
        let mut a = tiny_args(out, 8);
        for s in augment {
            a.extend(["--set".into(), s.into()]);
        }
        a.extend(["--checkpoint-every".into(), "4".into()]);
        a
    };
    let whole = dir.path().join("aug_whole");
    run_ok(&with_aug(&whole));
    let broken = dir.path().join("aug_broken");
    let mut k = with_aug(&broken);
    k.extend(["--abort-after-step".into(), "6".into()]);
    assert!(!bin().args(&k).output().unwrap().status.success());
    let mut r = with_aug(&broken);
    r.push("--resume".into());
    run_ok(&r);
    let whole_csv = std::fs::read_to_string(dir.path().join("aug_whole.loss.csv")).unwrap();
    let plain_csv = std::fs::read_to_string(dir.path().join("base.loss.csv")).unwrap();
    assert_eq!(
        whole_csv,
        std::fs::read_to_string(dir.path().join("aug_broken.loss.csv")).unwrap(),
        "the resumed augmented run differs"
    );
    // ... and the deformations did change the batches (same seed, other losses).
    assert_ne!(
        whole_csv.lines().nth(1),
        plain_csv.lines().nth(1),
        "augmentation left the first batch unchanged"
    );
}

/// A prior trained with `pixel_mm` on a scan stored with coronal slices along k (the ITK T1:
/// LSA, 2 x 2 x 3 mm) learns axial slices at that pixel size, records it in its sidecar, and
/// `--fit resample` puts a scan on the same grid: the reference a reconstruction writes is
/// RAS+, has `pixel_mm` pixels, and its slice sits where nibabel places the matching axial
/// plane of the original (intensity-weighted centre in world mm; any flip or shift would move it).
#[test]
fn pixel_mm_prior_learns_axial_slices_and_reconstructions_follow_its_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let itk = common::data("itk/KmeansTest_T1UCharRaw.nii.gz");
    let mut a = tiny_args(&out, 2);
    let i = a.iter().position(|s| s == "--data").unwrap();
    a[i + 1] = itk.display().to_string();
    set_flag(&mut a, "--image-size", "32");
    for s in ["downsample=1", "pixel_mm=8", "val_fraction=0.1"] {
        a.extend(["--set".into(), s.into()]);
    }
    run_ok(&a);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("m.json")).unwrap()).unwrap();
    assert_eq!(meta["pixel_mm"].as_f64(), Some(8.0), "{meta}");

    // The pipeline's read stage (what every reconstruction starts from), written out for nibabel.
    let model = scorerecon::prior::load_prior(
        out.with_extension("safetensors").to_str().unwrap(),
        Device::Cpu,
    )
    .unwrap();
    let mut spec = scorerecon::job::JobSpec::for_task(scorerecon::job::Task::Mri);
    spec.input = itk.clone();
    spec.fit = scorerecon::job::Fit::Resample;
    spec.slices = vec![64];
    let scorerecon::pipeline::input::Input::Image(image) =
        scorerecon::pipeline::input::read(&spec, model.as_ref()).unwrap()
    else {
        panic!("an image input");
    };
    assert!(
        image.resampled.as_deref().unwrap_or("").contains("8 mm"),
        "{:?}",
        image.resampled
    );
    // A chest CT (321 mm across) does not fit the prior's 32 x 8 mm = 256 mm: refused, naming
    // the file and why.
    let chest = common::data("pyradiomics/pyradiomics-3.0.1/data/lung2_image.nrrd");
    let mut wide = spec.clone();
    wide.input = chest.clone();
    wide.slices = vec![30];
    let err = match scorerecon::pipeline::input::read(&wide, model.as_ref()) {
        Ok(_) => panic!("a field of view wider than the prior's must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains(chest.to_str().unwrap()) && err.contains("40x40") && err.contains("wider"),
        "{err}"
    );
    let reference = dir.path().join("reference.nii");
    scorerecon::io::write_volume(
        &image.vol.select_slices(&image.ks).unwrap(),
        &reference,
        None,
        false,
    )
    .unwrap();
    let script = r#"
import sys, numpy as np, nibabel as nb
ref = nb.load(sys.argv[2]); src = nb.load(sys.argv[3])
def centre(img, plane):
    a = np.asarray(img.get_fdata(), float)
    idx = np.indices(a.shape).reshape(3, -1).astype(float)
    w = a.reshape(-1) * plane(idx)
    xyz = img.affine[:3, :3] @ idx + img.affine[:3, 3:4]
    return (xyz * w).sum(1) / w.sum()
r = ref.get_fdata()
# The original's axial plane at S index 64 (ITK: j runs to superior).
c_src = centre(src, lambda idx: (idx[1] == 64).astype(float))
c_ref = centre(ref, lambda idx: np.ones(idx.shape[1]))
out = list(r.shape) + [1] * (3 - r.ndim) + list(ref.header.get_zooms()[:2]) + [float(nb.aff2axcodes(ref.affine) == ('R', 'A', 'S'))] + list(c_ref - c_src)
np.array(out, '<f8').tofile(sys.argv[1])
"#;
    let v = python_array(
        script,
        &[reference.to_str().unwrap(), itk.to_str().unwrap()],
    );
    // 256 mm (R) x 186 mm (A) at 8 mm: 32 x 23 pixels, one slice.
    assert_eq!(&v[..3], &[32.0, 23.0, 1.0], "reference shape");
    assert!(
        (v[3] - 8.0).abs() < 1e-6 && (v[4] - 8.0 * 186.0 / 8.0 / 23.0).abs() < 1e-6,
        "zooms {:?}",
        &v[3..5]
    );
    assert_eq!(v[5], 1.0, "reference must be RAS+");
    for (axis, d) in v[6..9].iter().enumerate() {
        assert!(
            d.abs() < 1.0,
            "centre of the slice off by {d} mm along axis {axis}"
        );
    }
}
