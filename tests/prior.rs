//! Score priors: the exact empirical score against numpy/scipy in float64, the KNN estimator
//! against one-sample Monte Carlo (paper 000), TorchScript against PyTorch's own output, the
//! NCSN++ network (forward/backward, save/load, the 320x320 configuration), metadata and the
//! errors a user can see.

mod common;

use common::{python_array, root};
use scorerecon::job::{Fit, JobSpec, Task};
use scorerecon::prior::gaussian::GaussianPrior;
use scorerecon::prior::metadata::{Architecture, PriorMetadata, FORMAT_VERSION};
use scorerecon::prior::ncsnpp::{parameter_count, ModelSpec, NcsnppConfig, NcsnppPrior};
use scorerecon::prior::nearest::{Estimator, NearestNeighbourPrior};
use scorerecon::prior::{load_prior, Normalisation, ScoreModel};
use scorerecon::sde::VeSde;
use std::io::Write;
use tch::{Device, Kind, Tensor};

fn write_f64(path: &std::path::Path, t: &Tensor) {
    let v = Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    for x in v {
        f.write_all(&x.to_le_bytes()).unwrap();
    }
}

/// Run a Python script from a file (torch.jit.script reads the source of the classes it
/// compiles, so `python -c` cannot be used); returns the float64 array it writes to argv[1].
fn python_file_array(dir: &std::path::Path, script: &str, args: &[&str]) -> Vec<f64> {
    let py = dir.join(format!("script{}.py", args.len()));
    std::fs::write(&py, script).unwrap();
    let out = dir.join("out.f64");
    let mut all = vec![out.to_str().unwrap()];
    all.extend_from_slice(args);
    let status = std::process::Command::new(common::python())
        .arg(&py)
        .args(&all)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::read(&out)
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn max_abs(t: &Tensor) -> f64 {
    f64::try_from(t.abs().max()).unwrap()
}

#[test]
fn gaussian_score_is_the_gradient_of_the_perturbed_log_density() {
    // Independent of the formula in gaussian.rs: autograd of log N(x; mu, (s^2 + sigma^2) I).
    tch::manual_seed(11);
    let mu = Tensor::rand([1, 1, 6, 5], (Kind::Float, Device::Cpu));
    let sde = VeSde::new(0.01, 10.0).unwrap();
    let prior = GaussianPrior::new(&mu, 0.3, sde).unwrap();
    let x = Tensor::randn([3, 1, 6, 5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let sigma = Tensor::from_slice(&[0.05f32, 0.7, 4.0]);
    let var = (sigma.square() + 0.09).reshape([3, 1, 1, 1]);
    let logp = ((&x - &mu).square() / &var * -0.5).sum(Kind::Float);
    let grad = Tensor::run_backward(&[logp], &[&x], false, false)
        .pop()
        .unwrap();
    let s = prior.score(&x.detach(), &sigma).unwrap();
    assert!(max_abs(&(s - grad)) < 1e-5);
}

/// The exact empirical score at sigma = 0.01 over 65536-pixel images, against scipy's
/// logsumexp in float64: plain exp underflows here (exponents near -3e4 and below).
#[test]
fn exact_empirical_score_is_stable_at_sigma_001_with_65536_pixels() {
    tch::manual_seed(5);
    let n = 12;
    let refs = Tensor::rand([n, 1, 256, 256], (Kind::Float, Device::Cpu));
    let prior =
        NearestNeighbourPrior::new(&refs, Estimator::Exact, Normalisation::Identity).unwrap();
    let sigma = 0.01;
    // Three query points: next to reference 3; halfway between references 1 and 2, tilted so
    // both weights matter; and a random point far from all.
    let x1 = refs.get(1);
    let x2 = refs.get(2);
    let d = &x2 - &x1;
    let tilt = 2.0 * sigma * sigma / f64::try_from(d.square().sum(Kind::Double)).unwrap().sqrt();
    let mid =
        (&x1 + &x2) / 2.0 + &d / f64::try_from(d.square().sum(Kind::Double)).unwrap().sqrt() * tilt;
    let z = Tensor::stack(
        &[
            refs.get(3) + Tensor::randn([1, 256, 256], (Kind::Float, Device::Cpu)) * sigma,
            mid,
            Tensor::rand([1, 256, 256], (Kind::Float, Device::Cpu)),
        ],
        0,
    );
    let sig = Tensor::full([3], sigma, (Kind::Float, Device::Cpu));
    let s = prior.score(&z, &sig).unwrap();
    assert!(
        bool::try_from(s.isfinite().all()).unwrap(),
        "score not finite"
    );

    let dir = tempfile::tempdir().unwrap();
    let (rp, zp) = (dir.path().join("refs.f64"), dir.path().join("z.f64"));
    write_f64(&rp, &refs);
    write_f64(&zp, &z);
    let expected = python_array(
        r#"
import sys, numpy as np
from scipy.special import logsumexp
out, rp, zp, sigma = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
x = np.fromfile(rp, dtype='<f8').reshape(12, -1)
z = np.fromfile(zp, dtype='<f8').reshape(3, -1)
res = []
for zi in z:
    l = -((zi[None, :] - x) ** 2).sum(1) / (2 * sigma ** 2)
    w = np.exp(l - logsumexp(l))
    res.append(((w[:, None] * x).sum(0) - zi) / sigma ** 2)
np.asarray(res, dtype='<f8').tofile(out)
"#,
        &[rp.to_str().unwrap(), zp.to_str().unwrap(), "0.01"],
    );
    let expected = Tensor::from_slice(&expected).reshape([3, 1, 256, 256]);
    let s64 = s.to_kind(Kind::Double);
    for b in 0..3 {
        let err = max_abs(&(s64.get(b) - expected.get(b)));
        let scale = max_abs(&expected.get(b));
        // f32 images: mu - z carries ~1e-7 absolute error, /sigma^2 = 1e4 -> ~1e-3.
        assert!(
            err <= 1e-3 * scale.max(1.0) + 2e-3,
            "query {b}: error {err} (scale {scale})"
        );
    }
}

/// Paper 000, section 4.1: the KNN estimator's error against the exact empirical score is
/// far below that of the one-sample Monte Carlo estimator used in consistency/diffusion
/// training, `(x_j - z) / sigma^2` with `x_j` the reference image that generated `z`.
#[test]
fn knn_estimator_beats_one_sample_monte_carlo_at_intermediate_sigma() {
    tch::manual_seed(21);
    let (n, dim) = (512, 64);
    let refs = Tensor::rand([n, 1, 8, 8], (Kind::Float, Device::Cpu));
    let exact =
        NearestNeighbourPrior::new(&refs, Estimator::Exact, Normalisation::Identity).unwrap();
    // k = N / 8 neighbours, n = 64 draws (paper 000: k = 2048, n = 256 for N = 50000).
    let knn = NearestNeighbourPrior::new(
        &refs,
        Estimator::Knn { k: 64, n: 64 },
        Normalisation::Identity,
    )
    .unwrap();
    knn.reseed(1);
    let queries = 128;
    // Typical distance between references is sqrt(64/6) ~ 3.3: sigma = 0.5 is near the data,
    // 2.0 spreads the posterior over many references.
    for sigma in [0.5f64, 1.0, 2.0] {
        let j = Tensor::randint(n, [queries], (Kind::Int64, Device::Cpu));
        let x0 = refs.index_select(0, &j);
        let z = &x0 + Tensor::randn([queries, 1, 8, 8], (Kind::Float, Device::Cpu)) * sigma;
        let sig = Tensor::full([queries], sigma, (Kind::Float, Device::Cpu));
        let s_exact = exact.score(&z, &sig).unwrap();
        let s_knn = knn.score(&z, &sig).unwrap();
        let s_one = (&x0 - &z) / (sigma * sigma);
        let mse = |s: &Tensor| f64::try_from((s - &s_exact).square().mean(Kind::Double)).unwrap();
        let (e_knn, e_one) = (mse(&s_knn), mse(&s_one));
        let scale = f64::try_from(s_exact.square().mean(Kind::Double)).unwrap();
        eprintln!("sigma {sigma}: KNN mse {e_knn:.3e}, one-sample mse {e_one:.3e}, |score|^2 {scale:.3e}, dim {dim}");
        assert!(
            e_knn < 0.1 * e_one,
            "sigma {sigma}: KNN {e_knn} vs one-sample {e_one}"
        );
    }
}

#[test]
fn nearest_reports_the_closest_reference() {
    tch::manual_seed(2);
    let refs = Tensor::rand([20, 1, 4, 4], (Kind::Float, Device::Cpu));
    let prior =
        NearestNeighbourPrior::new(&refs, Estimator::Exact, Normalisation::Identity).unwrap();
    let x = refs.get(7).unsqueeze(0) + 0.01;
    let near = prior.nearest(&x).unwrap();
    assert_eq!(near[0].0, 7);
    assert!((near[0].1 - 0.04).abs() < 1e-4); // sqrt(16 * 0.01^2)
                                              // sigma_max is the largest pairwise distance (chapter 6), checked by brute force.
    let mut max_d: f64 = 0.0;
    for a in 0..20 {
        for b in 0..20 {
            let dd = f64::try_from((refs.get(a) - refs.get(b)).square().sum(Kind::Double)).unwrap();
            max_d = max_d.max(dd.sqrt());
        }
    }
    assert!((prior.sigma_max() - max_d).abs() < 1e-5);
}

/// A small module scripted with torch.jit in the venv; Rust runs it through `load_prior` and
/// must reproduce PyTorch's output on the same input.
#[test]
fn torchscript_model_matches_pytorch_output() {
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("tiny.pt");
    let out = python_file_array(
        dir.path(),
        r#"
import sys, torch
out, path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.emb = torch.nn.Linear(1, 8)
        self.out = torch.nn.Conv2d(8, 1, 3, padding=1)
    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.conv(x) + self.emb(torch.log(sigma)[:, None])[:, :, None, None])
        return self.out(h) / sigma[:, None, None, None]
m = torch.jit.script(Tiny().eval())
m.save(path)
x = torch.linspace(-1, 1, 2 * 16 * 12).reshape(2, 1, 16, 12)
sigma = torch.tensor([0.5, 3.0])
with torch.no_grad():
    y = m(x, sigma)
y.double().numpy().astype('<f8').tofile(out)
"#,
        &[pt.to_str().unwrap()],
    );
    let meta = PriorMetadata {
        format_version: FORMAT_VERSION,
        architecture: Architecture::Torchscript,
        sde: VeSde::new(0.01, 50.0).unwrap(),
        image_size: [16, 12],
        channels: 1,
        normalisation: Normalisation::Identity,
        training: None,
        prior_fit: None,
        pixel_mm: None,
    };
    meta.write(&PriorMetadata::sidecar_path(&pt), false)
        .unwrap();
    let prior = load_prior(pt.to_str().unwrap(), Device::Cpu).unwrap();
    assert_eq!(prior.image_size(), [16, 12]);
    let x = Tensor::linspace(-1.0, 1.0, 2 * 16 * 12, (Kind::Float, Device::Cpu))
        .reshape([2, 1, 16, 12]);
    let s = prior
        .score(&x, &Tensor::from_slice(&[0.5f32, 3.0]))
        .unwrap();
    let expected = Tensor::from_slice(&out).reshape([2, 1, 16, 12]);
    let err = max_abs(&(s.to_kind(Kind::Double) - &expected));
    assert!(err < 1e-5 * max_abs(&expected).max(1.0), "max error {err}");

    // A module breaking the convention is refused at load time, with its name.
    let bad = dir.path().join("bad.pt");
    python_file_array(
        dir.path(),
        r#"
import sys, torch
class Bad(torch.nn.Module):
    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x[:, :, :4, :4]
torch.jit.script(Bad()).save(sys.argv[2])
"#,
        &[bad.to_str().unwrap(), "x"],
    );
    meta.write(&PriorMetadata::sidecar_path(&bad), false)
        .unwrap();
    let err = load_prior(bad.to_str().unwrap(), Device::Cpu)
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("bad.pt") && msg.contains("shape"), "{msg}");
}

fn small_config() -> NcsnppConfig {
    NcsnppConfig {
        image_size: 32,
        channels: 1,
        nf: 8,
        ch_mult: vec![1, 2, 2],
        num_res_blocks: 1,
        attn_resolutions: vec![8],
        dropout: 0.1,
        fourier_scale: 16.0,
        skip_rescale: true,
        centered: false,
        init_scale: 0.0,
    }
}

#[test]
fn ncsnpp_small_forward_backward_and_safetensors_round_trip() {
    tch::manual_seed(0);
    let cfg = small_config();
    let sde = VeSde::new(0.01, 20.0).unwrap();
    let prior = NcsnppPrior::new(&cfg, sde, Normalisation::ct_default(), Device::Cpu).unwrap();
    let x = Tensor::rand([3, 1, 32, 32], (Kind::Float, Device::Cpu));
    let sigma = Tensor::from_slice(&[0.02f32, 1.0, 15.0]);

    // Denoising score matching loss (method.md, "Training") and one backward pass: every
    // trainable tensor receives a finite gradient, and the Fourier frequencies are frozen.
    let z = Tensor::randn([3, 1, 32, 32], (Kind::Float, Device::Cpu));
    let xt = &x + &z * sigma.reshape([-1, 1, 1, 1]);
    let s = prior.net.forward_t(&xt, &sigma, true);
    assert_eq!(s.size(), vec![3, 1, 32, 32]);
    let loss = (s * sigma.reshape([-1, 1, 1, 1]) + &z)
        .square()
        .mean(Kind::Float);
    loss.backward();
    let vars = prior.vs.trainable_variables();
    assert!(!vars.is_empty());
    let mut with_grad = 0;
    for v in &vars {
        let g = v.grad();
        if g.defined() {
            assert!(bool::try_from(g.isfinite().all()).unwrap());
            if max_abs(&g) > 0.0 {
                with_grad += 1;
            }
        }
    }
    // init_scale 0 makes the last convolutions ~1e-10, so a few gradients are tiny but the
    // bulk of the network must be reached.
    assert!(
        with_grad * 2 > vars.len(),
        "{with_grad} of {} tensors got a gradient",
        vars.len()
    );
    let fourier = prior
        .vs
        .variables()
        .into_iter()
        .find(|(k, _)| k.contains("fourier"))
        .unwrap();
    assert!(!fourier.1.requires_grad());

    // Save / load: same outputs in eval mode.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.safetensors");
    prior.save(&path, false).unwrap();
    assert!(
        prior.save(&path, false).is_err(),
        "must refuse to overwrite without force"
    );
    let loaded = load_prior(path.to_str().unwrap(), Device::Cpu).unwrap();
    let a = prior.score(&x, &sigma).unwrap();
    let b = loaded.score(&x, &sigma).unwrap();
    assert!(a.equal(&b));
    assert_eq!(loaded.normalisation(), &Normalisation::ct_default());

    // Output scales as 1/sigma: the same input at two sigmas with identical embeddings is
    // not available, so check the last stage instead: sigma * score is finite and O(1).
    let scaled = a * sigma.reshape([-1, 1, 1, 1]);
    assert!(max_abs(&scaled) < 1e3);

    // Weights of another configuration: a clear error naming the file.
    let mut meta = PriorMetadata::read(&PriorMetadata::sidecar_path(&path)).unwrap();
    if let Architecture::Ncsnpp(c) = &mut meta.architecture {
        c.nf = 12;
    }
    meta.write(&PriorMetadata::sidecar_path(&path), true)
        .unwrap();
    let msg = format!(
        "{:#}",
        load_prior(path.to_str().unwrap(), Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(msg.contains("small.safetensors"), "{msg}");

    // Truncated weights.
    let trunc = dir.path().join("trunc.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(
        PriorMetadata::sidecar_path(&path),
        PriorMetadata::sidecar_path(&trunc),
    )
    .unwrap();
    assert!(load_prior(trunc.to_str().unwrap(), Device::Cpu).is_err());
}

/// The paper's 320x320 NCSN++ (configs/ncsnpp_320.yaml): parameter count and output shape,
/// as reported in docs/models.md.
#[test]
fn ncsnpp_320_config_parameter_count_and_output_shape() {
    let spec = ModelSpec::read(&root().join("configs/ncsnpp_320.yaml")).unwrap();
    assert_eq!(spec.model.resolutions(), vec![320, 160, 80, 40, 20, 10, 5]);
    let prior = NcsnppPrior::new(
        &spec.model,
        spec.sde,
        spec.normalisation.clone(),
        Device::Cpu,
    )
    .unwrap();
    let count = parameter_count(&prior.vs);
    eprintln!("NCSN++ 320: {count} parameters");
    let x = Tensor::rand([1, 1, 320, 320], (Kind::Float, Device::Cpu));
    let s = prior.score(&x, &Tensor::from_slice(&[1.0f32])).unwrap();
    assert_eq!(s.size(), vec![1, 1, 320, 320]);
    assert!(bool::try_from(s.isfinite().all()).unwrap());

    let cpu = ModelSpec::read(&root().join("configs/ncsnpp_cpu.yaml")).unwrap();
    let small = NcsnppPrior::new(&cpu.model, cpu.sde, cpu.normalisation, Device::Cpu).unwrap();
    eprintln!("NCSN++ cpu 256: {} parameters", parameter_count(&small.vs));
    assert!(parameter_count(&small.vs) < count);
}

#[test]
fn bad_configs_and_names_give_clear_errors() {
    let mut cfg = small_config();
    cfg.image_size = 30; // not divisible by 4
    assert!(format!("{:#}", cfg.validate().err().unwrap()).contains("divisible"));
    let mut cfg = small_config();
    cfg.attn_resolutions = vec![7];
    assert!(format!("{:#}", cfg.validate().err().unwrap()).contains("attention resolution 7"));

    let msg = format!(
        "{:#}",
        load_prior("no_such_model_xyz", Device::Cpu).err().unwrap()
    );
    assert!(
        msg.contains("no_such_model_xyz") && msg.contains("models"),
        "{msg}"
    );
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("lonely.safetensors");
    std::fs::write(&lonely, b"not weights").unwrap();
    let msg = format!(
        "{:#}",
        load_prior(lonely.to_str().unwrap(), Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(msg.contains("sidecar"), "{msg}");
    let msg = format!(
        "{:#}",
        load_prior(
            &format!("knn:{}", dir.path().join("missing").display()),
            Device::Cpu
        )
        .err()
        .unwrap()
    );
    assert!(msg.contains("missing"), "{msg}");

    // Metadata: version guard and round trip.
    let meta = PriorMetadata {
        format_version: FORMAT_VERSION + 1,
        architecture: Architecture::Torchscript,
        sde: VeSde::new(0.01, 1.0).unwrap(),
        image_size: [8, 8],
        channels: 1,
        normalisation: Normalisation::mr_default(),
        training: None,
        prior_fit: None,
        pixel_mm: None,
    };
    let p = dir.path().join("m.json");
    std::fs::write(&p, serde_json::to_string(&meta).unwrap()).unwrap();
    assert!(format!("{:#}", PriorMetadata::read(&p).err().unwrap()).contains("format_version"));
}

/// The sidecar example in docs/models.md parses and validates, so the documented format is
/// the one the code reads.
#[test]
fn documented_metadata_example_is_valid() {
    let doc = std::fs::read_to_string(root().join("docs/models.md")).unwrap();
    let start = doc.find("```json\n").expect("json example") + 8;
    let end = start + doc[start..].find("```").unwrap();
    let meta: PriorMetadata = serde_json::from_str(&doc[start..end]).unwrap();
    meta.validate().unwrap();
    let spec = ModelSpec::read(&root().join("configs/ncsnpp_cpu.yaml")).unwrap();
    assert_eq!(meta.architecture, Architecture::Ncsnpp(spec.model));
    assert_eq!(meta.normalisation, Normalisation::ct_default());
}

/// The same architecture in PyTorch eager (scripts/ncsnpp_torch.py) loads the weights the
/// Rust code saved with `load_state_dict(strict=True)` (every name and shape must match) and
/// gives the same score on the same input.
#[test]
fn ncsnpp_matches_the_pytorch_eager_port_on_saved_weights() {
    tch::manual_seed(4);
    let mut cfg = small_config();
    cfg.init_scale = 1.0; // O(1) outputs everywhere, so the comparison means something
    let sde = VeSde::new(0.01, 20.0).unwrap();
    let prior = NcsnppPrior::new(&cfg, sde, Normalisation::Identity, Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    prior.save(&weights, false).unwrap();
    let x = Tensor::rand([2, 1, 32, 32], (Kind::Float, Device::Cpu));
    let sigma = Tensor::from_slice(&[0.3f32, 7.0]);
    let (xp, sp, op) = (
        dir.path().join("x.f64"),
        dir.path().join("s.f64"),
        dir.path().join("o.f64"),
    );
    write_f64(&xp, &x);
    write_f64(&sp, &sigma);
    let status = std::process::Command::new(common::python())
        .arg(root().join("scripts/ncsnpp_torch.py"))
        .args([
            "eval",
            &serde_json::to_string(&cfg).unwrap(),
            weights.to_str().unwrap(),
            xp.to_str().unwrap(),
            sp.to_str().unwrap(),
            "2",
            op.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let expected: Vec<f64> = std::fs::read(&op)
        .unwrap()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let expected = Tensor::from_slice(&expected).reshape([2, 1, 32, 32]);
    let s = prior.score(&x, &sigma).unwrap().to_kind(Kind::Double);
    let scale = max_abs(&expected);
    let err = max_abs(&(s - &expected));
    assert!(scale > 1e-3, "outputs too small to compare ({scale})");
    assert!(err < 1e-4 * scale, "max error {err} (scale {scale})");
}

/// `knn:FOLDER` over NIfTI files written by nibabel: every slice becomes a reference image in
/// model space (MR: divided by the volume's 99.5th percentile, computed here by numpy).
#[test]
fn knn_folder_prior_reads_nifti_slices_into_model_space() {
    let dir = tempfile::tempdir().unwrap();
    let expected = python_array(
        r#"
import sys, numpy as np, nibabel as nib
out, folder = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
vols = []
for i in range(2):
    v = rng.uniform(0, 1000, size=(12, 10, 3)).astype(np.int16)  # (i, j, k): 3 slices of 10 rows x 12 columns
    img = nib.Nifti1Image(v, np.eye(4))
    img.header['intent_name'] = b''
    nib.save(img, f"{folder}/vol{i}.nii.gz")
    p = np.sort(v.astype(np.float64).ravel())[int(round(0.995 * (v.size - 1)))]
    vols.append((v.astype(np.float64) / p).transpose(2, 1, 0))  # slices, rows, columns
np.concatenate(vols, 0).astype('<f8').tofile(out)
"#,
        &[dir.path().to_str().unwrap()],
    );
    let prior =
        NearestNeighbourPrior::from_folder(dir.path(), Estimator::Exact, Device::Cpu).unwrap();
    assert_eq!(prior.len(), 6);
    assert_eq!(prior.image_size(), [10, 12]);
    let got = prior.reference().to_kind(Kind::Double).flatten(0, -1);
    let exp = Tensor::from_slice(&expected);
    assert!(max_abs(&(got - exp)) < 1e-5);
}

/// At small sigma the log-likelihoods of the k neighbours differ by ~1e5: proposal masses taken
/// relative to the k-th neighbour overflowed (a crash seen on the head CT). Near a reference the
/// KNN score must be finite and equal the exact one (all weight on that reference).
#[test]
fn knn_estimator_is_finite_at_small_sigma() {
    tch::manual_seed(5);
    let refs = Tensor::rand([40, 1, 32, 32], (Kind::Float, Device::Cpu));
    let knn = NearestNeighbourPrior::new(
        &refs,
        Estimator::Knn { k: 8, n: 16 },
        Normalisation::Identity,
    )
    .unwrap();
    let exact =
        NearestNeighbourPrior::new(&refs, Estimator::Exact, Normalisation::Identity).unwrap();
    let z = refs.narrow(0, 3, 2) + Tensor::randn([2, 1, 32, 32], (Kind::Float, Device::Cpu)) * 0.01;
    let sig = Tensor::full([2], 0.05, (Kind::Float, Device::Cpu));
    let s = knn.score(&z, &sig).expect("KNN score at sigma 0.05");
    let e = exact.score(&z, &sig).unwrap();
    let rel = f64::try_from((&s - &e).norm()).unwrap() / f64::try_from(e.norm()).unwrap();
    assert!(
        rel < 1e-4,
        "KNN vs exact at small sigma: relative error {rel}"
    );
}

/// The prior-fit statistic of slices read as a job reads them (`pipeline::input`).
fn prior_fit_of(
    task: Task,
    input: &std::path::Path,
    slices: &[usize],
    model: &str,
) -> (Vec<f64>, f64) {
    use scorerecon::pipeline::input::{self, Input};
    let spec = JobSpec {
        input: input.to_path_buf(),
        slices: slices.to_vec(),
        fit: Fit::Resample,
        model: Some(model.parse().unwrap()),
        ..JobSpec::for_task(task)
    };
    let prior = load_prior(model, Device::Cpu).unwrap();
    let Input::Image(image) = input::read(&spec, prior.as_ref()).unwrap() else {
        unreachable!("an image input")
    };
    let x = image.padding.pad(
        &image
            .scaling
            .to_model_tensor(&image.slices(&image.ks).unwrap()),
    );
    let r = scorerecon::prior::fit::dsm_residual(prior.as_ref(), &x).unwrap();
    let limit = prior
        .fit_range()
        .expect("the shipped priors are calibrated")
        .limit();
    (r, limit)
}

#[test]
fn the_prior_fit_flags_the_other_modality_and_passes_held_out_slices() {
    let ct = common::data("cranium/head_ct.nii.gz");
    let mni = common::data(
        "nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    );
    // Held-out slices of each prior (not the calibration slab's ends only: 50, 54, 58 and 88, 95, 102).
    let (r, limit) = prior_fit_of(Task::Ct, &ct, &[50, 54, 58], "ct_head_128");
    assert!(
        r.iter().all(|&v| v <= limit),
        "CT held out {r:?} vs {limit}"
    );
    let (r, limit) = prior_fit_of(Task::Mri, &mni, &[88, 95, 102], "mri_brain_128");
    assert!(
        r.iter().all(|&v| v <= limit),
        "MRI held out {r:?} vs {limit}"
    );
    // A CT prior on MRI slices (a NIfTI does not say its modality).
    let (r, limit) = prior_fit_of(Task::Ct, &mni, &[95], "ct_head_128");
    eprintln!("CT prior on MRI: {r:?} vs limit {limit}");
    assert!(r[0] > 1.5 * limit, "CT prior on MRI {r:?} vs {limit}");
    // An MRI prior on CT slices: the head CT written again by nibabel without any CT marker.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("ct_as_nifti.nii.gz");
    common::run_python(
        "import sys, numpy as np, nibabel as nib\n\
         src = nib.load(sys.argv[1]); d = np.asarray(src.dataobj, dtype=np.float32)\n\
         nib.save(nib.Nifti1Image(d, src.affine), sys.argv[2])\n",
        &[ct.to_str().unwrap(), plain.to_str().unwrap()],
    );
    let (r, limit) = prior_fit_of(Task::Mri, &plain, &[52], "mri_brain_128");
    eprintln!("MRI prior on CT: {r:?} vs limit {limit}");
    assert!(r[0] > 1.5 * limit, "MRI prior on CT {r:?} vs {limit}");
}
