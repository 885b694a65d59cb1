//! Raw k-space (src/io/kspace/) against h5py, numpy and the ismrmrd Python package: fastMRI
//! files h5py writes read back exactly, the RSS against fastMRI's definition in numpy, our
//! fastMRI writer read back by h5py (its header parsed by ismrmrd's schema bindings), a Cartesian
//! ISMRMRD file the ismrmrd package writes against the numpy expectation, and bad input.
//!
//! Expected values always come from Python (the arrays Python wrote, numpy's FFT), never from
//! our reader.

mod common;

use common::run_python;
use ndarray::{Array2, Array3, Array4};
use num_complex::Complex32;
use scorerecon::io::kspace::{read_kspace, rss, write_fastmri, KspaceFormat, RawKspace};
use std::path::{Path, PathBuf};

fn read_c64(path: &Path) -> Vec<Complex32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(8)
        .map(|c| {
            Complex32::new(
                f32::from_le_bytes(c[..4].try_into().unwrap()),
                f32::from_le_bytes(c[4..].try_into().unwrap()),
            )
        })
        .collect()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes a fastMRI-style file with h5py from seeded random arrays, and the arrays themselves as
/// raw little-endian files beside it (`.k` complex64, `.mask` float32 over [rows, cols], `.ref`).
const WRITE_FASTMRI: &str = r#"
import sys, numpy as np, h5py
path, shape, single = sys.argv[1], [int(v) for v in sys.argv[2].split(',')], sys.argv[3] == '1'
rng = np.random.default_rng(7)
k = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
rows, cols = shape[-2], shape[-1]
mask = (rng.random(cols) < 0.5)
mask[cols // 2 - 2: cols // 2 + 2] = True
ref = rng.random((shape[0], 16, 16)).astype(np.float32)
xml = b'''<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><experimentalConditions><H1resonanceFrequency_Hz>123</H1resonanceFrequency_Hz></experimentalConditions><encoding><encodedSpace><matrixSize><x>%d</x><y>%d</y><z>1</z></matrixSize><fieldOfView_mm><x>300</x><y>150</y><z>5</z></fieldOfView_mm></encodedSpace><reconSpace><matrixSize><x>16</x><y>16</y><z>1</z></matrixSize><fieldOfView_mm><x>150</x><y>140</y><z>4.5</z></fieldOfView_mm></reconSpace><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>''' % (rows, cols)
with h5py.File(path, 'w') as f:
    f['kspace'] = k
    if single:
        f['mask'] = mask            # bool
        f['reconstruction_esc'] = ref * 2
    else:
        f['mask'] = mask.astype(np.float32)
    f['reconstruction_rss'] = ref
    f['ismrmrd_header'] = xml
    f.attrs['acquisition'] = 'CORPD_FBK'
    f.attrs['max'] = float(ref.max())
    f.attrs['norm'] = float(np.linalg.norm(ref))
    f.attrs['patient_id'] = 'abc'
k.tofile(path + '.k')
np.broadcast_to(mask.astype(np.float32), (rows, cols)).astype('<f4').tofile(path + '.mask')
ref.astype('<f4').tofile(path + '.ref')
"#;

fn write_fastmri_py(dir: &Path, name: &str, shape: &[usize], single: bool) -> PathBuf {
    let p = dir.join(name);
    let shape: Vec<String> = shape.iter().map(|v| v.to_string()).collect();
    run_python(
        WRITE_FASTMRI,
        &[s(&p), &shape.join(","), if single { "1" } else { "0" }],
    );
    p
}

#[test]
fn fastmri_files_written_by_h5py_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for (name, shape, single) in [
        ("multi.h5", vec![2, 4, 32, 24], false),
        ("single.h5", vec![2, 32, 24], true),
    ] {
        let p = write_fastmri_py(dir.path(), name, &shape, single);
        let k = read_kspace(&p).unwrap();
        assert_eq!(k.format, KspaceFormat::FastMri);
        let coils = if single { 1 } else { shape[1] };
        assert_eq!(k.kspace.dim(), (2, coils, 32, 24), "{name}");
        let want = read_c64(&p.with_extension("h5.k"));
        assert!(
            k.kspace.iter().zip(&want).all(|(a, b)| a == b),
            "{name}: k-space differs"
        );
        assert_eq!(k.kspace.len(), want.len());
        let mask = k.mask.as_ref().expect("mask");
        assert_eq!(mask.dim(), (32, 24));
        assert_eq!(
            mask.iter().copied().collect::<Vec<_>>(),
            read_f32(&p.with_extension("h5.mask")),
            "{name}: mask"
        );
        let (rname, r) = k.reference.as_ref().expect("reference");
        assert_eq!(rname, "reconstruction_rss");
        assert_eq!(r.dim(), (2, 16, 16));
        assert_eq!(
            r.iter().copied().collect::<Vec<_>>(),
            read_f32(&p.with_extension("h5.ref"))
        );
        assert_eq!(k.recon_matrix, Some([16, 16]));
        assert_eq!(k.fov_mm, Some([150.0, 140.0, 4.5]));
        assert_eq!(k.source.as_deref(), Some(p.as_path()));
    }
}

/// fastMRI's definition in numpy: RSS over coils of fftshift(ifft2(ifftshift(k), norm='ortho'))
/// (fastmri.ifft2c on the last two axes), centre crop as fastmri.data.transforms.center_crop.
const RSS_NUMPY: &str = r#"
import sys, numpy as np
out, kpath, shape, ch, cw = sys.argv[1], sys.argv[2], [int(v) for v in sys.argv[3].split(',')], int(sys.argv[4]), int(sys.argv[5])
k = np.fromfile(kpath, np.complex64).reshape(shape).astype(np.complex128)
img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), axes=(-2, -1), norm='ortho'), axes=(-2, -1))
r = np.sqrt((np.abs(img) ** 2).sum(axis=1))
h0, w0 = (r.shape[-2] - ch) // 2, (r.shape[-1] - cw) // 2
r = r[..., h0:h0 + ch, w0:w0 + cw]
r.astype('<f8').tofile(out)
"#;

fn max_rel(a: impl Iterator<Item = f64>, b: &[f64]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    a.zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn rss_matches_fastmris_definition_in_numpy() {
    let dir = tempfile::tempdir().unwrap();
    // Even and odd sizes (the shifts differ for odd lengths), with and without a crop.
    for (shape, crop) in [
        ([2usize, 4, 32, 24], Some([16usize, 16usize])),
        ([1, 3, 31, 23], Some([15, 16])),
        ([2, 2, 20, 12], None),
    ] {
        let p = write_fastmri_py(dir.path(), "r.h5", &shape, false);
        let k = read_kspace(&p).unwrap();
        let got = rss(&k.kspace, crop);
        let [ch, cw] = crop.unwrap_or([shape[2], shape[3]]);
        assert_eq!(got.dim(), (shape[0], ch, cw));
        let shape_s: Vec<String> = shape.iter().map(|v| v.to_string()).collect();
        let kp = p.with_extension("h5.k");
        let want = common::python_array(
            RSS_NUMPY,
            &[s(&kp), &shape_s.join(","), &ch.to_string(), &cw.to_string()],
        );
        let err = max_rel(got.iter().map(|&v| v as f64), &want);
        assert!(err < 1e-5, "{shape:?} {crop:?}: relative error {err}");
        std::fs::remove_file(&p).unwrap();
    }
}

/// Reads our file with h5py and reports it: arrays as raw files, attributes, datasets, dtypes and
/// the header's matrix sizes as ismrmrd's schema bindings parse them.
const READ_OURS: &str = r#"
import sys, json, numpy as np, h5py, ismrmrd.xsd
path = sys.argv[1]
with h5py.File(path, 'r') as f:
    k = f['kspace'][()]
    k.astype(np.complex64).tofile(path + '.k')
    rep = {'kspace_shape': list(k.shape), 'kspace_dtype': str(k.dtype), 'names': sorted(f.keys()),
           'attrs': {n: (v.decode() if isinstance(v, bytes) else (v if isinstance(v, str) else float(v))) for n, v in f.attrs.items()}}
    if 'mask' in f:
        m = f['mask'][()]
        rep['mask_shape'] = list(m.shape); rep['mask_dtype'] = str(m.dtype)
        m.astype('<f4').tofile(path + '.mask')
    for n in ('reconstruction_rss', 'reconstruction_esc'):
        if n in f:
            r = f[n][()]
            rep['ref'] = [n, list(r.shape), str(r.dtype)]
            r.astype('<f4').tofile(path + '.ref')
            rep['ref_max'] = float(r.max()); rep['ref_norm'] = float(np.linalg.norm(r))
    xml = f['ismrmrd_header'][()]
    rep['header_type'] = type(xml).__name__
    h = ismrmrd.xsd.CreateFromDocument(xml)
    e = h.encoding[0]
    rep['encoded'] = [e.encodedSpace.matrixSize.x, e.encodedSpace.matrixSize.y, e.encodedSpace.matrixSize.z]
    rep['recon'] = [e.reconSpace.matrixSize.x, e.reconSpace.matrixSize.y, e.reconSpace.matrixSize.z]
    rep['recon_fov'] = [e.reconSpace.fieldOfView_mm.x, e.reconSpace.fieldOfView_mm.y, e.reconSpace.fieldOfView_mm.z]
    rep['trajectory'] = str(e.trajectory.value if hasattr(e.trajectory, 'value') else e.trajectory)
print(json.dumps(rep))
"#;

fn random_kspace(shape: (usize, usize, usize, usize), seed: u64) -> Array4<Complex32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_fn(shape, |_| {
        Complex32::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0))
    })
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".scorerecon-"))
        .collect()
}

#[test]
fn write_fastmri_reads_back_in_h5py() {
    let dir = tempfile::tempdir().unwrap();
    // Multi-coil, a 1-D mask, a reference, a recon matrix and FOV.
    let kspace = random_kspace((2, 4, 32, 24), 1);
    let mut mask = Array2::<f32>::zeros((32, 24));
    for c in [0usize, 3, 10, 11, 12, 13, 20] {
        mask.column_mut(c).fill(1.0);
    }
    let reference = Array3::from_shape_fn((2, 16, 16), |(a, b, c)| (a * 256 + b * 16 + c) as f32);
    let raw = RawKspace {
        kspace: kspace.clone(),
        mask: Some(mask.clone()),
        reference: Some(("reconstruction_rss".into(), reference.clone())),
        format: KspaceFormat::Ismrmrd,
        recon_matrix: Some([16, 16]),
        fov_mm: Some([200.0, 180.0, 3.0]),
        source: None,
    };
    let out = dir.path().join("out.h5");
    write_fastmri(&out, &raw, false).unwrap();
    let rep: serde_json::Value = serde_json::from_str(&run_python(READ_OURS, &[s(&out)])).unwrap();
    assert_eq!(rep["kspace_shape"], serde_json::json!([2, 4, 32, 24]));
    assert_eq!(rep["kspace_dtype"], "complex64");
    assert_eq!(
        read_c64(&out.with_extension("h5.k")),
        kspace.iter().copied().collect::<Vec<_>>()
    );
    assert_eq!(rep["mask_shape"], serde_json::json!([24]));
    assert_eq!(rep["mask_dtype"], "float32");
    assert_eq!(
        read_f32(&out.with_extension("h5.mask")),
        mask.row(0).to_vec()
    );
    assert_eq!(
        rep["ref"],
        serde_json::json!(["reconstruction_rss", [2, 16, 16], "float32"])
    );
    assert_eq!(
        read_f32(&out.with_extension("h5.ref")),
        reference.iter().copied().collect::<Vec<_>>()
    );
    let attrs = &rep["attrs"];
    assert_eq!(attrs["acquisition"], "unknown");
    assert_eq!(attrs["patient_id"], "");
    assert_eq!(
        attrs["max"].as_f64().unwrap(),
        rep["ref_max"].as_f64().unwrap()
    );
    let norm = attrs["norm"].as_f64().unwrap();
    assert!((norm - rep["ref_norm"].as_f64().unwrap()).abs() < 1e-6 * norm);
    assert_eq!(rep["header_type"], "bytes");
    assert_eq!(rep["encoded"], serde_json::json!([32, 24, 1]));
    assert_eq!(rep["recon"], serde_json::json!([16, 16, 1]));
    assert_eq!(rep["recon_fov"], serde_json::json!([200.0, 180.0, 3.0]));
    assert!(
        rep["trajectory"].as_str().unwrap().contains("cartesian"),
        "{rep}"
    );
    // Our reader gets back what was written.
    let back = read_kspace(&out).unwrap();
    assert_eq!(back.kspace, kspace);
    assert_eq!(back.mask.as_ref(), Some(&mask));
    assert_eq!(back.recon_matrix, Some([16, 16]));
    assert_eq!(back.fov_mm, Some([200.0, 180.0, 3.0]));

    // Single coil, a mask that varies over rows (2-D), no reference.
    let single = RawKspace {
        kspace: random_kspace((3, 1, 10, 8), 2),
        mask: Some(Array2::from_shape_fn((10, 8), |(r, c)| {
            ((r + c) % 2) as f32
        })),
        reference: None,
        format: KspaceFormat::FastMri,
        recon_matrix: None,
        fov_mm: None,
        source: None,
    };
    let out1 = dir.path().join("single.h5");
    write_fastmri(&out1, &single, false).unwrap();
    let rep: serde_json::Value = serde_json::from_str(&run_python(READ_OURS, &[s(&out1)])).unwrap();
    assert_eq!(rep["kspace_shape"], serde_json::json!([3, 10, 8]));
    assert_eq!(rep["mask_shape"], serde_json::json!([10, 8]));
    assert_eq!(
        read_f32(&out1.with_extension("h5.mask")),
        single
            .mask
            .as_ref()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>()
    );
    assert!(rep.get("ref").is_none());
    assert_eq!(rep["recon"], serde_json::json!([10, 8, 1]));
    // max and norm of the RSS, when there is no reference.
    let r = rss(&single.kspace, None);
    let max = r.iter().fold(0f32, |a, &b| a.max(b)) as f64;
    assert_eq!(rep["attrs"]["max"].as_f64().unwrap(), max);
    let back = read_kspace(&out1).unwrap();
    assert_eq!(back.kspace, single.kspace);
    assert_eq!(back.mask, single.mask);

    // An existing output is refused without force, replaced with it; never at the source.
    let before = std::fs::read(&out).unwrap();
    let e = write_fastmri(&out, &single, false).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    write_fastmri(&out, &single, true).unwrap();
    assert_eq!(read_kspace(&out).unwrap().kspace, single.kspace);
    let e = write_fastmri(&out1, &back, true).unwrap_err().to_string();
    assert!(e.contains("is the input"), "{e}");
    // A mask of the wrong shape is refused before anything is written.
    let mut bad = single.clone();
    bad.mask = Some(Array2::zeros((10, 7)));
    assert!(write_fastmri(&dir.path().join("bad.h5"), &bad, false).is_err());
    assert!(!dir.path().join("bad.h5").exists());
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

/// A Cartesian ISMRMRD file written with the ismrmrd package: 2 slices, 4 coils, readout 64
/// samples oversampled 2x (reconSpace x 32), 24 phase-encode lines of which some are skipped,
/// one line acquired twice (averaged), a noise scan (skipped), a calibration line that repeats
/// an imaging line (ignored) and one that fills a line no imaging readout has (used), one
/// asymmetric readout (fewer samples, centre_sample off the middle). The expectation, in numpy:
/// the lines placed at [slice, coil, sample - center_sample + 32, ky - center + 12], averaged,
/// then each readout through ifftc, the centre 32 samples kept, fftc back.
const WRITE_ISMRMRD: &str = r#"
import sys, numpy as np, ismrmrd
path = sys.argv[1]
traj_dims = int(sys.argv[2]); trajectory = sys.argv[3]
S, C, EX, RX, EY = 2, 4, 64, 32, 24
xml = '''<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><experimentalConditions><H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz></experimentalConditions><encoding><encodedSpace><matrixSize><x>%d</x><y>%d</y><z>1</z></matrixSize><fieldOfView_mm><x>400</x><y>150</y><z>5</z></fieldOfView_mm></encodedSpace><reconSpace><matrixSize><x>%d</x><y>%d</y><z>1</z></matrixSize><fieldOfView_mm><x>200</x><y>150</y><z>5</z></fieldOfView_mm></reconSpace><encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>23</maximum><center>12</center></kspace_encoding_step_1><slice><minimum>0</minimum><maximum>1</maximum><center>0</center></slice></encodingLimits><trajectory>%s</trajectory></encoding></ismrmrdHeader>''' % (EX, EY, RX, EY, trajectory)
dset = ismrmrd.Dataset(path, 'dataset', create_if_needed=True)
dset.write_xml_header(xml)
rng = np.random.default_rng(3)
def rnd(c, n):
    return (rng.standard_normal((c, n)) + 1j * rng.standard_normal((c, n))).astype(np.complex64)
def acq(data, ky, sl, flags=(), center=None):
    traj = np.zeros((data.shape[1], traj_dims), np.float32) if traj_dims else None
    a = ismrmrd.Acquisition.from_array(data, traj)
    a.idx.kspace_encode_step_1 = ky
    a.idx.slice = sl
    a.center_sample = data.shape[1] // 2 if center is None else center
    for f in flags:
        a.set_flag(f)
    dset.append_acquisition(a)
# A noise scan first: other sample count, never placed.
acq(rnd(C, 128), 0, 0, flags=[ismrmrd.ACQ_IS_NOISE_MEASUREMENT])
K = np.zeros((S, C, EX, EY), np.complex128)
lines = {}
skipped = {1, 2, 5, 7, 19, 22}
for sl in range(S):
    for ky in range(EY):
        if ky in skipped:
            continue
        if ky == 4:
            # Asymmetric echo: 48 samples, the centre at sample 16.
            d = rnd(C, 48); acq(d, ky, sl, center=16)
            full = np.zeros((C, EX), np.complex128); full[:, 32 - 16: 32 - 16 + 48] = d
            lines.setdefault((sl, ky), []).append(full)
            continue
        d = rnd(C, EX); acq(d, ky, sl)
        lines.setdefault((sl, ky), []).append(d.astype(np.complex128))
        if ky == 12:
            d2 = rnd(C, EX); acq(d2, ky, sl)
            lines[(sl, ky)].append(d2.astype(np.complex128))
    # A calibration line repeating an imaging line: ignored.
    acq(rnd(C, EX), 11, sl, flags=[ismrmrd.ACQ_IS_PARALLEL_CALIBRATION])
    # A calibration-only line where no imaging readout is: used.
    d = rnd(C, EX); acq(d, 7, sl, flags=[ismrmrd.ACQ_IS_PARALLEL_CALIBRATION])
    lines[(sl, 7)] = [d.astype(np.complex128)]
dset.close()
mask = np.zeros(EY, bool)
for (sl, ky), ls in lines.items():
    K[sl, :, :, ky - 12 + EY // 2] = np.mean(ls, axis=0)
    mask[ky - 12 + EY // 2] = True
img = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(K, axes=2), axis=2, norm='ortho'), axes=2)
img = img[:, :, EX // 2 - RX // 2: EX // 2 - RX // 2 + RX, :]
K2 = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(img, axes=2), axis=2, norm='ortho'), axes=2)
K2.astype(np.complex64).tofile(path + '.k')
np.broadcast_to(mask.astype(np.float32), (RX, EY)).astype('<f4').tofile(path + '.mask')
"#;

#[test]
fn cartesian_ismrmrd_matches_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scan.h5");
    run_python(WRITE_ISMRMRD, &[s(&p), "0", "cartesian"]);
    let k = read_kspace(&p).unwrap();
    assert_eq!(k.format, KspaceFormat::Ismrmrd);
    assert_eq!(k.kspace.dim(), (2, 4, 32, 24));
    let want = read_c64(&p.with_extension("h5.k"));
    let scale = want.iter().fold(0f32, |m, v| m.max(v.norm()));
    let err = k
        .kspace
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).norm()))
        / scale;
    assert!(err < 1e-5, "relative error {err}");
    let mask = k.mask.as_ref().expect("lines were skipped");
    assert_eq!(
        mask.iter().copied().collect::<Vec<_>>(),
        read_f32(&p.with_extension("h5.mask"))
    );
    assert_eq!(k.recon_matrix, Some([32, 24]));
    assert_eq!(k.fov_mm, Some([200.0, 150.0, 5.0]));
    assert!(k.reference.is_none());
    // And into a fastMRI-style file, read back the same.
    let out = dir.path().join("as_fastmri.h5");
    write_fastmri(&out, &k, false).unwrap();
    let back = read_kspace(&out).unwrap();
    assert_eq!(back.kspace, k.kspace);
    assert_eq!(back.mask, k.mask);
    assert_eq!(back.recon_matrix, k.recon_matrix);
}

fn assert_error(path: &Path, needle: &str) {
    let e = match read_kspace(path) {
        Ok(_) => panic!("{}: read without an error", path.display()),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains(&path.display().to_string()),
        "the error does not name the file: {e}"
    );
    assert!(e.contains(needle), "expected `{needle}` in: {e}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_python(
        r#"
import sys, numpy as np, h5py
d = sys.argv[1]
c = (np.ones((2, 4, 8, 6)) + 1j).astype(np.complex64)
with h5py.File(d + '/none.h5', 'w') as f:
    f['image'] = np.zeros((3, 3), np.float32)
    f.create_group('dataset')['xml'] = np.zeros(2)
with h5py.File(d + '/rank.h5', 'w') as f:
    f['kspace'] = c[0, 0]
with h5py.File(d + '/real.h5', 'w') as f:
    f['kspace'] = np.zeros((2, 4, 8, 6), np.float32)
with h5py.File(d + '/mask.h5', 'w') as f:
    f['kspace'] = c
    f['mask'] = np.ones(5, np.float32)
with h5py.File(d + '/refslices.h5', 'w') as f:
    f['kspace'] = c
    f['reconstruction_rss'] = np.zeros((3, 4, 4), np.float32)
with h5py.File(d + '/whole.h5', 'w') as f:
    f['kspace'] = np.ones((4, 8, 64, 64), np.complex64)
b = open(d + '/whole.h5', 'rb').read()
open(d + '/truncated.h5', 'wb').write(b[: len(b) // 2])
open(d + '/text.h5', 'w').write('this is not HDF5\n' * 10)
open(d + '/empty.hdf5', 'w').close()
"#,
        &[s(d)],
    );
    assert_error(&d.join("none.h5"), "neither a `kspace` dataset");
    assert_error(&d.join("rank.h5"), "shape [8, 6]");
    assert_error(&d.join("real.h5"), "not complex");
    assert_error(&d.join("mask.h5"), "`mask` has shape [5]");
    assert_error(&d.join("refslices.h5"), "`reconstruction_rss` has 3 slices");
    assert!(read_kspace(&d.join("whole.h5")).is_ok());
    assert_error(&d.join("truncated.h5"), "damaged or truncated");
    assert_error(&d.join("text.h5"), "not an HDF5 file");
    assert_error(&d.join("empty.hdf5"), "not an HDF5 file");
    assert_error(&d.join("missing.h5"), "no such file");
    std::fs::write(d.join("x.nii"), b"x").unwrap();
    assert_error(&d.join("x.nii"), "not a raw k-space file name");

    // Non-Cartesian ISMRMRD: by the XML trajectory, and by the readouts' trajectory.
    let radial = d.join("radial.h5");
    run_python(WRITE_ISMRMRD, &[s(&radial), "2", "radial"]);
    assert_error(&radial, "the trajectory is radial; only Cartesian");
    let traj = d.join("traj.h5");
    run_python(WRITE_ISMRMRD, &[s(&traj), "2", "cartesian"]);
    assert_error(&traj, "carries a 2-D trajectory; only Cartesian");
    // A truncated ISMRMRD file.
    let b = std::fs::read(&traj).unwrap();
    let cut = d.join("traj_cut.h5");
    std::fs::write(&cut, &b[..b.len() / 2]).unwrap();
    assert_error(&cut, "damaged or truncated");
}

#[test]
fn damaged_bytes_give_errors_not_crashes() {
    // Bytes overwritten across a valid file's metadata and data: every read returns (an error
    // naming the file, or data), none panics.
    let dir = tempfile::tempdir().unwrap();
    let p = write_fastmri_py(dir.path(), "ok.h5", &[2, 4, 32, 24], false);
    let q = dir.path().join("ok_ismrmrd.h5");
    run_python(WRITE_ISMRMRD, &[s(&q), "0", "cartesian"]);
    let bad = dir.path().join("bad.h5");
    let mut errors = 0;
    for good in [std::fs::read(&p).unwrap(), std::fs::read(&q).unwrap()] {
        for i in 0..64usize {
            let mut b = good.clone();
            let at = if i < 48 {
                i * 40
            } else {
                (i - 48) * good.len() / 16
            };
            for v in &mut b[at..(at + 8).min(good.len())] {
                *v ^= 0x5a;
            }
            std::fs::write(&bad, &b).unwrap();
            if let Err(e) = read_kspace(&bad) {
                assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 0);
    assert_eq!(KspaceFormat::FastMri.to_string(), "fastMRI HDF5");
    assert_eq!(KspaceFormat::Ismrmrd.to_string(), "ISMRMRD HDF5");
    assert_eq!(KspaceFormat::Twix.to_string(), "Siemens twix");
}
