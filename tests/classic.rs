//! The classical baselines: closed forms (FISTA without TV inverts a unitary operator, power
//! iteration on known spectra), the TV prox against scikit-image's Chambolle solver, FISTA's
//! objective, linear interpolation against numpy.interp, zero-filled against numpy's inverse FFT,
//! and TV compressed sensing beating zero-filled on a real MRI slice at 4x.

mod common;

use scorerecon::classic::fista_tv::{fista_tv, objective, FistaTv};
use scorerecon::classic::li_mar::{interpolate_trace, li_mar};
use scorerecon::classic::tv::{prox_tv, TvDual};
use scorerecon::classic::{tune_tv_weight, Baseline, BaselineKind};
use scorerecon::metrics;
use scorerecon::ops::identity::Identity;
use scorerecon::ops::mri::masks::{MaskKind, MaskSpec};
use scorerecon::ops::mri::MriFft;
use scorerecon::ops::norm::PowerIteration;
use scorerecon::ops::rng::standard_normal;
use scorerecon::ops::{MeasurementOperator, Transform};
use scorerecon::simulate::mri::{kspace_noise, NoiseLevel};
use tch::{Device, Kind, Tensor};

fn vec64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous().flatten(0, -1)).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

fn mri(h: i64, w: i64, acceleration: f64, seed: u64) -> MeasurementOperator {
    let spec = MaskSpec {
        kind: MaskKind::Equispaced,
        acceleration,
        center_fraction: 0.08,
        seed,
    };
    MeasurementOperator::new(
        Box::new(MriFft::real(h, w).unwrap()),
        spec.build(h, w).unwrap(),
    )
}

/// Piecewise-constant test image: two rectangles and a disc on a background.
fn blocks(h: i64, w: i64) -> Tensor {
    let x = Tensor::zeros([1, 1, h, w], (Kind::Float, Device::Cpu)) + 0.1;
    let _ = x.narrow(2, h / 8, h / 2).narrow(3, w / 8, w / 3).fill_(0.8);
    let _ = x.narrow(2, h / 2, h / 3).narrow(3, w / 2, w / 3).fill_(0.5);
    let yy = Tensor::arange(h, (Kind::Float, Device::Cpu)).reshape([h, 1]) - (h as f64 * 0.7);
    let xx = Tensor::arange(w, (Kind::Float, Device::Cpu)).reshape([1, w]) - (w as f64 * 0.3);
    let disc = (yy.square() + xx.square())
        .le((h.min(w) as f64 / 8.0).powi(2))
        .to_kind(Kind::Float);
    x * (1.0 - &disc) + disc * 1.0
}

#[test]
fn fista_without_tv_inverts_a_full_unitary_operator() {
    let (h, w) = (40, 52);
    let truth = standard_normal(&[2, 1, h, w], 1, Kind::Float, Device::Cpu);
    let opts = FistaTv {
        nonneg: false,
        ..FistaTv::default()
    }
    .with_weight(0.0);
    for op in [
        MeasurementOperator::full(Box::new(MriFft::real(h, w).unwrap())),
        MeasurementOperator::full(Box::new(Identity::new(h, w))),
    ] {
        let y = op.forward(&truth);
        let r = fista_tv(&op, &y, &opts).unwrap();
        // A^-1 y = truth; A^T A = I so L = 1 and FISTA stops after a step or two.
        assert!(
            max_abs(&(&r.x - &truth)) < 1e-5,
            "{}",
            op.transform.describe()
        );
        assert!(
            r.converged && r.iterations <= 3,
            "{} iterations",
            r.iterations
        );
        assert!((r.lipschitz / 1.01 - 1.0).abs() < 1e-4);
    }
}

#[test]
fn power_iteration_finds_known_norms() {
    // Masked unitary MRI operator: A^T A is a projection, ||A||^2 = 1.
    let op = mri(64, 48, 4.0, 0);
    let e = op.norm_squared(&PowerIteration::default());
    assert!((e.norm_squared - 1.0).abs() < 1e-4, "{e:?}");
    assert!(e.converged);

    // A diagonal operator: ||P(Lambda) D||^2 = the largest d^2 on the mask.
    // (Transforms are Sync, tensors are not: keep the diagonal on the host.)
    struct Diagonal(Vec<f32>);
    impl Diagonal {
        fn d(&self, like: &Tensor) -> Tensor {
            Tensor::from_slice(&self.0)
                .reshape([1, 1, 8, 8])
                .to_device(like.device())
        }
    }
    impl Transform for Diagonal {
        fn forward(&self, x: &Tensor) -> Tensor {
            x * self.d(x)
        }
        fn adjoint(&self, y: &Tensor) -> Tensor {
            y * self.d(y)
        }
        fn inverse(&self, y: &Tensor) -> Tensor {
            y / self.d(y)
        }
        fn image_shape(&self) -> [i64; 2] {
            [8, 8]
        }
        fn measurement_shape(&self) -> [i64; 2] {
            [8, 8]
        }
        fn describe(&self) -> String {
            "diagonal".into()
        }
    }
    let d: Vec<f32> = (0..64).map(|i| i as f32 / 10.0 + 0.5).collect();
    // Mask out the two largest entries (6.8 and 6.75 at indices 63, 62): the largest kept is 6.65.
    let mask = Tensor::ones([1, 1, 8, 8], (Kind::Float, Device::Cpu));
    let _ = mask.view([-1]).narrow(0, 62, 2).fill_(0.0);
    let op = MeasurementOperator::new(Box::new(Diagonal(d)), mask);
    let e = op.norm_squared(&PowerIteration {
        max_iter: 2000,
        tol: 1e-9,
        seed: 1,
    });
    let expected = (61.0f64 / 10.0 + 0.5).powi(2);
    assert!(
        (e.norm_squared / expected - 1.0).abs() < 1e-3,
        "{} vs {expected}",
        e.norm_squared
    );
}

/// skimage's Chambolle solver of `min 1/2 ||x - b||^2 + weight TV(x)` (isotropic, forward
/// differences, Neumann), run to a tight tolerance.
const CHAMBOLLE: &str = r#"
import sys, numpy as np
from skimage.restoration import denoise_tv_chambolle
out, inp, h, w, weight = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
b = np.fromfile(inp, "<f8").reshape(h, w)
denoise_tv_chambolle(b, weight=weight, eps=1e-12, max_num_iter=20000).astype("<f8").tofile(out)
"#;

#[test]
fn tv_prox_matches_skimage_and_denoises() {
    let (h, w) = (48, 40);
    let clean = blocks(h, w);
    let noisy = (&clean + standard_normal(&[1, 1, h, w], 3, Kind::Float, Device::Cpu) * 0.1)
        .to_kind(Kind::Double);
    let weight = 0.08;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.f64");
    common::write_f64(&p, &vec64(&noisy));
    let expected = common::python_array(
        CHAMBOLLE,
        &[
            p.to_str().unwrap(),
            &h.to_string(),
            &w.to_string(),
            &weight.to_string(),
        ],
    );
    let expected = Tensor::from_slice(&expected).reshape([1, 1, h, w]);
    let scale = max_abs(&expected);

    // The FGP prox itself, run long.
    let x = prox_tv(&noisy, weight, false, 3000, &mut TvDual::zeros_like(&noisy));
    let err = max_abs(&(&x - &expected));
    assert!(err < 1e-3 * scale, "FGP vs Chambolle: max difference {err}");

    // FISTA-TV on the identity is TV denoising: the same minimiser.
    let op = MeasurementOperator::full(Box::new(Identity::new(h, w)));
    let opts = FistaTv {
        nonneg: false,
        tol: 1e-7,
        max_iter: 2000,
        ..FistaTv::default()
    }
    .with_weight(weight);
    let r = fista_tv(&op, &noisy.to_kind(Kind::Float), &opts).unwrap();
    let err = max_abs(&(&r.x.to_kind(Kind::Double) - &expected));
    assert!(
        err < 2e-3 * scale,
        "FISTA-TV denoising vs Chambolle: max difference {err}"
    );

    // And it denoises: the error to the piecewise-constant truth falls.
    let before = metrics::nrmse(&noisy, &clean, None).unwrap()[0];
    let after = metrics::nrmse(&r.x, &clean, None).unwrap()[0];
    assert!(after < 0.6 * before, "NRMSE {before} -> {after}");
}

#[test]
fn mfista_objective_never_increases_and_fista_reaches_the_same_minimum() {
    let (h, w) = (64, 64);
    let op = mri(h, w, 4.0, 2);
    let truth = blocks(h, w);
    let y = op.forward(&truth);
    let weight = 2e-3;
    let base = FistaTv {
        tol: 1e-6,
        max_iter: 400,
        ..FistaTv::default()
    }
    .with_weight(weight);
    let m = fista_tv(&op, &y, &base).unwrap();
    let f: Vec<f64> = m.objective.iter().map(|v| v[0]).collect();
    assert!(f.windows(2).all(|p| p[1] <= p[0]), "MFISTA objective rose");
    // The recorded objective is that of the returned image (FISTA updates `A x` by linearity).
    let exact = objective(&op, &m.x, &y, weight).double_value(&[0]);
    assert!(
        (exact / f.last().unwrap() - 1.0).abs() < 1e-5,
        "{exact} vs {:?}",
        f.last()
    );
    let plain = fista_tv(
        &op,
        &y,
        &FistaTv {
            monotone: false,
            ..base
        },
    )
    .unwrap();
    let f_plain = objective(&op, &plain.x, &y, weight).double_value(&[0]);
    let f_mono = *f.last().unwrap();
    assert!(
        (f_plain / f_mono - 1.0).abs() < 1e-2,
        "FISTA {f_plain} vs MFISTA {f_mono}"
    );
    // Both improve on the starting point (zero-filled, which fits the data exactly but has a
    // large TV).
    let zf = Baseline::ZeroFilled.reconstruct(&op, &y).unwrap();
    let f_zf = objective(&op, &zf, &y, weight).double_value(&[0]);
    assert!(f_mono < 0.8 * f_zf, "{f_mono} vs zero-filled {f_zf}");
}

#[test]
fn zero_filled_equals_numpy_inverse_fft() {
    let (h, w) = (36, 44);
    let op = mri(h, w, 4.0, 5);
    let truth = standard_normal(&[1, 1, h, w], 6, Kind::Float, Device::Cpu);
    let y = op.forward(&truth);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("y.f64");
    let yc = y.to_kind(Kind::ComplexDouble);
    common::write_f64(&p, &[vec64(&yc.real()), vec64(&yc.imag())].concat());
    let script = r#"
import sys, numpy as np
out, inp, h, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
v = np.fromfile(inp, "<f8").reshape(2, h, w)
k = v[0] + 1j * v[1]
x = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k), norm="ortho"))
x.real.astype("<f8").tofile(out)
"#;
    let e = common::python_array(
        script,
        &[p.to_str().unwrap(), &h.to_string(), &w.to_string()],
    );
    let ours = vec64(&Baseline::ZeroFilled.reconstruct(&op, &y).unwrap());
    let err = ours
        .iter()
        .zip(&e)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-5, "{err}");
}

#[test]
fn linear_interpolation_matches_numpy_interp() {
    let (b, angles, det) = (2i64, 12i64, 40i64);
    let sino = standard_normal(&[b, 1, angles, det], 7, Kind::Float, Device::Cpu);
    // A trace-like mask: runs of missing bins, including at the row ends and one empty row.
    let mask = standard_normal(&[1, 1, angles, det], 8, Kind::Float, Device::Cpu)
        .gt(-0.3)
        .to_kind(Kind::Float);
    let _ = mask.narrow(3, 10, 6).fill_(0.0);
    let _ = mask.narrow(2, 0, 1).narrow(3, 0, 3).fill_(0.0);
    let _ = mask.narrow(2, 1, 1).narrow(3, 35, 5).fill_(0.0);
    let _ = mask.narrow(2, 5, 1).fill_(0.0);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.f64");
    common::write_f64(&p, &[vec64(&sino), vec64(&mask)].concat());
    let script = r#"
import sys, numpy as np
out, inp, b, a, d = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
v = np.fromfile(inp, "<f8")
s = v[:b * a * d].reshape(b, a, d)
m = v[b * a * d:].reshape(a, d) > 0.5
res = np.zeros_like(s)
j = np.arange(d)
for i in range(b):
    for r in range(a):
        if m[r].any():
            res[i, r] = np.interp(j, j[m[r]], s[i, r, m[r]])
res.astype("<f8").tofile(out)
"#;
    let e = common::python_array(
        script,
        &[
            p.to_str().unwrap(),
            &b.to_string(),
            &angles.to_string(),
            &det.to_string(),
        ],
    );
    let ours = vec64(&interpolate_trace(&sino, &mask));
    let err = ours
        .iter()
        .zip(&e)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-6, "max difference {err}");
    // Through the operator: LI then T^-1 (here the identity).
    let op = MeasurementOperator::new(Box::new(Identity::new(angles, det)), mask.shallow_clone());
    let y = op.forward(&sino);
    let li = li_mar(&op, &y);
    assert!(vec64(&li).iter().zip(&e).all(|(a, b)| (a - b).abs() < 1e-6));
    assert!(Baseline::Li.reconstruct(&op, &y).unwrap().equal(&li));
}

/// Two axial slices of the MNI152 T1 (a real brain), scaled to [0, 1] by the volume maximum.
fn mni_slices(zs: &[usize]) -> Vec<Tensor> {
    let script = r#"
import sys, numpy as np, nibabel as nib
out, path, zs = sys.argv[1], sys.argv[2], [int(z) for z in sys.argv[3:]]
v = np.asarray(nib.load(path).dataobj, dtype=np.float64)
v = v / v.max()
s = [np.ascontiguousarray(v[:, :, z].T[::-1]) for z in zs]
np.concatenate([[s[0].shape[0], s[0].shape[1]]] + [a.ravel() for a in s]).astype("<f8").tofile(out)
"#;
    let path = common::data(
        "nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    );
    python_slices(script, &path, zs)
}

/// Run `script` (which writes `[h, w]` then the slices, as float64) on `path` and the slice
/// indices `zs`; the slices as `[1, 1, h, w]` f32 tensors.
fn python_slices(script: &str, path: &std::path::Path, zs: &[usize]) -> Vec<Tensor> {
    let mut args = vec![path.to_str().unwrap().to_string()];
    args.extend(zs.iter().map(|z| z.to_string()));
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let v = common::python_array(script, &args);
    let (h, w) = (v[0] as i64, v[1] as i64);
    let n = (h * w) as usize;
    (0..zs.len())
        .map(|i| {
            Tensor::from_slice(&v[2 + i * n..2 + (i + 1) * n])
                .reshape([1, 1, h, w])
                .to_kind(Kind::Float)
        })
        .collect()
}

#[test]
fn tv_cs_beats_zero_filled_on_a_real_mri_slice_at_4x() {
    let slices = mni_slices(&[80, 100]);
    let (validation, test) = (&slices[0], &slices[1]);
    let (h, w) = (test.size()[2], test.size()[3]);
    let op = mri(h, w, 4.0, 1);
    let data_range = 1.0;
    // Measured k-space is noisy: 30 dB over the sampled entries (sigma = 0.027 per k-space
    // sample on this slice, 2.7% of the image range).
    let measure = |x: &Tensor, seed| {
        kspace_noise(
            &op.forward(x),
            Some(&op.mask),
            NoiseLevel::SnrDb(30.0),
            seed,
        )
        .unwrap()
        .0
    };
    // Tune on the validation slice (a short stretch of the default grid, to keep the test
    // fast), judge on the test slice.
    let y_val = measure(validation, 1);
    let grid = [1e-3, 3e-3, 1e-2, 3e-2];
    let tuning = tune_tv_weight(
        &op,
        &y_val,
        validation,
        data_range,
        &grid,
        &FistaTv::default(),
        true,
    )
    .unwrap();
    let tv = Baseline::Tv(FistaTv::default().with_weight(tuning.weight));
    let y = measure(test, 2);
    let zf = Baseline::ZeroFilled.reconstruct(&op, &y).unwrap();
    let x = tv.reconstruct(&op, &y).unwrap();
    let s_zf = metrics::assess(&zf, test, data_range, None).unwrap()[0];
    let s_tv = metrics::assess(&x, test, data_range, None).unwrap()[0];
    eprintln!("tuning: {:?}", tuning.rows);
    eprintln!(
        "zero-filled {s_zf:?}\ntv (w = {:.3e}) {s_tv:?}",
        tuning.weight
    );
    assert!(
        s_tv.psnr > s_zf.psnr + 2.0,
        "PSNR: tv {} zero-filled {}",
        s_tv.psnr,
        s_zf.psnr
    );
    assert!(
        s_tv.ssim > s_zf.ssim + 0.1,
        "SSIM: tv {} zero-filled {}",
        s_tv.ssim,
        s_zf.ssim
    );
    // The chosen weight is inside the grid, not at an end of it: the rule found a maximum.
    let rel = tuning.weight / (tuning.lipschitz * data_range);
    assert!(
        rel > grid[0] * 1.0001 && rel < grid[grid.len() - 1] * 0.9999,
        "{rel}"
    );
    // TV-CS stays close to the data: the residual is of the order of the noise (30 dB = 3%).
    let r = metrics::data_consistency(&op, &x, &y)[0];
    assert!(r < 0.1, "residual {r}");
}

#[test]
fn baselines_by_name_and_their_errors() {
    for (cli, name) in [
        ("fbp", "fbp"),
        ("zero-filled", "zero_filled"),
        ("fista-tv", "fista_tv"),
        ("tv", "tv"),
        ("li", "li"),
    ] {
        assert_eq!(Baseline::parse(cli).unwrap().name(), name);
        assert_eq!(Baseline::parse(name).unwrap().name(), name);
    }
    assert!(Baseline::parse("sart")
        .unwrap_err()
        .to_string()
        .contains("sart"));
    let op = mri(32, 32, 4.0, 0);
    let y = op.forward(&blocks(32, 32));
    // An untuned TV method says so instead of running with an arbitrary weight.
    let err = format!(
        "{:#}",
        Baseline::parse("tv")
            .unwrap()
            .reconstruct(&op, &y)
            .unwrap_err()
    );
    assert!(err.contains("no TV weight"), "{err}");
    let err = format!(
        "{:#}",
        fista_tv(&op, &y, &FistaTv::default().with_weight(-1.0))
            .err()
            .unwrap()
    );
    assert!(err.contains("TV weight -1"), "{err}");
    // Complex-domain MRI operators are refused by FISTA-TV (it reconstructs real images).
    let c = MeasurementOperator::full(Box::new(MriFft::complex(32, 32).unwrap()));
    let err = format!(
        "{:#}",
        fista_tv(
            &c,
            &c.forward(&blocks(32, 32)),
            &FistaTv::default().with_weight(0.1)
        )
        .err()
        .unwrap()
    );
    assert!(err.contains("MriFft::real"), "{err}");
    let err = format!(
        "{:#}",
        tune_tv_weight(
            &op,
            &y,
            &blocks(32, 32),
            1.0,
            &[],
            &FistaTv::default(),
            true
        )
        .unwrap_err()
    );
    assert!(err.contains("empty"), "{err}");
    // Every name round-trips through the typed kind.
    for &k in <BaselineKind as scorerecon::names::Named>::all() {
        assert_eq!(k.name().parse::<BaselineKind>().unwrap(), k);
        assert_eq!(Baseline::of(k).kind(), k);
    }
}

/// Axial slices of the InVesalius head CT averaged down 4x to 64x64 (cheap enough for FISTA runs
/// in a test), on the attenuation scale (HU + 1000) / 2000, read with nibabel.
fn head_ct_slices(zs: &[usize]) -> Vec<Tensor> {
    let script = r#"
import sys, numpy as np, nibabel as nib
out, path, zs = sys.argv[1], sys.argv[2], [int(z) for z in sys.argv[3:]]
v = np.asarray(nib.load(path).dataobj, dtype=np.float64)
s = []
for z in zs:
    a = v[:, :, z].T
    a = a.reshape(a.shape[0] // 4, 4, a.shape[1] // 4, 4).mean(axis=(1, 3))
    s.append(np.ascontiguousarray(np.clip((a + 1000.0) / 2000.0, 0.0, None)))
np.concatenate([[s[0].shape[0], s[0].shape[1]]] + [a.ravel() for a in s]).astype("<f8").tofile(out)
"#;
    python_slices(script, &common::data("cranium/head_ct.nii.gz"), zs)
}

#[test]
fn tuned_fista_tv_is_not_below_fbp_where_fbp_is_good() {
    use scorerecon::classic::{tv_weight, TvWeightSource};
    use scorerecon::ops::ct::{rows_mask, sparse_view_rows, Geometry, Radon};
    // Validation slice 40, test slice 52 (>= 8 apart, as the pipeline picks them).
    let slices = head_ct_slices(&[40, 52]);
    let (validation, test) = (&slices[0], &slices[1]);
    let n = test.size()[2] as usize;
    for views in [23usize, 90] {
        let g = Geometry::new(n, 180).unwrap();
        let rows = sparse_view_rows(180, views).unwrap();
        let mask = rows_mask(&rows, 180, g.n_det);
        let op = MeasurementOperator::new(Box::new(Radon::new(g).unwrap()), mask);
        let range = metrics::value_range(test);
        // The pipeline's rule (classic::tv_weight) on a short stretch of its grid.
        let t = tune_tv_weight(
            &op,
            &op.forward(validation),
            validation,
            metrics::value_range(validation),
            &[1e-5, 1e-4, 1e-3],
            &FistaTv::default(),
            true,
        )
        .unwrap();
        let rel = t.weight / (t.lipschitz * metrics::value_range(validation));
        let w = tv_weight(&op, range, TvWeightSource::Given(rel), true).unwrap();
        let y = op.forward(test);
        let fbp = Baseline::Fbp.reconstruct(&op, &y).unwrap();
        let tv = Baseline::FistaTv(FistaTv {
            weight: Some(w.weight),
            lipschitz: Some(w.lipschitz),
            ..FistaTv::default()
        })
        .reconstruct(&op, &y)
        .unwrap();
        let s_fbp = metrics::assess(&fbp, test, range, None).unwrap()[0];
        let s_tv = metrics::assess(&tv, test, range, None).unwrap()[0];
        eprintln!("{views} views: fbp {s_fbp:?}, fista-tv {s_tv:?} (relative weight {rel:.1e})");
        assert!(
            s_tv.psnr >= s_fbp.psnr && s_tv.ssim >= s_fbp.ssim,
            "{views} views: FISTA-TV {s_tv:?} below FBP {s_fbp:?}"
        );
    }
}
