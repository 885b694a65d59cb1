//! Multi-coil MRI end to end: `simulate --task mri --coils 8` writes a fastMRI-style HDF5 file that
//! h5py reads as fastMRI lays it out and whose fully sampled RSS (numpy, fastMRI's definition) is
//! the image simulated; `mri` reconstructs it and a simulated multi-coil scan of an image with the
//! coil baselines; damaged k-space files are refused with nothing written.

mod common;

use common::{bin, metrics, min_pc, phantoms, run_cli as run, run_python};
use std::path::Path;

/// 64x64 MR phantoms: `scan.nii.gz` (the input) and `refs/train.nii.gz` (the empirical prior).
fn scans(root: &Path) {
    std::fs::create_dir_all(root.join("refs")).unwrap();
    phantoms(&root.join("refs/train.nii.gz"), 24, 64, 1, "MR");
    phantoms(&root.join("scan.nii.gz"), 20, 64, 2, "MR");
}

fn simulate(root: &Path, name: &str, acceleration: &str) -> std::path::PathBuf {
    let out = root.join(name);
    let (ok, stdout, stderr) = run(&[
        "simulate",
        "--task",
        "mri",
        "--input",
        root.join("scan.nii.gz").to_str().unwrap(),
        "--slice",
        "4",
        "--coils",
        "8",
        "--acceleration",
        acceleration,
        "--center-fraction",
        "0.16",
        "--mask",
        "equispaced",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "simulate failed:\n{stdout}\n{stderr}");
    out
}

#[test]
fn simulated_kspace_file_is_fastmri_layout_and_its_rss_is_the_image() {
    let dir = tempfile::tempdir().unwrap();
    scans(dir.path());
    let full = simulate(dir.path(), "full", "1");
    let under = simulate(dir.path(), "under", "4");
    // fastMRI's definition (fastmri.rss of fastmri.ifft2c): the fully sampled RSS equals the image
    // simulated (the simulated maps have a unit RSS), read back by nibabel.
    let script = r#"
import sys, h5py, numpy as np, nibabel as nib
full, under = sys.argv[1], sys.argv[2]
ifft2c = lambda k: np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho", axes=(-2, -1)), axes=(-2, -1))
with h5py.File(full + "/kspace.h5", "r") as f:
    k = f["kspace"][()]
    rss_file = f["reconstruction_rss"][()]
    assert k.dtype == np.complex64 and k.shape == (1, 8, 64, 64), (k.dtype, k.shape)
    assert f["mask"].shape == (64,) and f["mask"][()].all()
    assert "encodedSpace" in f["ismrmrd_header"][()].decode()
rss = np.sqrt((np.abs(ifft2c(k.astype(np.complex128))) ** 2).sum(axis=1))[0]
ref = np.asarray(nib.load(full + "/reference.nii.gz").dataobj, dtype=np.float64)[:, :, 0].T
print(np.linalg.norm(rss - ref) / np.linalg.norm(ref), np.linalg.norm(rss_file[0] - ref) / np.linalg.norm(ref))
with h5py.File(under + "/kspace.h5", "r") as f:
    k, m = f["kspace"][()], f["mask"][()]
# Unmeasured columns hold zeros; the measured ones equal the fully sampled file's.
print(np.abs(k[..., m < 0.5]).max(), m.sum(), np.abs(k[..., m > 0.5] - np.asarray(h5py.File(full + "/kspace.h5")["kspace"])[..., m > 0.5]).max())
"#;
    let o = run_python(script, &[full.to_str().unwrap(), under.to_str().unwrap()]);
    let v: Vec<f64> = o.split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert!(v[0] < 1e-5, "RSS vs the image: relative error {}", v[0]);
    assert!(v[1] < 1e-6, "reconstruction_rss vs the image: {}", v[1]);
    assert_eq!(v[2], 0.0, "unmeasured columns must be zero");
    // fastMRI's equispaced mask at 4x with 0.16 of 64 columns: 10 centre + outer lines.
    assert!((16.0..=26.0).contains(&v[3]), "{} measured columns", v[3]);
    assert_eq!(v[4], 0.0, "measured columns differ between the files");
}

#[test]
fn mri_reconstructs_a_multicoil_file_and_a_simulated_coil_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    scans(root);
    let under = simulate(root, "under", "4");
    let refs = format!("empirical:{}", root.join("refs").display());
    let out = root.join("recon");
    let input = under.join("kspace.h5");
    let (ok, stdout, stderr) = run(&[
        "mri",
        "--input",
        input.to_str().unwrap(),
        "--model",
        &refs,
        "--steps",
        &min_pc(),
        "--tv-weight",
        "1e-2",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "mri on kspace.h5 failed:\n{stdout}\n{stderr}");
    let m = metrics(&out);
    for method in ["rss", "sense", "tv", "score"] {
        assert!(
            m["methods"][method]["psnr"].is_number(),
            "{method}: {}",
            m["methods"]
        );
    }
    let psnr = |m: &serde_json::Value, k: &str| m["methods"][k]["psnr"].as_f64().unwrap();
    // 8 coils at 4x: SENSE unfolds what zero filling aliases.
    assert!(
        psnr(&m, "sense") > psnr(&m, "rss") + 3.0,
        "SENSE {} vs RSS {}",
        psnr(&m, "sense"),
        psnr(&m, "rss")
    );
    // The metrics against the file's reference, recomputed by scikit-image from the written files.
    let script = r#"
import sys, numpy as np, nibabel as nib
from skimage.metrics import peak_signal_noise_ratio
d = sys.argv[1]
load = lambda f: np.asarray(nib.load(d + "/" + f).dataobj, dtype=np.float64)[:, :, 0]
ref, x = load("reference.nii.gz"), load("sense.nii.gz")
print(peak_signal_noise_ratio(ref, x, data_range=ref.max() - ref.min()))
"#;
    let o = run_python(script, &[out.to_str().unwrap()]);
    let sk: f64 = o.trim().parse().unwrap();
    assert!(
        (sk - psnr(&m, "sense")).abs() < 0.05,
        "SENSE PSNR {} vs scikit-image {sk}",
        psnr(&m, "sense")
    );

    // The same scanner simulated inside the job from an image.
    let out = root.join("recon_image");
    let (ok, stdout, stderr) = run(&[
        "mri",
        "--input",
        root.join("scan.nii.gz").to_str().unwrap(),
        "--slice",
        "4",
        "--coils",
        "8",
        "--acceleration",
        "4",
        "--center-fraction",
        "0.16",
        "--model",
        &refs,
        "--steps",
        &min_pc(),
        "--tv-weight",
        "1e-2",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "mri --coils 8 failed:\n{stdout}\n{stderr}");
    let m = metrics(&out);
    assert!(
        psnr(&m, "sense") > psnr(&m, "rss") + 3.0,
        "{}",
        m["methods"]
    );
}

#[test]
fn damaged_kspace_files_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let script = r#"
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/no_kspace.h5", "w") as f:
    f["image"] = np.zeros((1, 8, 8), np.float32)
with h5py.File(d + "/bad_mask.h5", "w") as f:
    f["kspace"] = np.ones((1, 4, 64, 64), np.complex64)
    f["mask"] = np.ones(60, np.float32)
open(d + "/not_hdf5.h5", "wb").write(b"this is no HDF5 file" * 10)
import ismrmrd
xml = '''<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><experimentalConditions><H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz></experimentalConditions><encoding><encodedSpace><matrixSize><x>32</x><y>32</y><z>1</z></matrixSize><fieldOfView_mm><x>200</x><y>200</y><z>5</z></fieldOfView_mm></encodedSpace><reconSpace><matrixSize><x>32</x><y>32</y><z>1</z></matrixSize><fieldOfView_mm><x>200</x><y>200</y><z>5</z></fieldOfView_mm></reconSpace><trajectory>radial</trajectory></encoding></ismrmrdHeader>'''
dset = ismrmrd.Dataset(d + "/radial_ismrmrd.h5", "dataset", create_if_needed=True)
dset.write_xml_header(xml)
for spoke in range(8):
    data = np.ones((4, 32), np.complex64)
    a = ismrmrd.Acquisition.from_array(data, np.zeros((32, 2), np.float32))
    a.idx.kspace_encode_step_1 = spoke
    dset.append_acquisition(a)
dset.close()
# A real twix file cut in the middle of its scans.
twix = open(sys.argv[2], "rb").read()
open(d + "/truncated.dat", "wb").write(twix[: len(twix) * 2 // 3])
"#;
    let gre = common::data("twix/gre.dat");
    run_python(script, &[root.to_str().unwrap(), gre.to_str().unwrap()]);
    for (file, reason) in [
        ("no_kspace.h5", "kspace"),
        ("bad_mask.h5", "mask"),
        ("not_hdf5.h5", "HDF5"),
        ("radial_ismrmrd.h5", "Cartesian"),
        ("truncated.dat", "truncated"),
    ] {
        let out = root.join(format!("out_{file}"));
        let path = root.join(file);
        let o = bin()
            .args([
                "mri",
                "--input",
                path.to_str().unwrap(),
                "--quiet",
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{file} was accepted");
        assert!(
            stderr.contains(file) && stderr.contains(reason),
            "{file}: the error must name the file and the reason ({reason}): {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        assert!(!out.exists(), "{file}: an output was written");
    }
}

/// The real raw Siemens file (twixtools' gre.dat: a phantom, 2 coils, 160x160 after readout
/// oversampling is removed) through `mri`: fully sampled, so a retrospective mask and its own
/// RSS as the reference; a training-free prior on its grid.
#[test]
fn mri_reconstructs_real_raw_twix_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    phantoms(&root.join("refs/train.nii.gz"), 12, 160, 1, "MR");
    let out = root.join("gre");
    let gre = common::data("twix/gre.dat");
    let (ok, stdout, stderr) = run(&[
        "mri",
        "--input",
        gre.to_str().unwrap(),
        "--model",
        &format!("empirical:{}", root.join("refs").display()),
        "--acceleration",
        "2",
        "--center-fraction",
        "0.16",
        "--steps",
        &min_pc(),
        "--tv-weight",
        "1e-2",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "mri on gre.dat failed:\n{stdout}\n{stderr}");
    let m = metrics(&out);
    let notes = m["notes"].to_string();
    assert!(
        notes.contains("Siemens twix") && notes.contains("Fully sampled"),
        "{notes}"
    );
    for method in ["rss", "sense", "tv", "score"] {
        assert!(m["methods"][method]["psnr"].is_number(), "{}", m["methods"]);
    }
    // The reference written (the file's fully sampled RSS, back in the file's units) against the
    // RSS of the coil images twixtools reads from the same file (its remove_os is unnormalised:
    // ours is sqrt(2) times it for 2x oversampling; its lines are our columns).
    let script = r#"
import sys, numpy as np, twixtools, nibabel as nib
t = twixtools.map_twix(sys.argv[1], verbose=False)[-1]['image']
t.flags['remove_os'] = True
t.flags['squeeze_singletons'] = True
k = np.asarray(t[:]) * np.sqrt(2)
ifft2c = lambda k: np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(0, 2)), norm="ortho", axes=(0, 2)), axes=(0, 2))
rss = np.sqrt((np.abs(ifft2c(k)) ** 2).sum(axis=1))
ref = np.asarray(nib.load(sys.argv[2]).dataobj, dtype=np.float64)[:, :, 0]
print(np.linalg.norm(rss - ref) / np.linalg.norm(ref))
"#;
    let o = run_python(
        script,
        &[
            gre.to_str().unwrap(),
            out.join("reference.nii.gz").to_str().unwrap(),
        ],
    );
    let err: f64 = o.trim().parse().unwrap();
    assert!(
        err < 1e-5,
        "reference vs twixtools' RSS: relative error {err}"
    );
    for f in [
        "coil_maps.nii.gz",
        "sense.nii.gz",
        "score.nii.gz",
        "reference.nii.gz",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}
