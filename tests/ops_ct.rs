//! CT operators against scikit-image (radon / iradon, called through `.venv`) and closed forms.

mod common;

use scorerecon::ops::fbp::Filter;
use scorerecon::ops::radon::{self, Geometry, Radon};
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
    let n_det = radon::default_n_det(n);
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
    for (f, expected) in Filter::ALL.iter().zip(&r.iradon) {
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
        let rows = radon::sparse_view_rows(full, full.div_ceil(3)).unwrap();
        let mask = radon::rows_mask(&rows, full, g.n_det);
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
    let rows = radon::sparse_view_rows(60, 12).unwrap();
    let a = MeasurementOperator::new(
        Box::new(Radon::new(g.clone()).unwrap()),
        radon::rows_mask(&rows, 60, g.n_det),
    );
    let x = Tensor::rand([2, 1, 48, 48], (Kind::Float, Device::Cpu));
    let y = a.forward(&Tensor::rand([2, 1, 48, 48], (Kind::Float, Device::Cpu)));
    // lambda = 0: x' = T^-1 T x, the FBP of the full sinogram of x.
    let x0 = a.proximal(&x, &y, 0.0);
    let x_fbp = a.transform.inverse(&a.transform.forward(&x));
    assert!(f64::try_from((&x0 - &x_fbp).abs().max()).unwrap() < 1e-5);
    // lambda = 1 with every row measured: x' = T^-1 y whatever x was.
    let full = MeasurementOperator::full(Box::new(Radon::new(g.clone()).unwrap()));
    let y_full = full.forward(&Tensor::rand([2, 1, 48, 48], (Kind::Float, Device::Cpu)));
    let expected = full.transform.inverse(&y_full);
    for start in [&x, &Tensor::zeros_like(&x)] {
        let got = full.proximal(start, &y_full, 1.0);
        assert!(f64::try_from((&got - &expected).abs().max()).unwrap() < 1e-5);
    }
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
    let e = radon::sparse_view_rows(180, 200).unwrap_err().to_string();
    assert!(e.contains("more views than the full set"), "{e}");
    let e = radon::sparse_view_rows(180, 0).unwrap_err().to_string();
    assert!(e.contains("at least one view"), "{e}");
    let e = radon::limited_angle_rows(&radon::full_angles(180), 0.0, 270.0)
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
