//! CT operators against scikit-image (radon / iradon, called through `.venv`) and closed forms.

mod common;

use scorerecon::ops::ct::fbp::Filter;
use scorerecon::ops::ct::{self, Geometry, Radon};
use scorerecon::ops::{inner, MeasurementOperator, Transform};
use tch::{Device, Kind, Tensor};

/// scikit-image's Shepp-Logan phantom resized to n, its `radon(circle=False)` over 180 angles
/// (transposed to angles x bins), and `iradon(circle=False, interpolation="linear")` of that
/// sinogram for the five filters.
const SKIMAGE_REFERENCE: &str = r#"
import sys, numpy as np
from skimage.data import shepp_logan_phantom
from skimage.transform import radon, iradon, resize
n = int(sys.argv[2])
img = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)
theta = np.arange(180.0)
sino = radon(img, theta, circle=False)
parts = [img.ravel(), sino.T.ravel()]
for f in ["ramp", "shepp-logan", "cosine", "hamming", "hann"]:
    parts.append(iradon(sino, theta, circle=False, filter_name=f, interpolation="linear").ravel())
np.concatenate(parts).astype("<f8").tofile(sys.argv[1])
"#;

struct Reference {
    n: usize,
    image: Vec<f32>,
    sinogram: Vec<f32>,
    iradon: Vec<Vec<f32>>,
}

fn reference(n: usize) -> Reference {
    let v: Vec<f32> = common::python_array(SKIMAGE_REFERENCE, &[&n.to_string()])
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let n_det = ct::default_n_det(n);
    let (img, rest) = v.split_at(n * n);
    let (sino, rest) = rest.split_at(180 * n_det);
    assert_eq!(rest.len(), 5 * n * n, "skimage output size");
    Reference {
        n,
        image: img.to_vec(),
        sinogram: sino.to_vec(),
        iradon: rest.chunks(n * n).map(|c| c.to_vec()).collect(),
    }
}

/// Relative RMSE `|a - b| / |b|` over the entries `keep` selects.
fn rel_rmse(a: &[f32], b: &[f32], keep: impl Fn(usize) -> bool) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        if keep(k) {
            num += (f64::from(*x) - f64::from(*y)).powi(2);
            den += f64::from(*y).powi(2);
        }
    }
    (num / den).sqrt()
}

/// Pixels of the disk inscribed in the N x N image (what every angle sees fully).
fn in_disk(n: usize) -> impl Fn(usize) -> bool {
    let c = (n / 2) as f64;
    let r2 = ((n / 2) as f64).powi(2);
    move |k| {
        let (j, i) = ((k / n) as f64 - c, (k % n) as f64 - c);
        i * i + j * j <= r2
    }
}

fn radon_180(n: usize) -> Radon {
    Radon::new(Geometry::new(n, 180).unwrap()).unwrap()
}

#[test]
fn forward_projection_and_fbp_match_scikit_image() {
    let r = reference(256);
    let n = r.n;
    let op = radon_180(n);

    // Forward: Joseph (one sample per row or column, weight 1/|cos|) against scikit-image's
    // rotate-and-sum (bilinear, one sample per pixel along the ray). Two discretisations of the
    // same line integral: they differ at the phantom's sharp edges by a fraction of a pixel.
    let sino = op.project(&r.image, 1);
    let e_fwd = rel_rmse(&sino, &r.sinogram, |_| true);
    println!("forward projection vs skimage radon: relative RMSE {e_fwd:.2e}");
    assert!(
        e_fwd < 1e-2,
        "forward projection differs from skimage: {e_fwd}"
    );

    // FBP of scikit-image's own sinogram: the same construction, so float rounding only.
    let y = Tensor::from_slice(&r.sinogram).reshape([1, 1, 180, op.geometry().n_det as i64]);
    let all: Vec<usize> = (0..180).collect();
    for (f, expected) in <Filter as scorerecon::names::Named>::all()
        .iter()
        .zip(&r.iradon)
    {
        let got = scorerecon::tensor::tensor_to_vec(&op.fbp(&y, *f, &all).unwrap());
        let e = rel_rmse(&got, expected, in_disk(n));
        println!(
            "FBP {} vs skimage iradon on the same sinogram: relative RMSE {e:.2e}",
            f.name()
        );
        assert!(e < 1e-4, "FBP {} differs from iradon: {e}", f.name());
    }

    // End to end, our radon then our FBP against scikit-image's radon then iradon: the ramp
    // filter amplifies the projectors' edge differences, so this is looser than either step.
    let ours = scorerecon::tensor::tensor_to_vec(
        &op.inverse(&op.forward(&Tensor::from_slice(&r.image).reshape([1, 1, n as i64, n as i64]))),
    );
    let e_pipe = rel_rmse(&ours, &r.iradon[0], in_disk(n));
    println!("FBP(radon) vs iradon(radon) (skimage): relative RMSE {e_pipe:.2e}");
    assert!(e_pipe < 3e-2, "{e_pipe}");

    // FBP(radon(x)) recovers the phantom at least as well as scikit-image's own round trip.
    let err_ours = rel_rmse(&ours, &r.image, in_disk(n));
    let err_skimage = rel_rmse(&r.iradon[0], &r.image, in_disk(n));
    println!("round trip error over the disk: ours {err_ours:.4}, skimage {err_skimage:.4}");
    assert!(
        err_ours <= err_skimage,
        "ours {err_ours} vs skimage {err_skimage}"
    );
}

#[test]
fn adjoint_identity_holds_for_several_geometries() {
    tch::manual_seed(11);
    let geometries = [
        Geometry::new(64, 180).unwrap(),
        Geometry::new(63, 45).unwrap().with_n_det(70).unwrap(),
        Geometry::new(40, 23).unwrap().with_pixel_size(0.7).unwrap(),
        Geometry::new(32, 10)
            .unwrap()
            .with_angles(vec![
                0.0, 13.0, 45.0, 89.9, 90.0, 135.0, 179.0, 200.0, -30.0, 17.5,
            ])
            .unwrap(),
    ];
    for g in geometries {
        let full = g.n_angles();
        let radon = Radon::new(g.clone()).unwrap();
        let rows = ct::sparse_view_rows(full, full.div_ceil(3)).unwrap();
        let mask = ct::rows_mask(&rows, full, g.n_det);
        let a = MeasurementOperator::new(Box::new(radon), mask);
        let n = g.image_size as i64;
        let x = Tensor::randn([3, 1, n, n], (Kind::Float, Device::Cpu));
        let y = Tensor::randn(
            [3, 1, full as i64, g.n_det as i64],
            (Kind::Float, Device::Cpu),
        );
        let lhs = inner(&a.forward(&x), &y);
        let rhs = inner(&x, &a.adjoint(&y));
        let rel = (lhs - rhs).abs() / lhs.abs();
        println!(
            "{}: |<Ax,y> - <x,A^T y>| / |<Ax,y>| = {rel:.1e}",
            a.transform.describe()
        );
        assert!(rel <= 1e-5, "{}: {lhs} vs {rhs}", a.transform.describe());
    }
}

#[test]
fn proximal_step_on_a_sparse_view_operator() {
    tch::manual_seed(5);
    let g = Geometry::new(48, 60).unwrap();
    let rows = ct::sparse_view_rows(60, 12).unwrap();
    let a = MeasurementOperator::new(
        Box::new(Radon::new(g.clone()).unwrap()),
        ct::rows_mask(&rows, 60, g.n_det),
    );
    let x = Tensor::rand([2, 1, 48, 48], (Kind::Float, Device::Cpu));
    let y = a.forward(&Tensor::rand([2, 1, 48, 48], (Kind::Float, Device::Cpu)));
    // lambda = 0: the sample is left alone (the step applies T^-1 to the correction only,
    // ops/mod.rs).
    let x0 = a.proximal(&x, &y, 0.0);
    assert!(f64::try_from((&x0 - &x).abs().max()).unwrap() < 1e-7);
    // lambda = 1 with every row measured and x = 0: x' = T^-1 y, the FBP of the measurement.
    let full = MeasurementOperator::full(Box::new(Radon::new(g.clone()).unwrap()));
    let y_full = full.forward(&Tensor::rand([2, 1, 48, 48], (Kind::Float, Device::Cpu)));
    let expected = full.transform.inverse(&y_full);
    let got = full.proximal(&Tensor::zeros_like(&x), &y_full, 1.0);
    assert!(f64::try_from((&got - &expected).abs().max()).unwrap() < 1e-5);
    // lambda = 1 on sparse rows: A x' = y only as far as FBP inverts the discrete projector on
    // a sinogram stitched from y and T x; the residual must still fall clearly.
    let x1 = a.proximal(&x, &y, 1.0);
    let before = a.residual(&x, &y);
    let after = a.residual(&x1, &y);
    println!("sparse-view proximal step at lambda = 1: residual {before:?} -> {after:?}");
    for (b, af) in before.iter().zip(&after) {
        assert!(af < &(0.8 * b), "residual {b} -> {af}");
    }
}

#[test]
fn bad_parameters_are_refused_with_the_reason() {
    let e = Geometry::new(64, 0).unwrap_err().to_string();
    assert!(e.contains("zero views"), "{e}");
    let e = ct::sparse_view_rows(180, 200).unwrap_err().to_string();
    assert!(e.contains("more views than the full set"), "{e}");
    let e = ct::sparse_view_rows(180, 0).unwrap_err().to_string();
    assert!(e.contains("at least one view"), "{e}");
    let e = ct::limited_angle_rows(&ct::full_angles(180), 0.0, 270.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("wedge"), "{e}");
    let op = radon_180(32);
    let e = op
        .check_image(&Tensor::zeros([1, 1, 32, 40], (Kind::Float, Device::Cpu)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("square"), "{e}");
    let y = Tensor::zeros(
        [1, 1, 180, op.geometry().n_det as i64],
        (Kind::Float, Device::Cpu),
    );
    assert!(op
        .fbp(&y, Filter::Ramp, &[])
        .unwrap_err()
        .to_string()
        .contains("zero views"));
}

/// Slice `k` of the real head CT (nibabel reads it; rows are the second NIfTI axis), HU.
fn head_ct_slice(k: usize) -> Vec<f32> {
    let path = common::data("cranium/head_ct.nii.gz");
    let script = r#"
import sys, nibabel as nib, numpy as np
a = np.asanyarray(nib.load(sys.argv[2]).dataobj)[:, :, int(sys.argv[3])].T
a.astype("<f8").tofile(sys.argv[1])
"#;
    common::python_array(script, &[path.to_str().unwrap(), &k.to_string()])
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// PSNR (dB) of `x` against `reference` over the pixels `keep` selects, peak = the
/// reference's maximum there.
fn psnr(x: &[f32], reference: &[f32], keep: impl Fn(usize) -> bool) -> f64 {
    let (mut se, mut count, mut peak) = (0.0f64, 0usize, 0.0f64);
    for (k, (a, b)) in x.iter().zip(reference).enumerate() {
        if keep(k) {
            se += (f64::from(*a) - f64::from(*b)).powi(2);
            count += 1;
            peak = peak.max(f64::from(*b));
        }
    }
    10.0 * (peak * peak / (se / count as f64)).log10()
}

#[test]
fn metal_in_a_real_head_ct_streaks_and_its_trace_covers_the_metal() {
    use scorerecon::ops::ct::hu;
    use scorerecon::simulate::{self, CtSimulationSpec, CtTask};
    let n = 256;
    let pixel_mm = 0.957;
    let slice = head_ct_slice(60);
    let metal = simulate::default_metal(&slice, n, pixel_mm).unwrap();
    let spec = CtSimulationSpec {
        task: CtTask::Mar {
            threshold_hu: 3000.0,
            dilation: 1,
        },
        full_views: 180,
        photons: Some(1e6),
        seed: 1,
        pixel_mm,
        filter: Filter::Ramp,
        fan: None,
    };
    let with_metal = simulate::simulate_ct(&spec, &slice, n, &metal).unwrap();
    // The same scan without metal: the metal objects with zero density leave the tissue alone
    // and cost nothing, so the only difference is the metal.
    let no_metal: Vec<_> = metal
        .iter()
        .map(|m| simulate::MetalObject {
            density_g_cm3: 0.0,
            ..m.clone()
        })
        .collect();
    let clean_slice_unit: Vec<f32> = slice
        .iter()
        .map(|&h| hu::hu_to_unit(f64::from(h)) as f32)
        .collect();
    let radon = Radon::new(Geometry::new(n, 180).unwrap()).unwrap();
    let free_sino = simulate::polychromatic_sinogram(
        &radon,
        &slice,
        &no_metal,
        pixel_mm,
        &simulate::Spectrum::tungsten_120kvp(),
        Some(1e6),
        1,
    )
    .unwrap();
    let all: Vec<usize> = (0..180).collect();
    let free_fbp =
        scorerecon::ops::ct::fbp::fbp(radon.geometry(), &free_sino, 1, Filter::Ramp, &all).unwrap();

    // PSNR outside the (dilated) metal, inside the field of view, against the metal-free slice.
    let metal_mask = with_metal.metal_mask.clone().unwrap();
    let disk = in_disk(n);
    let outside = |k: usize| metal_mask[k] == 0.0 && disk(k);
    let p_free = psnr(&free_fbp, &clean_slice_unit, outside);
    let p_metal = psnr(&with_metal.fbp, &clean_slice_unit, outside);
    println!(
        "PSNR outside the metal: metal-free FBP {p_free:.2} dB, FBP with metal {p_metal:.2} dB"
    );
    assert!(p_metal < p_free - 3.0, "{p_metal} vs {p_free}");

    // Every bin where scikit-image's radon sees the (undilated) metal is in our trace.
    let raw_metal: Vec<f32> = metal.iter().fold(vec![0f32; n * n], |acc, m| {
        acc.iter()
            .zip(&m.fraction)
            .map(|(a, f)| a.max(*f))
            .collect()
    });
    let dir = tempfile::tempdir().unwrap();
    let mask_path = dir.path().join("metal.f64");
    std::fs::write(
        &mask_path,
        raw_metal
            .iter()
            .flat_map(|v| f64::from(*v).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let script = r#"
import sys, numpy as np
from skimage.transform import radon
m = np.fromfile(sys.argv[2], dtype="<f8").reshape(256, 256)
radon(m, np.arange(180.0), circle=False).T.astype("<f8").tofile(sys.argv[1])
"#;
    let sk = common::python_array(script, &[mask_path.to_str().unwrap()]);
    let mut crossing = 0;
    for (k, p) in sk.iter().enumerate() {
        if *p > 1e-6 {
            crossing += 1;
            assert_eq!(
                with_metal.mask[k], 0.0,
                "bin {k} sees metal (skimage: {p}) but is kept by Lambda"
            );
        }
    }
    let trace = with_metal.mask.iter().filter(|m| **m == 0.0).count();
    println!("metal trace: {trace} bins; scikit-image sees metal in {crossing}");
    assert!(crossing > 0 && trace >= crossing);
}

#[test]
fn poisson_noise_has_the_variance_of_its_closed_form() {
    // p' = ln(I0 / N), N ~ Poisson(I0 e^-p): var p' ~ e^p / I0 (delta method), mean ~ p.
    use scorerecon::simulate::poisson_noise;
    let (p, i0) = (1.5f64, 1e4);
    let n_det = 500;
    let sino = vec![p as f32; 40 * n_det];
    let noisy = poisson_noise(&sino, n_det, 1.0, i0, 42).unwrap();
    let mean = noisy.iter().map(|v| f64::from(*v)).sum::<f64>() / noisy.len() as f64;
    let var = noisy
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>()
        / (noisy.len() - 1) as f64;
    let expected = p.exp() / i0;
    println!("mean {mean:.5} (p = {p}), variance {var:.3e} (closed form {expected:.3e})");
    assert!((mean - p).abs() < 3e-3, "{mean}");
    assert!((var / expected - 1.0).abs() < 0.05, "{var} vs {expected}");
    // Reproducible for a seed, different for another.
    assert_eq!(noisy, poisson_noise(&sino, n_det, 1.0, i0, 42).unwrap());
    assert_ne!(noisy, poisson_noise(&sino, n_det, 1.0, i0, 43).unwrap());
    assert!(poisson_noise(&sino, n_det, 1.0, 0.0, 1).is_err());
}

#[test]
fn the_noise_level_the_samplers_get_is_the_poisson_noise_measured() {
    // Line integrals that vary across the detector (0.2 .. 3 in dimensionless units), the
    // pipeline's estimate of their noise sd against the sd of the noise actually drawn.
    use scorerecon::simulate::{poisson_noise, poisson_sigma};
    let (n_det, rows, d, i0) = (400usize, 60usize, 0.5f64, 2e4);
    let sino: Vec<f32> = (0..rows * n_det)
        .map(|k| (0.4 + 5.6 * (k % n_det) as f64 / n_det as f64) as f32)
        .collect();
    let noisy = poisson_noise(&sino, n_det, d, i0, 7).unwrap();
    let empirical = (noisy
        .iter()
        .zip(&sino)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        / sino.len() as f64)
        .sqrt();
    let all = vec![1.0f32; sino.len()];
    let from_clean = poisson_sigma(&sino, &all, d, i0);
    let from_noisy = poisson_sigma(&noisy, &all, d, i0);
    println!("noise sd: drawn {empirical:.4e}, estimated {from_clean:.4e} (clean), {from_noisy:.4e} (noisy)");
    assert!(
        (from_clean / empirical - 1.0).abs() < 0.03,
        "{from_clean} vs {empirical}"
    );
    assert!(
        (from_noisy / empirical - 1.0).abs() < 0.05,
        "{from_noisy} vs {empirical}"
    );
    // Only the bins the mask keeps count: the low-attenuation half alone has less noise.
    let half: Vec<f32> = (0..sino.len())
        .map(|k| if k % n_det < n_det / 2 { 1.0 } else { 0.0 })
        .collect();
    assert!(poisson_sigma(&sino, &half, d, i0) < from_clean);
}

#[test]
fn shepp_logan_matches_scikit_image() {
    // scikit-image ships the modified Shepp-Logan phantom as a 400x400 image.
    let script = r#"
import sys, numpy as np
from skimage.data import shepp_logan_phantom
shepp_logan_phantom().astype("<f8").tofile(sys.argv[1])
"#;
    let sk = common::python_array(script, &[]);
    let def = scorerecon::phantom::shipped("shepp-logan").unwrap();
    let ours = scorerecon::phantom::rasterize(&def.ellipses, 400);
    let close = ours
        .iter()
        .zip(&sk)
        .filter(|(a, b)| (f64::from(**a) - **b).abs() < 0.01)
        .count();
    let frac = close as f64 / sk.len() as f64;
    println!(
        "Shepp-Logan: {:.2} % of pixels within 0.01 of scikit-image's",
        100.0 * frac
    );
    assert!(frac > 0.99, "{frac}");
}

fn simulated_measurement() -> scorerecon::io::measurement::Measurement {
    use scorerecon::io::measurement::*;
    use scorerecon::simulate::{self, CtSimulationSpec, CtTask};
    let n = 64;
    let (hu_slice, _) = scorerecon::phantom::phantom_hu("shepp-logan", n, 0).unwrap();
    let spec = CtSimulationSpec {
        task: CtTask::SparseView { views: 10 },
        full_views: 60,
        photons: Some(1e5),
        seed: 3,
        pixel_mm: 1.0,
        filter: Filter::Ramp,
        fan: None,
    };
    let sim = simulate::simulate_ct(&spec, &hu_slice, n, &[]).unwrap();
    let g = sim.geometry.clone();
    Measurement {
        meta: MeasurementMeta {
            format: FORMAT_TAG.into(),
            version: FORMAT_VERSION,
            modality: MeasurementModality::Ct,
            data_file: String::new(),
            mask_file: String::new(),
            shape: [1, g.n_angles(), g.n_det],
            complex: false,
            units: "test".into(),
            ct: Some(CtMeasurement {
                geometry: g,
                task: spec.task.clone(),
                rows: sim.rows.clone(),
                pixel_spacing_mm: 1.0,
                photons: spec.photons,
                physics: "monochromatic".into(),
            }),
            mri: None,
            seed: Some(3),
            source: "phantom:shepp-logan".into(),
            slices: vec![0],
            created_by: "test".into(),
            history: vec![],
        },
        data: sim.sinogram,
        mask: sim.mask,
    }
}

#[test]
fn measurement_files_round_trip_and_nibabel_reads_them() {
    use scorerecon::io::measurement::{read_measurement, write_measurement};
    let m = simulated_measurement();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scan.json");
    write_measurement(&json, &m, false).unwrap();
    let back = read_measurement(&json).unwrap();
    assert_eq!(back.meta.shape, m.meta.shape);
    assert_eq!(back.meta.ct, m.meta.ct);
    assert_eq!(back.data, m.data);
    assert_eq!(back.mask, m.mask);
    // Not overwritten without force.
    let e = write_measurement(&json, &m, false).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");

    // nibabel sees (n_det, n_angles, 1) float32 and uint8 arrays whose values are ours:
    // sinogram[angle, bin] = nifti[bin, angle, 0].
    let script = r#"
import sys, nibabel as nib, numpy as np
d = nib.load(sys.argv[2]); m = nib.load(sys.argv[3])
assert d.get_data_dtype() == np.float32 and m.get_data_dtype() == np.uint8, (d.get_data_dtype(), m.get_data_dtype())
a = np.asanyarray(d.dataobj)[:, :, 0].T.astype("<f8"); b = np.asanyarray(m.dataobj)[:, :, 0].T.astype("<f8")
print(d.shape, file=sys.stderr)
np.concatenate([np.array(d.shape[:2], dtype="<f8"), a.ravel(), b.ravel()]).tofile(sys.argv[1])
"#;
    let v = common::python_array(
        script,
        &[
            dir.path().join("scan.nii.gz").to_str().unwrap(),
            dir.path().join("scan_mask.nii.gz").to_str().unwrap(),
        ],
    );
    let [_, a, d] = m.meta.shape;
    assert_eq!((v[0] as usize, v[1] as usize), (d, a));
    let count = a * d;
    for k in 0..count {
        assert_eq!(v[2 + k] as f32, m.data[k], "data at {k}");
        assert_eq!(v[2 + count + k] as f32, m.mask[k], "mask at {k}");
    }
}

#[test]
fn broken_measurement_files_are_refused_with_the_reason() {
    use scorerecon::io::measurement::{read_measurement, write_measurement};
    let m = simulated_measurement();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scan.json");

    // NaN in the data: refused before anything is written.
    let mut bad = m.clone();
    bad.data[5] = f32::NAN;
    let e = format!("{:#}", write_measurement(&json, &bad, false).unwrap_err());
    assert!(e.contains("non-finite"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    write_measurement(&json, &m, false).unwrap();
    // A geometry that does not match the data.
    let text = std::fs::read_to_string(&json).unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["ct"]["geometry"]["n_det"] = serde_json::json!(12);
    let j2 = dir.path().join("wrong.json");
    std::fs::write(&j2, meta.to_string()).unwrap();
    let e = format!("{:#}", read_measurement(&j2).unwrap_err());
    assert!(e.contains("does not match the geometry"), "{e}");

    // A truncated data file.
    let data = dir.path().join("scan.nii.gz");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    let e = format!("{:#}", read_measurement(&json).unwrap_err());
    assert!(e.contains("scan.nii.gz"), "{e}");

    // Not a sidecar at all.
    let j3 = dir.path().join("junk.json");
    std::fs::write(&j3, b"\x00\x01 not json").unwrap();
    let e = format!("{:#}", read_measurement(&j3).unwrap_err());
    assert!(e.contains("not a scorerecon measurement sidecar"), "{e}");
}

#[test]
fn simulate_command_refuses_bad_parameters_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    for (args, reason) in [
        (vec!["--task", "sparse-view", "--views", "0"], "--views 0"),
        (
            vec!["--task", "sparse-view", "--views", "200"],
            "more views than the full set",
        ),
        (vec!["--task", "limited-angle", "--wedge", "0"], "--wedge 0"),
        (
            vec!["--task", "sparse-view", "--photons", "0"],
            "--photons 0",
        ),
        (
            vec!["--task", "sparse-view", "--full-views", "0"],
            "zero views",
        ),
    ] {
        let o = common::bin()
            .args([
                "simulate",
                "--phantom",
                "shepp-logan",
                "--size",
                "32",
                "--out",
            ])
            .arg(&out)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(reason), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
        assert!(!out.exists(), "{args:?} left output behind");
    }
}

/// The whole command on the metal phantom.
#[test]
fn simulate_command_writes_a_readable_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let o = common::bin()
        .args([
            "simulate",
            "--phantom",
            "metal",
            "--size",
            "128",
            "--task",
            "mar",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "measurement.json",
        "measurement.nii.gz",
        "measurement_mask.nii.gz",
        "fbp.nii.gz",
        "fbp.png",
        "reference.nii.gz",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let m = scorerecon::io::measurement::read_measurement(&out.join("measurement.json")).unwrap();
    assert!(m.mask.contains(&0.0), "the metal trace is empty");
}

#[test]
fn complex_measurements_round_trip_as_nifti_complex64() {
    // The MRI side stores k-space the same way; nibabel must read the complex values back.
    use scorerecon::io::measurement::*;
    let (s, r, c) = (2usize, 4usize, 3usize);
    let data: Vec<f32> = (0..2 * s * r * c).map(|k| k as f32 * 0.5 - 3.0).collect();
    let mask: Vec<f32> = (0..s * r * c).map(|k| (k % 2) as f32).collect();
    let m = Measurement {
        meta: MeasurementMeta {
            format: FORMAT_TAG.into(),
            version: FORMAT_VERSION,
            modality: MeasurementModality::Mri,
            data_file: String::new(),
            mask_file: String::new(),
            shape: [s, r, c],
            complex: true,
            units: "test".into(),
            ct: None,
            mri: Some(MriMeasurement {
                mask: Some("test".into()),
                ..Default::default()
            }),
            seed: None,
            source: "test".into(),
            slices: vec![0, 1],
            created_by: "test".into(),
            history: vec![],
        },
        data: data.clone(),
        mask,
    };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("k.json");
    write_measurement(&json, &m, false).unwrap();
    let back = read_measurement(&json).unwrap();
    assert_eq!(back.data, data);
    assert_eq!(back.mask, m.mask);
    // nibabel: complex64 of dims (c, r, s); element [col, row, slice] is data pair
    // ((slice * r + row) * c + col).
    let script = r#"
import sys, nibabel as nib, numpy as np
a = np.asanyarray(nib.load(sys.argv[2]).dataobj)
assert a.dtype == np.complex64 and a.shape == (3, 4, 2), (a.dtype, a.shape)
z = a.transpose(2, 1, 0).ravel()
np.stack([z.real, z.imag], axis=1).astype("<f8").ravel().tofile(sys.argv[1])
"#;
    let v = common::python_array(script, &[dir.path().join("k.nii.gz").to_str().unwrap()]);
    let got: Vec<f32> = v.iter().map(|x| *x as f32).collect();
    assert_eq!(got, data);
}
