//! Multi-coil MRI: the SENSE transform (adjoint identity, inverse, the generic data-consistency
//! machinery on it), ESPIRiT maps against BART's `ecalib`, SENSE-CG against BART's `pics`, and
//! the zero-filled RSS against NumPy. Data: BART's Shepp-Logan and its 8 analytic coil
//! sensitivities (`bart phantom -S 8`), 64x64, k-space by our centred FFT (equal to
//! `bart fft -u` to single precision, tested first).

mod common;

use scorerecon::classic::fista_tv::{fista_tv, FistaTv};
use scorerecon::classic::rss::rss;
use scorerecon::classic::sense::{sense, SenseCg};
use scorerecon::classic::{Baseline, BaselineKind};
use scorerecon::ops::mri::espirit::{
    calibration_phase, calibration_width, espirit, lowres_maps, EspiritOptions, PhaseReference,
};
use scorerecon::ops::mri::fft::{centred_fft2, ImageDomain};
use scorerecon::ops::mri::masks::{MaskKind, MaskSpec};
use scorerecon::ops::mri::Sense;
use scorerecon::ops::projection::{project, regularised_least_squares, ProjectionOptions};
use scorerecon::ops::rng::standard_normal;
use scorerecon::ops::{inner, MeasurementOperator, Transform};
use std::path::Path;
use tch::{Device, Kind, Tensor};

const N: i64 = 64;
const COILS: i64 = 8;

fn complex_normal(shape: &[i64], seed: u64) -> Tensor {
    Tensor::complex(
        &standard_normal(shape, seed, Kind::Float, Device::Cpu),
        &standard_normal(shape, seed + 1000, Kind::Float, Device::Cpu),
    )
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

fn norm(t: &Tensor) -> f64 {
    t.abs().square().sum(Kind::Double).sqrt().double_value(&[])
}

/// Smooth random coil maps `[1, C, H, W]` (a few low frequencies each), normalised to
/// `sum_c |S_c|^2 = 1` if asked.
fn smooth_maps(c: i64, h: i64, w: i64, normalised: bool, seed: u64) -> Tensor {
    let low = complex_normal(&[1, c, 5, 5], seed);
    let k = Tensor::zeros([1, c, h, w], (Kind::ComplexFloat, Device::Cpu));
    k.narrow(2, h / 2 - 2, 5)
        .narrow(3, w / 2 - 2, 5)
        .copy_(&low);
    let maps = scorerecon::ops::mri::fft::centred_ifft2(&k) * ((h * w) as f64).sqrt() / 5.0
        + Tensor::ones([1, c, 1, 1], (Kind::ComplexFloat, Device::Cpu)) * 0.3;
    if normalised {
        let rss = maps
            .abs()
            .square()
            .sum_dim_intlist(1, true, None::<Kind>)
            .sqrt();
        maps / rss
    } else {
        maps
    }
}

/// A smooth phase `[1, 1, H, W]` (radians), a tilt and a bump.
fn smooth_phase(h: i64, w: i64) -> Tensor {
    let y = Tensor::arange(h, (Kind::Float, Device::Cpu)).reshape([1, 1, h, 1]) / h as f64;
    let x = Tensor::arange(w, (Kind::Float, Device::Cpu)).reshape([1, 1, 1, w]) / w as f64;
    &y * 1.5 - &x * 0.8 + ((&x - 0.5).square() + (&y - 0.4).square()).neg().exp() * 2.0
}

fn relative_adjoint_error(op: &MeasurementOperator, x: &Tensor, y: &Tensor) -> f64 {
    let lhs = inner(&op.forward(x), y);
    let rhs = inner(x, &op.adjoint(y));
    (lhs - rhs).abs() / lhs.abs()
}

fn line_mask(acceleration: f64) -> Tensor {
    MaskSpec {
        kind: MaskKind::Equispaced,
        acceleration,
        center_fraction: 0.08,
        seed: 0,
    }
    .build(N, N)
    .unwrap()
}

#[test]
fn adjoint_identity_complex_and_phase_folded_real() {
    let (b, h, w) = (2, 40, 36);
    let mask = line_mask(3.0).narrow(2, 0, h).narrow(3, 0, w).contiguous();
    let y = complex_normal(&[b, COILS, h, w], 7);
    // Complex images, maps shared by the batch (B = 1) and one set per image (B = 2).
    for maps in [
        smooth_maps(COILS, h, w, false, 1),
        Tensor::cat(
            &[
                smooth_maps(COILS, h, w, false, 2),
                smooth_maps(COILS, h, w, false, 3),
            ],
            0,
        ),
    ] {
        let op = MeasurementOperator::new(
            Box::new(Sense::new(maps, ImageDomain::Complex).unwrap()),
            mask.shallow_clone(),
        );
        let x = complex_normal(&[b, 1, h, w], 5);
        let err = relative_adjoint_error(&op, &x, &y);
        println!("adjoint identity, complex SENSE: relative error {err:.2e}");
        assert!(err <= 1e-5, "{err}");
    }
    // Real images, the phase folded into the maps.
    let sense = Sense::with_phase(smooth_maps(COILS, h, w, false, 4), &smooth_phase(h, w)).unwrap();
    assert_eq!(sense.domain(), ImageDomain::Real);
    assert_eq!(sense.channels(), COILS);
    let op = MeasurementOperator::new(Box::new(sense), mask);
    let x = standard_normal(&[b, 1, h, w], 6, Kind::Float, Device::Cpu);
    assert!(!op.adjoint(&y).is_complex());
    let err = relative_adjoint_error(&op, &x, &y);
    println!("adjoint identity, phase-folded real SENSE: relative error {err:.2e}");
    assert!(err <= 1e-5, "{err}");
}

#[test]
fn inverse_is_a_left_inverse() {
    let (h, w) = (32, 48);
    let x = complex_normal(&[2, 1, h, w], 11);
    for normalised in [true, false] {
        let t = Sense::new(
            smooth_maps(COILS, h, w, normalised, 12),
            ImageDomain::Complex,
        )
        .unwrap();
        let err = max_abs(&(t.inverse(&t.forward(&x)) - &x)) / max_abs(&x);
        println!("complex SENSE, normalised maps {normalised}: |T^-1 T x - x| / |x| = {err:.2e}");
        assert!(err < 1e-5, "{err}");
        if normalised {
            // Normalised maps: the inverse is the adjoint.
            let y = complex_normal(&[2, COILS, h, w], 13);
            assert!(max_abs(&(t.inverse(&y) - t.adjoint(&y))) < 1e-5 * max_abs(&t.adjoint(&y)));
        }
    }
    let real = standard_normal(&[2, 1, h, w], 14, Kind::Float, Device::Cpu);
    let t = Sense::with_phase(smooth_maps(COILS, h, w, true, 15), &smooth_phase(h, w)).unwrap();
    let err = max_abs(&(t.inverse(&t.forward(&real)) - &real)) / max_abs(&real);
    println!("phase-folded real SENSE: |T^-1 T x - x| / |x| = {err:.2e}");
    assert!(err < 1e-5, "{err}");
    // Outside the maps' support the inverse is 0, not a division by 0.
    let maps = smooth_maps(COILS, h, w, true, 16);
    let _ = maps.narrow(3, 0, 4).fill_(0.0);
    let t = Sense::new(maps, ImageDomain::Complex).unwrap();
    let z = t.inverse(&t.forward(&x));
    assert_eq!(max_abs(&z.narrow(3, 0, 4)), 0.0);
    assert!(max_abs(&(z - &x).narrow(3, 4, w - 4)) < 1e-5 * max_abs(&x));
}

#[test]
fn bad_maps_are_refused() {
    let real = Tensor::ones([4, 8, 8], (Kind::Float, Device::Cpu));
    let e = Sense::new(real, ImageDomain::Complex)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("complex64"), "{e}");
    let flat = Tensor::ones([8, 8], (Kind::ComplexFloat, Device::Cpu));
    let e = Sense::new(flat, ImageDomain::Complex)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("[C, H, W]"), "{e}");
    let maps = smooth_maps(4, 8, 8, true, 1);
    let e = Sense::with_phase(
        maps,
        &Tensor::zeros([1, 1, 8, 6], (Kind::Float, Device::Cpu)),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("[B, 1, H, W]"), "{e}");
}

/// The operator-generic pieces run on SENSE unchanged: P and its right inverse per coil, the
/// projection onto `{A x = y}`, CG least squares, the proximal step's endpoints and FISTA-TV.
#[test]
fn generic_data_consistency_runs_on_sense() {
    let (h, w) = (N, N);
    tch::manual_seed(20);
    let truth = Tensor::rand([1, 1, h, w], (Kind::Float, Device::Cpu));
    let maps = smooth_maps(COILS, h, w, true, 21);
    let phase = smooth_phase(h, w);
    let op = MeasurementOperator::new(
        Box::new(Sense::with_phase(maps.shallow_clone(), &phase).unwrap()),
        line_mask(4.0),
    );
    let y = op.forward(&truth);
    // keep / zero_fill per coil.
    let packed = op.keep(&y);
    assert_eq!(packed.size(), vec![1, COILS * op.n_measured()]);
    assert_eq!(max_abs(&(op.zero_fill(&packed) - &y)), 0.0);
    // Projection: A x' = y.
    let x = standard_normal(&[1, 1, h, w], 22, Kind::Float, Device::Cpu);
    let (px, it) = project(&op, &x, &y, ProjectionOptions::default());
    let res = op.residual(&px, &y)[0];
    println!("projection on phase-folded SENSE, R = 4: residual {res:.2e} after {it} CG steps");
    assert!(res < 1e-3, "{res}");
    // Least squares from 0, gamma = 0: converges on the data.
    let ls = regularised_least_squares(&op, &x.zeros_like(), &y, 0.0, 100);
    let res = op.residual(&ls, &y)[0];
    println!("CG least squares on phase-folded SENSE: residual {res:.2e}");
    assert!(res < 1e-3, "{res}");
    // The proximal step leaves x alone at lambda = 0 and moves towards the data at 1.
    assert!(max_abs(&(op.proximal(&x, &y, 0.0) - &x)) < 1e-6);
    let before = op.residual(&x, &y)[0];
    let after = op.residual(&op.proximal(&x, &y, 1.0), &y)[0];
    assert!(after < before, "{after} vs {before}");
    // FISTA-TV (the compressed-sensing baseline) on the real operator: better than the
    // coil-combined zero-filled image.
    let tv = fista_tv(&op, &y, &FistaTv::default().with_weight(1e-4)).unwrap();
    let zero_filled = op.transform.inverse_masked(&y, &op.mask);
    let (e_tv, e_zf) = (norm(&(&tv.x - &truth)), norm(&(&zero_filled - &truth)));
    println!("FISTA-TV on phase-folded SENSE: error {e_tv:.3} vs zero-filled {e_zf:.3}");
    assert!(e_tv < e_zf);
    // On complex images FISTA-TV refuses, with the fix.
    let complex = MeasurementOperator::new(
        Box::new(Sense::new(maps, ImageDomain::Complex).unwrap()),
        line_mask(4.0),
    );
    let err = fista_tv(
        &complex,
        &complex.forward(&truth),
        &FistaTv::default().with_weight(1e-4),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("real image domain"), "{err}");
}

const RSS_NUMPY: &str = r#"
import sys, numpy as np
out, inp, b, c, h, w = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
v = np.fromfile(inp, "<f8").reshape(2, b, c, h, w)
k = (v[0] + 1j * v[1]) * np.fromfile(sys.argv[7], "<f8").reshape(1, 1, h, w)
im = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho", axes=(-2, -1)), axes=(-2, -1))
np.sqrt((np.abs(im) ** 2).sum(1)).astype("<f8").tofile(out)
"#;

#[test]
fn rss_equals_numpy() {
    let (b, c, h, w) = (2i64, 4i64, 32i64, 24i64);
    let sense = Sense::new(smooth_maps(c, h, w, true, 31), ImageDomain::Complex).unwrap();
    let mask = line_mask(3.0).narrow(2, 0, h).narrow(3, 0, w).contiguous();
    let op = MeasurementOperator::new(Box::new(sense), mask.shallow_clone());
    let y = complex_normal(&[b, c, h, w], 32).to_kind(Kind::ComplexDouble);
    let got = rss(&op, &y);
    assert_eq!(got.size(), vec![b, 1, h, w]);
    let dir = tempfile::tempdir().unwrap();
    let (pk, pm) = (dir.path().join("k.f64"), dir.path().join("m.f64"));
    let flat = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let mut values = flat(&y.real());
    values.extend(flat(&y.imag()));
    common::write_f64(&pk, &values);
    common::write_f64(&pm, &flat(&mask));
    let dims = [b, c, h, w].map(|d| d.to_string());
    let mut args = vec![pk.to_str().unwrap()];
    args.extend(dims.iter().map(String::as_str));
    args.push(pm.to_str().unwrap());
    let want = common::python_array(RSS_NUMPY, &args);
    let got = flat(&got);
    let scale = want.iter().fold(0f64, |m, v| m.max(*v));
    let err = got
        .iter()
        .zip(&want)
        .fold(0f64, |m, (g, e)| m.max((g - e).abs()));
    println!("RSS vs numpy: max error {:.2e} of max {scale:.2}", err);
    assert!(err <= 1e-6 * scale, "{err}");
    // Through the baseline registry.
    let b = Baseline::parse("rss").unwrap();
    assert_eq!(b.kind(), BaselineKind::Rss);
    let via = b.reconstruct(&op, &y).unwrap();
    assert!(max_abs(&(via.to_kind(Kind::Double) - rss(&op, &y))) < 1e-9);
}

/// BART's Shepp-Logan `[H, W]` and its coil sensitivities `[C, H, W]` (unnormalised), both
/// complex64, written to `dir`.
fn bart_phantom(dir: &Path) -> (Tensor, Tensor) {
    let (img, sens) = (dir.join("img"), dir.join("sens"));
    let n = N.to_string();
    common::bart(&["phantom", "-x", &n, img.to_str().unwrap()]);
    common::bart(&[
        "phantom",
        "-S",
        &COILS.to_string(),
        "-x",
        &n,
        sens.to_str().unwrap(),
    ]);
    let (dims, x) = common::read_cfl(&img);
    assert_eq!(dims[..2], [N, N]);
    let (dims, s) = common::read_cfl(&sens);
    assert_eq!(dims[..4], [N, N, 1, COILS]);
    // Scaled to a root sum of squares of at most 1 (BART's peak at ~1.8e5): a global factor,
    // which changes no map, keeps intensities near the image's.
    let s = s.reshape([COILS, N, N]);
    let peak = max_abs(
        &s.abs()
            .square()
            .sum_dim_intlist(0, false, None::<Kind>)
            .sqrt(),
    );
    (x.reshape([N, N]), s / peak)
}

#[test]
fn centred_fft_equals_bart_fft() {
    let dir = tempfile::tempdir().unwrap();
    let x = complex_normal(&[3, 64, 48], 41);
    let (xin, kout) = (dir.path().join("x"), dir.path().join("k"));
    common::write_cfl(&xin, &x, &[48, 64, 1, 3]);
    common::bart(&[
        "fft",
        "-u",
        "3",
        xin.to_str().unwrap(),
        kout.to_str().unwrap(),
    ]);
    let (_, k) = common::read_cfl(&kout);
    let err = max_abs(&(centred_fft2(&x) - k.reshape([3, 64, 48]))) / max_abs(&centred_fft2(&x));
    println!("centred FFT vs bart fft -u: relative max error {err:.2e}");
    assert!(err < 1e-5, "{err}");
}

/// Pearson correlation of two real vectors.
fn correlation(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
    let (a, b) = (&a - a.mean(None::<Kind>), &b - b.mean(None::<Kind>));
    (&a * &b).sum(Kind::Double).double_value(&[]) / (norm(&a) * norm(&b))
}

/// Shepp-Logan times BART's 8 coil maps, k-space by our FFT: ESPIRiT's maps against
/// `bart ecalib -m1` on the same k-space with the same options (BART's defaults), then SENSE
/// with BART's maps against `bart pics -l2` on the same undersampled data.
#[test]
fn espirit_and_sense_match_bart() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let s = |name: &str| p(name).to_str().unwrap().to_string();
    let (image, coils) = bart_phantom(dir.path());
    let kspace = centred_fft2(&(&coils * &image));
    common::write_cfl(&p("ksp"), &kspace, &[N, N, 1, COILS]);
    common::bart(&[
        "ecalib",
        "-m1",
        "-r",
        "24",
        "-k",
        "6",
        "-t",
        "0.001",
        "-c",
        "0.8",
        &s("ksp"),
        &s("bart_maps"),
        &s("bart_ev"),
    ]);
    let (_, bart_maps) = common::read_cfl(&p("bart_maps"));
    let bart_maps = bart_maps.reshape([COILS, N, N]);
    let (_, bart_ev) = common::read_cfl(&p("bart_ev"));
    let bart_ev = bart_ev.reshape([N, N]).abs();

    let ours = espirit(&kspace, &EspiritOptions::default()).unwrap();
    assert_eq!(ours.maps.size(), vec![COILS, N, N]);
    assert_eq!(ours.calib, [24, 24]);
    println!("ESPIRiT: {} of {} kernels kept", ours.kernels, COILS * 36);
    // Inside the object (the phantom above 10% of its maximum).
    let inside = image.abs().gt(0.1 * max_abs(&image));
    let count = i64::try_from(inside.sum(Kind::Int64)).unwrap();
    let pick = |t: &Tensor| t.masked_select(&inside);
    let ev_err = max_abs(&(pick(&ours.eigenvalues) - pick(&bart_ev)));
    println!("eigenvalue maps inside ({count} pixels): max difference {ev_err:.2e}");
    let mut worst = f64::INFINITY;
    for c in 0..COILS {
        let r = correlation(
            &pick(&ours.maps.select(0, c).abs()),
            &pick(&bart_maps.select(0, c).abs()),
        );
        println!("coil {c}: correlation of map magnitudes {r:.6}");
        worst = worst.min(r);
    }
    assert!(worst >= 0.99, "worst coil correlation {worst}");
    // The subspace per pixel, |<S_ours, S_bart>| (1 when the two differ by a phase only), and
    // the maps themselves (equal when the phase references agree).
    let overlap = (ours.maps.conj() * &bart_maps)
        .sum_dim_intlist(0, false, None::<Kind>)
        .abs();
    let mean_overlap = pick(&overlap).mean(Kind::Double).double_value(&[]);
    let map_err = norm(
        &(&ours.maps - &bart_maps).masked_select(&inside.unsqueeze(0).expand([COILS, N, N], false)),
    ) / norm(
        &bart_maps.masked_select(&inside.unsqueeze(0).expand([COILS, N, N], false)),
    );
    println!(
        "mean |<S_ours, S_bart>| inside {mean_overlap:.6}; relative map difference {map_err:.2e}"
    );
    assert!(mean_overlap > 0.99, "{mean_overlap}");
    assert!(map_err < 0.1, "{map_err}");

    // SENSE-CG with BART's maps against `bart pics -l2 -r lambda -w 1` (-w 1: no data scaling,
    // so BART's lambda is ours: it solves (A^H A + lambda I) x = A^H y, checked at 2x and x/2).
    let mask = line_mask(3.0);
    let y = kspace.unsqueeze(0) * &mask;
    common::write_cfl(&p("y"), &y, &[N, N, 1, COILS]);
    let lambda = 0.02;
    let opts = SenseCg {
        lambda,
        iterations: 200,
    };
    common::bart(&[
        "pics",
        "-l2",
        "-r",
        &lambda.to_string(),
        "-w",
        "1",
        "-i",
        "200",
        &s("y"),
        &s("bart_maps"),
        &s("pics"),
    ]);
    let (_, pics) = common::read_cfl(&p("pics"));
    let pics = pics.reshape([1, 1, N, N]);
    let op = MeasurementOperator::new(
        Box::new(Sense::new(bart_maps.shallow_clone(), ImageDomain::Complex).unwrap()),
        mask.shallow_clone(),
    );
    let x = sense(&op, &y, &opts).unwrap();
    let diff = norm(&(&x - &pics)) / norm(&pics);
    println!("SENSE-CG vs bart pics -l2 -r {lambda}: relative difference {diff:.2e}");
    assert!(diff < 1e-3, "{diff}");
    let half = sense(
        &op,
        &y,
        &SenseCg {
            lambda: lambda / 2.0,
            ..opts
        },
    )
    .unwrap();
    assert!(norm(&(&half - &pics)) / norm(&pics) > 10.0 * diff);
    // Through the registry, the magnitude.
    let b = Baseline::Sense(opts);
    assert_eq!(Baseline::parse("sense").unwrap().kind(), b.kind());
    assert!(max_abs(&(b.reconstruct(&op, &y).unwrap() - x.abs())) < 1e-6);

    // Our ESPIRiT maps in SENSE reconstruct the phantom as well as BART's: the magnitude
    // against the truth |x| rss(S) inside the object (normalised maps leave rss(S) in the image).
    let ours_op = MeasurementOperator::new(
        Box::new(Sense::new(ours.maps.shallow_clone(), ImageDomain::Complex).unwrap()),
        mask,
    );
    let x_ours = sense(&ours_op, &y, &opts).unwrap();
    let truth = image.abs()
        * coils
            .abs()
            .square()
            .sum_dim_intlist(0, false, None::<Kind>)
            .sqrt();
    let error = |x: &Tensor| {
        norm(&(x.abs().reshape([N, N]) - &truth).masked_select(&inside))
            / norm(&truth.masked_select(&inside))
    };
    let (e_ours, e_bart) = (error(&x_ours), error(&pics));
    let mag = norm(&(x_ours.abs() - pics.abs())) / norm(&pics);
    println!(
        "SENSE R = 3 against the truth inside: our maps {e_ours:.4}, BART's {e_bart:.4}; \
         |ours| vs |pics| {mag:.2e}"
    );
    assert!(e_ours < 1.2 * e_bart + 1e-3, "{e_ours} vs {e_bart}");
}

/// The phase-folded path end to end: an image with a smooth phase, maps and phase estimated
/// from the ACS, and the real-domain inverse of the data recovering the magnitude.
#[test]
fn calibration_phase_lets_a_real_image_explain_complex_data() {
    let dir = tempfile::tempdir().unwrap();
    let (image, coils) = bart_phantom(dir.path());
    let phase = smooth_phase(N, N).reshape([N, N]);
    // With normalised maps the image SENSE sees is |x| rss(S): the true maps' intensity
    // profile stays in the image.
    let magnitude = image.abs()
        * coils
            .abs()
            .square()
            .sum_dim_intlist(0, false, None::<Kind>)
            .sqrt();
    let complex_image = Tensor::polar(&image.abs(), &phase);
    let kspace = centred_fft2(&(&coils * &complex_image));
    for reference in [
        PhaseReference::PrincipalComponent,
        PhaseReference::FirstCoil,
    ] {
        let est = espirit(
            &kspace,
            &EspiritOptions {
                phase_reference: reference,
                ..Default::default()
            },
        )
        .unwrap();
        let phi = calibration_phase(&kspace, &est.maps, 24).unwrap();
        assert_eq!(phi.size(), vec![1, 1, N, N]);
        let t = Sense::with_phase(est.maps.shallow_clone(), &phi).unwrap();
        let x = t.inverse(&kspace.unsqueeze(0));
        let inside = magnitude.gt(0.1 * max_abs(&magnitude));
        let err = norm(&(x.reshape([N, N]) - &magnitude).masked_select(&inside))
            / norm(&magnitude.masked_select(&inside));
        println!(
            "{reference:?}: real-domain inverse vs the magnitude inside: relative error {err:.3}"
        );
        assert!(err < 0.1, "{err}");
    }
    // The low-resolution fallback maps point the same way as ESPIRiT's inside the object.
    let lowres = lowres_maps(&kspace, 24).unwrap();
    let est = espirit(&kspace, &EspiritOptions::default()).unwrap();
    let overlap = (lowres.conj() * &est.maps)
        .sum_dim_intlist(0, false, None::<Kind>)
        .abs();
    let inside = magnitude.gt(0.1 * max_abs(&magnitude));
    let mean = overlap
        .masked_select(&inside)
        .mean(Kind::Double)
        .double_value(&[]);
    println!("lowres maps: mean |<S_lowres, S_espirit>| inside {mean:.4}");
    assert!(mean > 0.95, "{mean}");
}

/// On undersampled k-space the calibration region is the fully sampled centre (BART's rule):
/// 24 rows by the mask's centre width, and a centre narrower than the kernel is refused.
#[test]
fn espirit_calibrates_on_the_masks_fully_sampled_centre() {
    let dir = tempfile::tempdir().unwrap();
    let (image, coils) = bart_phantom(dir.path());
    let kspace = centred_fft2(&(&coils * &image));
    // (centre fraction, fastMRI's centre lines round(64 cf)); an outer line next to the centre
    // block widens the fully sampled run.
    for (center_fraction, low) in [(0.16, 10usize), (0.08, 5)] {
        let mask = MaskSpec {
            kind: MaskKind::Equispaced,
            acceleration: 4.0,
            center_fraction,
            seed: 0,
        }
        .build(N, N)
        .unwrap();
        let cols = Vec::<f32>::try_from(mask.select(2, 0).flatten(0, -1)).unwrap();
        let cols: Vec<bool> = cols.iter().map(|&m| m > 0.5).collect();
        let width = calibration_width(&cols);
        assert!((low..=low + 2).contains(&width), "{width}");
        let undersampled = (&kspace * &mask).squeeze_dim(0);
        match espirit(&undersampled, &EspiritOptions::default()) {
            Ok(est) => {
                assert_eq!(est.calib, [24, width]);
                let full = espirit(&kspace, &EspiritOptions::default()).unwrap();
                let inside = image.abs().gt(0.1 * max_abs(&image));
                let overlap = (est.maps.conj() * &full.maps)
                    .sum_dim_intlist(0, false, None::<Kind>)
                    .abs()
                    .masked_select(&inside)
                    .mean(Kind::Double)
                    .double_value(&[]);
                println!("ACS 24x{width}: mean |<S, S_full ACS>| inside {overlap:.4}");
                assert!(overlap > 0.95, "{overlap}");
            }
            Err(e) => {
                assert!(width < 6);
                assert!(e.to_string().contains("smaller than the 6x6 kernel"), "{e}");
            }
        }
    }
}
