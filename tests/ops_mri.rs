//! The MRI operator against numpy, its adjoint and inverse, the proximal step, k-space noise, and
//! the masks against fastMRI's formulas (`fastmri/data/subsample.py`, re-typed in NumPy below).

mod common;

use scorerecon::ops::mri::fft::{centred_fft2, ImageDomain, MriFft};
use scorerecon::ops::mri::masks::{num_low_frequencies, MaskKind, MaskSpec};
use scorerecon::ops::rng::standard_normal;
use scorerecon::ops::{inner, MeasurementOperator, Transform};
use scorerecon::simulate::mri::{kspace_noise, NoiseLevel};
use tch::{Device, Kind, Tensor};

fn vec64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous().flatten(0, -1)).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

fn complex_image(shape: &[i64], seed: u64) -> Tensor {
    Tensor::complex(
        &standard_normal(shape, seed, Kind::Float, Device::Cpu),
        &standard_normal(shape, seed + 1000, Kind::Float, Device::Cpu),
    )
}

/// A random 0/1 mask over `h x w` (pixel-wise, so it is no line mask and not symmetric).
fn random_mask(h: i64, w: i64, seed: u64) -> Tensor {
    standard_normal(&[1, 1, h, w], seed, Kind::Float, Device::Cpu)
        .gt(0.3)
        .to_kind(Kind::Float)
}

const NUMPY_FFT: &str = r#"
import sys, numpy as np
out, inp, b, h, w = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
v = np.fromfile(inp, "<f8").reshape(2, b, 1, h, w)
x = v[0] + 1j * v[1]
k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho", axes=(-2, -1)), axes=(-2, -1))
np.stack([k.real, k.imag]).astype("<f8").tofile(out)
"#;

#[test]
fn forward_equals_numpy_centred_fft() {
    let dir = tempfile::tempdir().unwrap();
    // Even and odd sides (the shifts differ), square and not.
    for (b, h, w) in [(2, 32, 48), (1, 33, 27), (1, 64, 64)] {
        for domain in [ImageDomain::Real, ImageDomain::Complex] {
            let x = match domain {
                ImageDomain::Real => standard_normal(&[b, 1, h, w], 5, Kind::Float, Device::Cpu),
                ImageDomain::Complex => complex_image(&[b, 1, h, w], 5),
            };
            let t = MriFft::new(h, w, domain).unwrap();
            let k = t.forward(&x);
            let xc = x.to_kind(Kind::ComplexDouble);
            let mut input = vec64(&xc.real());
            input.extend(vec64(&xc.imag()));
            let p = dir.path().join("x.f64");
            common::write_f64(&p, &input);
            let expected = common::python_array(
                NUMPY_FFT,
                &[
                    p.to_str().unwrap(),
                    &b.to_string(),
                    &h.to_string(),
                    &w.to_string(),
                ],
            );
            let got: Vec<f64> = vec64(&k.real())
                .into_iter()
                .chain(vec64(&k.imag()))
                .collect();
            let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
            let err = got
                .iter()
                .zip(&expected)
                .fold(0f64, |m, (a, e)| m.max((a - e).abs()));
            assert!(
                err <= 1e-5 * scale,
                "{h}x{w} {domain:?}: max error {err} (scale {scale})"
            );
        }
    }
}

#[test]
fn adjoint_identity_and_exact_inverse() {
    for (h, w) in [(40, 40), (31, 46)] {
        for domain in [ImageDomain::Real, ImageDomain::Complex] {
            let t = MriFft::new(h, w, domain).unwrap();
            let a = MeasurementOperator::new(
                Box::new(MriFft::new(h, w, domain).unwrap()),
                random_mask(h, w, 9),
            );
            let x = match domain {
                ImageDomain::Real => standard_normal(&[3, 1, h, w], 1, Kind::Float, Device::Cpu),
                ImageDomain::Complex => complex_image(&[3, 1, h, w], 1),
            };
            let y = complex_image(&[3, 1, h, w], 2);
            let lhs = inner(&a.forward(&x), &y);
            let rhs = inner(&x, &a.adjoint(&y));
            assert!(
                (lhs - rhs).abs() <= 1e-5 * lhs.abs(),
                "{domain:?} {h}x{w}: {lhs} vs {rhs}"
            );
            // The adjoint stays in the image domain.
            assert_eq!(a.adjoint(&y).is_complex(), domain == ImageDomain::Complex);
            // T^-1 T x = x.
            let back = t.inverse(&t.forward(&x));
            assert!(
                max_abs(&(&back - &x)) <= 1e-5 * max_abs(&x),
                "{domain:?} inverse"
            );
        }
    }
}

#[test]
fn proximal_step_endpoints() {
    let (h, w) = (48, 40);
    // Complex images: A x' = y at lambda = 1 for any mask.
    let a = MeasurementOperator::new(
        Box::new(MriFft::complex(h, w).unwrap()),
        random_mask(h, w, 3),
    );
    let truth = complex_image(&[2, 1, h, w], 10);
    let y = a.forward(&truth);
    let x = complex_image(&[2, 1, h, w], 20);
    let x1 = a.proximal(&x, &y, 1.0);
    assert!(
        a.residual(&x1, &y).iter().all(|r| *r < 1e-6),
        "{:?}",
        a.residual(&x1, &y)
    );
    let x0 = a.proximal(&x, &y, 0.0);
    assert!(max_abs(&(&x0 - &x)) <= 1e-5 * max_abs(&x));
    // Between the endpoints the k-space error on the mask shrinks by (1 - lambda).
    let xh = a.proximal(&x, &y, 0.25);
    let r0 = a.residual(&x, &y);
    let rh = a.residual(&xh, &y);
    for i in 0..2 {
        assert!(
            (rh[i] / r0[i] - 0.75).abs() < 1e-5,
            "{} vs {}",
            rh[i],
            r0[i]
        );
    }

    // Real images: exact at lambda = 1 when the data are a real image's and the mask is point
    // symmetric (k -> -k, i.e. index j -> (N - j) mod N in the centred layout).
    let lines = MaskSpec {
        kind: MaskKind::Random,
        acceleration: 3.0,
        center_fraction: 0.1,
        seed: 4,
    }
    .build(h, w)
    .unwrap();
    let mirrored = lines.flip([2, 3]).roll([1, 1], [2, 3]);
    let symmetric = lines.maximum(&mirrored);
    let a = MeasurementOperator::new(Box::new(MriFft::real(h, w).unwrap()), symmetric);
    let truth = standard_normal(&[2, 1, h, w], 11, Kind::Float, Device::Cpu);
    let x = standard_normal(&[2, 1, h, w], 12, Kind::Float, Device::Cpu);
    let y = a.forward(&truth);
    let x1 = a.proximal(&x, &y, 1.0);
    assert!(!x1.is_complex());
    assert!(
        a.residual(&x1, &y).iter().all(|r| *r < 1e-6),
        "{:?}",
        a.residual(&x1, &y)
    );
    let x0 = a.proximal(&x, &y, 0.0);
    assert!(max_abs(&(&x0 - &x)) <= 1e-5 * max_abs(&x));
    // ... and only approximately on a mask that is not symmetric (docs/operators-mri.md).
    let a = MeasurementOperator::new(Box::new(MriFft::real(h, w).unwrap()), lines);
    let y = a.forward(&truth);
    let r = a.residual(&a.proximal(&x, &y, 1.0), &y);
    assert!(r.iter().all(|r| *r > 1e-3 && *r < 1.0), "{r:?}");
}

#[test]
fn kspace_noise_snr_on_the_mask() {
    let (h, w) = (64, 64);
    let x = standard_normal(&[2, 1, h, w], 1, Kind::Float, Device::Cpu).abs();
    let k = centred_fft2(&x);
    let mask = MaskSpec {
        kind: MaskKind::Equispaced,
        acceleration: 4.0,
        center_fraction: 0.08,
        seed: 1,
    }
    .build(h, w)
    .unwrap();
    let (noisy, sigma) = kspace_noise(&k, Some(&mask), NoiseLevel::SnrDb(15.0), 3).unwrap();
    // Zero outside the mask (the zero-filled storage of ops/mod.rs).
    assert_eq!(max_abs(&(&noisy * (1.0 - &mask))), 0.0);
    let m = mask.expand_as(&x).to_kind(Kind::Double);
    let count = m.sum(Kind::Double).double_value(&[]) / 2.0;
    for i in 0..2 {
        let ki = k.get(i).to_kind(Kind::ComplexDouble);
        let ni = noisy.get(i).to_kind(Kind::ComplexDouble);
        let mi = m.get(i);
        let p = (ki.abs().square() * &mi)
            .sum(Kind::Double)
            .double_value(&[])
            / count;
        let n = ((&ni - &ki).abs().square() * &mi)
            .sum(Kind::Double)
            .double_value(&[])
            / count;
        // sigma^2 = P / 10^(SNR/10) exactly; the empirical power of ~1100 draws is within ~10%.
        assert!((sigma[i as usize].powi(2) * 10f64.powf(1.5) / p - 1.0).abs() < 1e-5);
        let snr = 10.0 * (p / n).log10();
        assert!((snr - 15.0).abs() < 0.5, "empirical SNR {snr} dB");
    }
    // The same seed gives the same noise; another seed another.
    let (again, _) = kspace_noise(&k, Some(&mask), NoiseLevel::SnrDb(15.0), 3).unwrap();
    assert!(again.equal(&noisy));
    let (other, _) = kspace_noise(&k, Some(&mask), NoiseLevel::SnrDb(15.0), 4).unwrap();
    assert!(!other.equal(&noisy));
    // Sigma given directly: real and imaginary parts each have variance sigma^2 / 2.
    let big = Tensor::zeros([1, 1, 256, 256], (Kind::ComplexFloat, Device::Cpu));
    let (n, _) = kspace_noise(&big, None, NoiseLevel::Sigma(2.0), 5).unwrap();
    let vr = n.real().to_kind(Kind::Double).var(true).double_value(&[]);
    let vi = n.imag().to_kind(Kind::Double).var(true).double_value(&[]);
    assert!(
        (vr / 2.0 - 1.0).abs() < 0.02 && (vi / 2.0 - 1.0).abs() < 0.02,
        "{vr} {vi}"
    );
}

/// fastMRI's three line masks (subsample.py, MaskFunc.sample_mask + calculate_center_mask +
/// the calculate_acceleration_mask of each class) for every offset, in NumPy.
const FASTMRI_MASKS: &str = r#"
import sys, numpy as np
out, n, cf, accel = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
num_low = round(n * cf)
center = np.zeros(n, dtype=np.float32)
pad = (n - num_low + 1) // 2
center[pad:pad + num_low] = 1
rows = []
for offset in range(accel):
    m = np.zeros(n, dtype=np.float32)
    m[offset::accel] = 1
    rows.append(np.maximum(center, m))
adjusted = (accel * (num_low - n)) / (num_low * accel - n)
for offset in range(round(adjusted)):
    m = np.zeros(n)
    s = np.around(np.arange(offset, n - 1, adjusted)).astype(np.uint)
    m[s] = 1.0
    rows.append(np.maximum(center, m))
np.array([num_low, adjusted, accel, round(adjusted)] + list(np.concatenate(rows)), dtype="<f8").tofile(out)
"#;

fn line_mask(spec: MaskSpec, n: i64) -> Vec<bool> {
    let m = spec.build(4, n).unwrap();
    // A line mask keeps whole columns: every row is the same.
    assert!(m.narrow(2, 0, 1).expand_as(&m).equal(&m));
    vec64(&m.get(0).get(0).get(0))
        .iter()
        .map(|v| *v > 0.5)
        .collect()
}

#[test]
fn fastmri_line_masks_match_the_formulas() {
    for (n, cf, accel) in [(368usize, 0.08, 4usize), (256, 0.04, 8)] {
        let v = common::python_array(
            FASTMRI_MASKS,
            &[&n.to_string(), &cf.to_string(), &accel.to_string()],
        );
        let num_low = v[0] as usize;
        assert_eq!(num_low_frequencies(n, cf), num_low);
        assert_eq!(num_low, (n as f64 * cf).round() as usize); // 29 and 10: no ties here
        let n_fraction_offsets = v[3] as usize;
        let masks: Vec<Vec<bool>> = v[4..]
            .chunks(n)
            .map(|c| c.iter().map(|x| *x > 0.5).collect())
            .collect();
        assert_eq!(masks.len(), accel + n_fraction_offsets);
        let (equispaced, fraction) = masks.split_at(accel);

        for (kind, reference) in [
            (MaskKind::Equispaced, equispaced),
            (MaskKind::EquispacedFraction, fraction),
        ] {
            let mut offsets_seen = vec![false; reference.len()];
            for seed in 0..40 {
                let spec = MaskSpec {
                    kind,
                    acceleration: accel as f64,
                    center_fraction: cf,
                    seed,
                };
                let ours = line_mask(spec, n as i64);
                let hit = reference.iter().position(|r| *r == ours);
                let Some(o) = hit else {
                    panic!("{kind:?} N={n} seed {seed}: no fastMRI offset gives this mask")
                };
                offsets_seen[o] = true;
                // The line count of that offset, from the formula: centre plus the equispaced
                // lines outside it.
                let count = ours.iter().filter(|b| **b).count();
                assert_eq!(count, reference[o].iter().filter(|b| **b).count());
            }
            assert!(
                offsets_seen.iter().all(|s| *s),
                "{kind:?}: offsets {offsets_seen:?} not all drawn"
            );
            // With the offset given (fastMRI's `offset` argument), mask for mask.
            let spec = MaskSpec {
                kind,
                acceleration: accel as f64,
                center_fraction: cf,
                seed: 0,
            };
            for (o, r) in reference.iter().enumerate() {
                let m = spec.build_with_offset(2, n as i64, o).unwrap();
                let ours: Vec<bool> = vec64(&m.get(0).get(0).get(1))
                    .iter()
                    .map(|v| *v > 0.5)
                    .collect();
                assert_eq!(&ours, r, "{kind:?} N={n} offset {o}");
            }
            let err = spec
                .build_with_offset(2, n as i64, reference.len())
                .unwrap_err()
                .to_string();
            assert!(err.contains("offset"), "{err}");
        }
        // EquispacedMaskFractionFunc hits the acceleration: N_low + (N - N_low)/adjusted = N/R.
        let adjusted = v[1];
        let expected = num_low as f64 + (n - num_low) as f64 / adjusted;
        assert!((expected - n as f64 / accel as f64).abs() < 1e-9);
        for m in fraction {
            let c = m.iter().filter(|b| **b).count() as f64;
            assert!(
                (c - n as f64 / accel as f64).abs() <= 2.0,
                "fraction mask count {c}"
            );
        }

        // RandomMaskFunc: the centre always, each outer line with probability
        // (N/R - N_low)/(N - N_low), so the expected count is N/R.
        let prob = (n as f64 / accel as f64 - num_low as f64) / (n - num_low) as f64;
        let seeds = 300;
        let mut total = 0usize;
        for seed in 0..seeds {
            let spec = MaskSpec {
                kind: MaskKind::Random,
                acceleration: accel as f64,
                center_fraction: cf,
                seed,
            };
            let ours = line_mask(spec, n as i64);
            let pad = (n - num_low).div_ceil(2);
            assert!(
                ours[pad..pad + num_low].iter().all(|b| *b),
                "centre missing"
            );
            total += ours.iter().filter(|b| **b).count();
        }
        let mean = total as f64 / seeds as f64;
        let sd = ((n - num_low) as f64 * prob * (1.0 - prob) / seeds as f64).sqrt();
        assert!(
            (mean - n as f64 / accel as f64).abs() < 5.0 * sd,
            "random mean count {mean}, sd {sd}"
        );

        // Gaussian: exactly round(N / R) lines, the centre included.
        let spec = MaskSpec {
            kind: MaskKind::Gaussian,
            acceleration: accel as f64,
            center_fraction: cf,
            seed: 7,
        };
        let ours = line_mask(spec, n as i64);
        assert_eq!(
            ours.iter().filter(|b| **b).count(),
            (n as f64 / accel as f64).round() as usize
        );
        let pad = (n - num_low).div_ceil(2);
        assert!(ours[pad..pad + num_low].iter().all(|b| *b));
    }
}

#[test]
fn variable_density_masks() {
    // 1-D Gaussian: outer lines near the centre are drawn far more often than at the edges.
    let n = 256usize;
    let mut near = 0usize;
    let mut far = 0usize;
    for seed in 0..50 {
        let spec = MaskSpec {
            kind: MaskKind::Gaussian,
            acceleration: 4.0,
            center_fraction: 0.04,
            seed,
        };
        let m = line_mask(spec, n as i64);
        near +=
            m[100..118].iter().filter(|b| **b).count() + m[138..156].iter().filter(|b| **b).count();
        far += m[0..18].iter().filter(|b| **b).count() + m[238..256].iter().filter(|b| **b).count();
    }
    assert!(near > 4 * far, "near {near} far {far}");

    // 2-D Poisson disc: the requested acceleration within 5%, a full centre, denser near the
    // centre, reproducible.
    let (h, w) = (96i64, 128i64);
    let spec = MaskSpec {
        kind: MaskKind::Poisson,
        acceleration: 5.0,
        center_fraction: 0.08,
        seed: 3,
    };
    let m = spec.build(h, w).unwrap();
    assert!(m.equal(&spec.build(h, w).unwrap()));
    assert!(!m.equal(&MaskSpec { seed: 4, ..spec }.build(h, w).unwrap()));
    let v: Vec<bool> = vec64(&m).iter().map(|x| *x > 0.5).collect();
    let count = v.iter().filter(|b| **b).count() as f64;
    let r = (h * w) as f64 / count;
    assert!((r / 5.0 - 1.0).abs() < 0.05, "achieved acceleration {r}");
    let (ch, cw) = (
        num_low_frequencies(h as usize, 0.08),
        num_low_frequencies(w as usize, 0.08),
    );
    let (py, px) = ((h as usize - ch).div_ceil(2), (w as usize - cw).div_ceil(2));
    for i in py..py + ch {
        assert!(v[i * w as usize + px..i * w as usize + px + cw]
            .iter()
            .all(|b| *b));
    }
    let density = |y0: usize, y1: usize, x0: usize, x1: usize| {
        let mut c = 0usize;
        for i in y0..y1 {
            for j in x0..x1 {
                c += v[i * w as usize + j] as usize;
            }
        }
        c as f64 / ((y1 - y0) * (x1 - x0)) as f64
    };
    let inner_ring = density(30, 66, 40, 88);
    let corner = density(0, 20, 0, 24);
    assert!(
        inner_ring > 2.0 * corner,
        "inner {inner_ring} corner {corner}"
    );
    // The 2-D mask is not one built from lines.
    assert!(!m.narrow(2, 0, 1).expand_as(&m).equal(&m));
}

#[test]
fn bad_mask_parameters_are_refused() {
    let spec = |kind, acceleration, center_fraction| MaskSpec {
        kind,
        acceleration,
        center_fraction,
        seed: 0,
    };
    let err = |s: MaskSpec| s.build(64, 64).unwrap_err().to_string();
    assert!(err(spec(MaskKind::Equispaced, 0.5, 0.08)).contains("acceleration 0.5"));
    assert!(err(spec(MaskKind::Random, f64::NAN, 0.08)).contains("acceleration"));
    assert!(err(spec(MaskKind::Random, 4.0, 0.0)).contains("center fraction 0"));
    assert!(err(spec(MaskKind::Random, 4.0, 1.0)).contains("center fraction 1"));
    assert!(err(spec(MaskKind::Gaussian, 4.0, -0.1)).contains("center fraction"));
    assert!(err(spec(MaskKind::EquispacedFraction, 4.0, 0.3)).contains("exceeds"));
    assert!(err(spec(MaskKind::Equispaced, 2.5, 0.08)).contains("equispaced-fraction"));
    assert!(spec(MaskKind::Poisson, 4.0, 0.08).build(0, 64).is_err());
    let random = spec(MaskKind::Random, 4.0, 0.08);
    assert!(random
        .build_with_offset(8, 8, 0)
        .unwrap_err()
        .to_string()
        .contains("offset"));
    assert!(MaskKind::parse("radial")
        .unwrap_err()
        .to_string()
        .contains("radial"));
    assert_eq!(
        MaskKind::parse("equispaced-fraction").unwrap(),
        MaskKind::EquispacedFraction
    );
    assert!(MriFft::real(0, 4).is_err());
}
