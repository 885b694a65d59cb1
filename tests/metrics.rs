//! PSNR, SSIM and NRMSE against scikit-image on the same arrays (random and real images, several
//! sizes, square and not), the ROI rules, the data-consistency residual and bad input.

mod common;

use scorerecon::metrics::{self, Roi};
use scorerecon::ops::identity::Identity;
use scorerecon::ops::mri::MriFft;
use scorerecon::ops::rng::standard_normal;
use scorerecon::ops::MeasurementOperator;
use tch::{Device, Kind, Tensor};

/// scikit-image's metrics of `test` against `ref`, whole image and inside `roi`: PSNR and NRMSE
/// on the ROI's pixels, SSIM as the mean of skimage's full SSIM map over the ROI within its crop.
const SKIMAGE: &str = r#"
import sys, numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity, normalized_root_mse
out, inp, h, w, data_range = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
ref, test, roi = np.fromfile(inp, "<f8").reshape(3, h, w)
roi = roi > 0.5
kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range)
ssim, smap = structural_similarity(ref, test, full=True, **kw)
pad = 5
crop = (slice(pad, h - pad), slice(pad, w - pad))
res = [
    peak_signal_noise_ratio(ref, test, data_range=data_range),
    ssim,
    normalized_root_mse(ref, test),
    peak_signal_noise_ratio(ref[roi], test[roi], data_range=data_range),
    smap[crop][roi[crop]].mean(),
    normalized_root_mse(ref[roi], test[roi]),
]
np.array(res, dtype="<f8").tofile(out)
"#;

fn vec64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous().flatten(0, -1)).unwrap()
}

/// Compare our metrics with skimage's for one pair of `[H, W]` images and an ROI.
fn check_against_skimage(
    reference: &Tensor,
    test: &Tensor,
    roi: &Roi,
    data_range: f64,
    what: &str,
) {
    let (h, w) = (reference.size()[0], reference.size()[1]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.f64");
    let mut all = vec64(reference);
    all.extend(vec64(test));
    all.extend(vec64(&roi.mask().to_kind(Kind::Double)));
    common::write_f64(&p, &all);
    let e = common::python_array(
        SKIMAGE,
        &[
            p.to_str().unwrap(),
            &h.to_string(),
            &w.to_string(),
            &format!("{data_range:.17e}"),
        ],
    );
    let ours = [
        metrics::psnr(test, reference, data_range, None).unwrap()[0],
        metrics::ssim(test, reference, data_range, None).unwrap()[0],
        metrics::nrmse(test, reference, None).unwrap()[0],
        metrics::psnr(test, reference, data_range, Some(roi)).unwrap()[0],
        metrics::ssim(test, reference, data_range, Some(roi)).unwrap()[0],
        metrics::nrmse(test, reference, Some(roi)).unwrap()[0],
    ];
    let names = ["psnr", "ssim", "nrmse", "roi psnr", "roi ssim", "roi nrmse"];
    for i in 0..6 {
        assert!(
            (ours[i] - e[i]).abs() <= 1e-4,
            "{what} {h}x{w}: {} ours {} skimage {}",
            names[i],
            ours[i],
            e[i]
        );
    }
    // `assess` is the same three numbers.
    let s = metrics::assess(test, reference, data_range, None).unwrap()[0];
    assert_eq!([s.psnr, s.ssim, s.nrmse], [ours[0], ours[1], ours[2]]);
}

#[test]
fn random_images_match_skimage() {
    for (i, (h, w)) in [(11i64, 11i64), (16, 16), (37, 53), (64, 40)]
        .into_iter()
        .enumerate()
    {
        let seed = 10 * i as u64;
        let reference = standard_normal(&[h, w], seed, Kind::Float, Device::Cpu).sigmoid();
        // A blurred, noisy version: structure partly kept, so SSIM is between 0 and 1.
        let noise = standard_normal(&[h, w], seed + 1, Kind::Float, Device::Cpu) * 0.1;
        let test = (&reference * 0.8 + reference.roll([1], [1]) * 0.2 + noise).to_kind(Kind::Float);
        let roi = Roi::circle(h, w, 0.9).unwrap();
        check_against_skimage(&reference, &test, &roi, 1.0, "random");
    }
}

#[test]
fn real_images_match_skimage() {
    // Three real scans: the MNI152 T1 (an axial slice, 197x233), pydicom's CT_small (128x128, HU)
    // and a Siemens MR slice shipped with nibabel (256x256).
    let load = r#"
import sys, numpy as np, nibabel as nib, pydicom
out, mni, ct, mr = sys.argv[1:5]
a = np.asarray(nib.load(mni).dataobj, dtype=np.float64)[:, :, 90]
b = pydicom.dcmread(ct)
b = b.pixel_array.astype(np.float64) * float(b.RescaleSlope) + float(b.RescaleIntercept)
c = pydicom.dcmread(mr).pixel_array.astype(np.float64)
np.concatenate([[a.shape[0], a.shape[1], b.shape[0], b.shape[1], c.shape[0], c.shape[1]],
                a.ravel(), b.ravel(), c.ravel()]).astype("<f8").tofile(out)
"#;
    let mni = common::data(
        "nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    );
    let ct = common::pydicom_file("CT_small.dcm");
    let mr = common::data("nibabel/nibabel/nicom/tests/data/0.dcm");
    let v = common::python_array(
        load,
        &[
            mni.to_str().unwrap(),
            ct.to_str().unwrap(),
            mr.to_str().unwrap(),
        ],
    );
    let shapes: Vec<(i64, i64)> = (0..3)
        .map(|i| (v[2 * i] as i64, v[2 * i + 1] as i64))
        .collect();
    let mut at = 6;
    for (k, (h, w)) in shapes.into_iter().enumerate() {
        let n = (h * w) as usize;
        let reference = Tensor::from_slice(&v[at..at + n]).reshape([h, w]);
        at += n;
        let range = metrics::value_range(&reference);
        // Distortions a reconstruction makes: noise, a small blur, a shift in intensity.
        let noise = standard_normal(&[h, w], k as u64, Kind::Double, Device::Cpu) * (0.03 * range);
        let blurred =
            (&reference * 2.0 + reference.roll([1], [0]) + reference.roll([-1], [1])) / 4.0;
        let test = blurred + noise + 0.01 * range;
        // ROI: the body (above a tenth of the range over the minimum) minus a block.
        let min = reference.min().double_value(&[]);
        let exclusion = Tensor::zeros([h, w], (Kind::Float, Device::Cpu));
        let _ = exclusion.narrow(0, h / 2, 8).narrow(1, w / 2, 8).fill_(1.0);
        let roi = Roi::body(&reference, min + 0.1 * range)
            .unwrap()
            .exclude(&exclusion)
            .unwrap();
        check_against_skimage(&reference, &test, &roi, range, ["mni", "ct", "mr"][k]);
    }
}

#[test]
fn roi_circle_is_the_centred_disc() {
    // Independent construction of the same disc in NumPy.
    let disc = r#"
import sys, numpy as np
out, h, w, f = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
yy, xx = np.mgrid[0:h, 0:w]
r = f * min(h, w) / 2
((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= r * r).astype("<f8").tofile(out)
"#;
    for (h, w, f) in [(64, 64, 1.0), (33, 50, 0.8)] {
        let e = common::python_array(disc, &[&h.to_string(), &w.to_string(), &f.to_string()]);
        let ours = vec64(&Roi::circle(h, w, f).unwrap().mask().to_kind(Kind::Double));
        assert_eq!(ours, e, "{h}x{w}");
    }
}

#[test]
fn batches_give_one_value_per_image() {
    let x = standard_normal(&[3, 1, 24, 24], 1, Kind::Float, Device::Cpu);
    let r = standard_normal(&[3, 1, 24, 24], 2, Kind::Float, Device::Cpu);
    let p = metrics::psnr(&x, &r, 4.0, None).unwrap();
    assert_eq!(p.len(), 3);
    for i in 0..3 {
        let one = metrics::psnr(&x.get(i).get(0), &r.get(i).get(0), 4.0, None).unwrap()[0];
        assert!((one - p[i as usize]).abs() < 1e-12);
        // Closed form: PSNR = 10 log10(range^2 / MSE).
        let mse = (x.get(i).to_kind(Kind::Double) - r.get(i).to_kind(Kind::Double))
            .square()
            .mean(Kind::Double)
            .double_value(&[]);
        assert!((p[i as usize] - 10.0 * (16.0 / mse).log10()).abs() < 1e-9);
    }
    // Identical images: SSIM 1, NRMSE 0, PSNR infinite.
    let s = metrics::assess(&r, &r, 4.0, None).unwrap();
    assert!(s
        .iter()
        .all(|s| (s.ssim - 1.0).abs() < 1e-12 && s.nrmse == 0.0 && s.psnr.is_infinite()));
}

#[test]
fn each_image_of_a_batch_uses_its_own_data_range() {
    // Three images of different intensity ranges in one batch, with a block excluded from the
    // second: scikit-image scores each alone with its own range (numpy's max - min outside the
    // block), as per-slice metrics of a multi-slice job must.
    let (b, h, w) = (3i64, 40i64, 36i64);
    let base = standard_normal(&[b, 1, h, w], 21, Kind::Double, Device::Cpu).sigmoid();
    let scale = Tensor::from_slice(&[1.0f64, 3.5, 0.4]).reshape([b, 1, 1, 1]);
    let reference = &base * &scale;
    let noise = standard_normal(&[b, 1, h, w], 22, Kind::Double, Device::Cpu) * 0.05;
    let test = &reference * 0.9 + reference.roll([1], [3]) * 0.1 + noise * &scale;
    let exclude = Tensor::zeros([b, 1, h, w], (Kind::Double, Device::Cpu));
    let _ = exclude.get(1).narrow(1, 5, 9).narrow(2, 7, 6).fill_(1.0);
    let script = r#"
import sys, numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
out, inp, b, h, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ref, test, excl = np.fromfile(inp, "<f8").reshape(3, b, h, w)
res = []
for i in range(b):
    r = ref[i][excl[i] < 0.5].max() - ref[i][excl[i] < 0.5].min()
    res += [r, peak_signal_noise_ratio(ref[i], test[i], data_range=r),
            structural_similarity(ref[i], test[i], data_range=r, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False),
            np.linalg.norm(test[i] - ref[i]) / np.linalg.norm(ref[i])]
np.array(res, dtype="<f8").tofile(out)
"#;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.f64");
    let mut all = vec64(&reference);
    all.extend(vec64(&test));
    all.extend(vec64(&exclude));
    common::write_f64(&p, &all);
    let e = common::python_array(
        script,
        &[
            p.to_str().unwrap(),
            &b.to_string(),
            &h.to_string(),
            &w.to_string(),
        ],
    );
    let ranges = metrics::value_range_per_image(&reference, Some(&exclude)).unwrap();
    let scores = metrics::assess_per_image(&test, &reference, &ranges, None).unwrap();
    for i in 0..b as usize {
        let (range, psnr, ssim, nrmse) = (e[4 * i], e[4 * i + 1], e[4 * i + 2], e[4 * i + 3]);
        assert!(
            (ranges[i] - range).abs() < 1e-12,
            "image {i}: range {} vs numpy {range}",
            ranges[i]
        );
        assert!(
            (scores[i].psnr - psnr).abs() < 1e-4,
            "image {i}: psnr {} vs skimage {psnr}",
            scores[i].psnr
        );
        assert!(
            (scores[i].ssim - ssim).abs() < 1e-4,
            "image {i}: ssim {} vs skimage {ssim}",
            scores[i].ssim
        );
        assert!(
            (scores[i].nrmse - nrmse).abs() < 1e-6,
            "image {i}: nrmse {} vs numpy {nrmse}",
            scores[i].nrmse
        );
    }
    // The ranges differ by the scales, so a range over the whole batch would change the scores.
    assert!(
        ranges[1] > 3.0 * ranges[0] && ranges[2] < 0.5 * ranges[0],
        "{ranges:?}"
    );
    assert!(
        metrics::assess_per_image(&test, &reference, &ranges[..2], None)
            .unwrap_err()
            .to_string()
            .contains("one per image")
    );
}

#[test]
fn data_consistency_residual() {
    let (h, w) = (32, 32);
    let mask = standard_normal(&[1, 1, h, w], 3, Kind::Float, Device::Cpu)
        .gt(0.0)
        .to_kind(Kind::Float);
    for op in [
        MeasurementOperator::new(Box::new(MriFft::real(h, w).unwrap()), mask.shallow_clone()),
        MeasurementOperator::new(Box::new(Identity::new(h, w)), mask.shallow_clone()),
    ] {
        let truth = standard_normal(&[2, 1, h, w], 4, Kind::Float, Device::Cpu);
        let y = op.forward(&truth);
        // |A x - y| / |y|: 0 at the truth, 1 at x = 0, |lambda - 1| at lambda * truth.
        assert!(metrics::data_consistency(&op, &truth, &y)
            .iter()
            .all(|r| *r < 1e-6));
        assert!(metrics::data_consistency(&op, &truth.zeros_like(), &y)
            .iter()
            .all(|r| (r - 1.0).abs() < 1e-6));
        let r = metrics::data_consistency(&op, &(&truth * 0.7), &y);
        assert!(r.iter().all(|r| (r - 0.3).abs() < 1e-5), "{r:?}");
    }
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let a = Tensor::ones([20, 20], (Kind::Float, Device::Cpu));
    let err = |r: anyhow::Result<Vec<f64>>| r.unwrap_err().to_string();
    assert!(err(metrics::psnr(&a, &a, 0.0, None)).contains("data range"));
    assert!(err(metrics::ssim(&a, &a, f64::NAN, None)).contains("data range"));
    let nan = a.copy();
    let _ = nan.get(3).get(4).fill_(f64::NAN);
    assert!(err(metrics::ssim(&nan, &a, 1.0, None)).contains("NaN"));
    assert!(err(metrics::nrmse(&a, &nan, None)).contains("reference contains NaN"));
    let b = Tensor::ones([20, 21], (Kind::Float, Device::Cpu));
    assert!(err(metrics::psnr(&a, &b, 1.0, None)).contains("differ"));
    let small = Tensor::ones([10, 30], (Kind::Float, Device::Cpu));
    assert!(err(metrics::ssim(&small, &small, 1.0, None)).contains("11x11"));
    let c = Tensor::complex(&a, &a);
    assert!(err(metrics::psnr(&c, &a, 1.0, None)).contains("complex"));
    let three = Tensor::ones([2, 3, 20, 20], (Kind::Float, Device::Cpu));
    assert!(err(metrics::psnr(&three, &three, 1.0, None)).contains("shape"));
    // An ROI that lies entirely in SSIM's 5-pixel border leaves nothing to average.
    let edge = Tensor::zeros([20, 20], (Kind::Float, Device::Cpu));
    let _ = edge.narrow(0, 0, 3).fill_(1.0);
    let roi = Roi::from_mask(&edge).unwrap();
    assert!(err(metrics::ssim(&a, &a, 1.0, Some(&roi))).contains("empty"));
    let wrong = Roi::circle(10, 10, 1.0).unwrap();
    assert!(err(metrics::psnr(&a, &a, 1.0, Some(&wrong))).contains("does not fit"));
}
