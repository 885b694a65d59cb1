//! NRRD reading and writing against pynrrd: pyradiomics' real volumes, files pynrrd writes in
//! several axis orders, encodings, types and with detached headers, our `.nrrd` read back by
//! pynrrd, round trips, and bad input through `scorerecon info`.
//!
//! The expected geometry is computed in Python from what pynrrd parses (the array in the file's
//! axis order, `space directions` and `space origin` in the file's space), never from our reader.

mod common;

use common::{bin, data, python_array, run_python};
use scorerecon::io::{read_volume, write_volume, ReadOptions};
use scorerecon::{Modality, Volume};
use std::path::{Path, PathBuf};

fn pyradiomics(name: &str) -> PathBuf {
    data(&format!("pyradiomics/pyradiomics-3.0.1/data/{name}"))
}

/// pynrrd's view, turned into what a Volume must hold: dims (4), spacing (4), RAS+ affine (16),
/// then the voxels as float32 (widened to f64) in Fortran order over the file's axes, i.e. the
/// first axis fastest. The affine: column a = sign * direction of spatial axis a (sign from the
/// space: LPS flips x and y, LAS x); a 2-D image's third column is the unit normal; without
/// space directions, diag(spacings) and origin 0.
const PYNRRD: &str = r#"
import sys, numpy as np, nrrd
data, h = nrrd.read(sys.argv[2], index_order='F')
nd = data.ndim
signs = {'right-anterior-superior': [1, 1, 1], 'left-anterior-superior': [-1, 1, 1],
         'left-posterior-superior': [-1, -1, 1], 'RAS': [1, 1, 1], 'LAS': [-1, 1, 1], 'LPS': [-1, -1, 1]}
A = np.eye(4)
if 'space directions' in h:
    s = np.array(signs[h['space'].replace('-time', '')], float)
    D = np.asarray(h['space directions'], float)
    spatial = [a for a in range(nd) if not np.isnan(D[a]).any() and np.any(D[a][:3] != 0)]
    cols = [s * D[a][:3] for a in spatial]
    if 'space origin' in h:
        A[:3, 3] = s * np.asarray(h['space origin'], float)[:3]
else:
    sp = np.asarray(h.get('spacings', [np.nan] * nd), float)
    kinds = h.get('kinds', ['domain'] * nd)
    ns = nd - 1 if nd == 4 or (nd == 3 and kinds[2] not in ('domain', 'space')) else nd
    spatial = list(range(ns))
    cols = []
    for a in spatial:
        c = np.zeros(3); c[a] = sp[a] if np.isfinite(sp[a]) and sp[a] != 0 else 1.0
        cols.append(c)
zooms = [float(np.linalg.norm(c)) for c in cols]
if len(cols) == 2:
    n = np.cross(cols[0], cols[1]); cols.append(n / np.linalg.norm(n)); zooms.append(1.0)
for c in range(3):
    A[:3, c] = cols[c]
ns = len(spatial)
shape = list(data.shape[:ns]) + [1] * (3 - ns) + [data.shape[nd - 1] if ns < nd else 1]
dt = 1.0
if ns < nd and 'spacings' in h and np.isfinite(h['spacings'][nd - 1]) and h['spacings'][nd - 1] > 0:
    dt = float(h['spacings'][nd - 1])
head = np.array(shape + zooms + [dt] + list(A.ravel()), float)
vals = np.asarray(data).astype(np.float32).ravel(order='F').astype(np.float64)
np.concatenate([head, vals]).astype('<f8').tofile(sys.argv[1])
"#;

struct Expected {
    dims: [usize; 4],
    spacing: [f64; 4],
    affine: [[f64; 4]; 4],
    values: Vec<f64>,
}

fn pynrrd(p: &Path) -> Expected {
    let v = python_array(PYNRRD, &[p.to_str().unwrap()]);
    let mut affine = [[0.0; 4]; 4];
    for r in 0..4 {
        for c in 0..4 {
            affine[r][c] = v[8 + r * 4 + c];
        }
    }
    Expected {
        dims: [v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize],
        spacing: [v[4], v[5], v[6], v[7]],
        affine,
        values: v[24..].to_vec(),
    }
}

fn read(p: &Path) -> Volume {
    read_volume(p, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Voxels equal pynrrd's cast to f32, dims and affine equal the ones computed from pynrrd's
/// header (affine exactly: both multiply the file's numbers by +-1).
fn assert_matches_pynrrd(p: &Path) -> Volume {
    let vol = read(p);
    let e = pynrrd(p);
    let what = p.display();
    assert_eq!(vol.dims, e.dims, "{what}: dims");
    assert_eq!(vol.affine, e.affine, "{what}: affine");
    for a in 0..4 {
        assert!(
            (vol.spacing[a] - e.spacing[a]).abs() < 1e-12,
            "{what}: spacing {:?} vs {:?}",
            vol.spacing,
            e.spacing
        );
    }
    assert_eq!(vol.data.len(), e.values.len(), "{what}: voxel count");
    let bad = vol
        .data
        .iter()
        .zip(&e.values)
        .filter(|(a, b)| **a as f64 != **b)
        .count();
    assert_eq!(bad, 0, "{what}: {bad} voxels differ from pynrrd");
    vol
}

#[test]
fn pyradiomics_volumes_match_pynrrd() {
    let brain = assert_matches_pynrrd(&pyradiomics("brain1_image.nrrd"));
    assert_eq!(brain.dims, [256, 256, 25, 1]);
    // LPS (0.78125, 0, 0) -> RAS (-0.78125, 0, 0); origin x and y change sign.
    // The header's own decimals, sign-flipped: nothing is rounded on the way.
    let num = |s: &str| s.parse::<f64>().unwrap();
    assert_eq!(brain.affine[0][0], -num("0.78124999999999989"));
    assert_eq!(brain.affine[1][1], num("0.78124999999999989"));
    assert_eq!(brain.affine[0][3], num("99.609374999999986"));
    let lung = assert_matches_pynrrd(&pyradiomics("lung1_image.nrrd"));
    assert_eq!(lung.dims, [512, 512, 48, 1]);
    assert_eq!(lung.spacing[..3], [0.5703125, 0.5703125, 5.0]);
    // CT in HU: air near -1000 (pyradiomics' lung CT stores HU directly).
    let (lo, _) = lung.value_range().unwrap();
    assert!(lo <= -1000.0, "lung1 minimum {lo}");
    assert_matches_pynrrd(&pyradiomics("brain2_image.nrrd"));
    assert_matches_pynrrd(&pyradiomics("lung2_image.nrrd"));
    // A label map of type int.
    assert_matches_pynrrd(&pyradiomics("brain1_label.nrrd"));
}

/// A 40 x 32 x 6 crop of brain1 (int16, LPS) written by pynrrd, the data transformed by `expr`
/// (a Python expression of `d`) and the header dict `hdr` by `edit` (Python statements, with the
/// crop's directions `D` at hand); returns the path.
fn pynrrd_write(dir: &Path, name: &str, expr: &str, edit: &str, detached: bool) -> PathBuf {
    let out = dir.join(name);
    let script = format!(
        r#"
import sys, numpy as np, nrrd
d, h = nrrd.read(sys.argv[1], index_order='F')
d = d[100:140, 90:122, 8:14]
D = np.asarray(h['space directions'], float)
o = np.asarray(h['space origin'], float) + D.T @ np.array([100, 90, 8])
d = {expr}
hdr = dict(space='left-posterior-superior', **{{'space directions': D, 'space origin': o, 'kinds': ['domain'] * 3}})
{edit}
nrrd.write(sys.argv[2], d, hdr, detached_header={det}, index_order='F')
"#,
        det = if detached { "True" } else { "False" }
    );
    run_python(
        &script,
        &[
            pyradiomics("brain1_image.nrrd").to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    out
}

#[test]
fn pynrrd_encodings_types_and_detached_headers_read_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = pynrrd_write(dir, "base.nrrd", "d", "", false);
    let reference = assert_matches_pynrrd(&base);
    let cases: Vec<(&str, &str, &str, bool)> = vec![
        (
            "raw_le.nrrd",
            "d",
            "hdr.update({'encoding': 'raw', 'endian': 'little'})",
            false,
        ),
        (
            "raw_be.nrrd",
            "d.astype('>i2')",
            "hdr.update({'encoding': 'raw', 'endian': 'big'})",
            false,
        ),
        (
            "gz_be_double.nrrd",
            "(d / 3).astype('>f8')",
            "hdr.update({'encoding': 'gzip', 'endian': 'big'})",
            false,
        ),
        (
            "u8.nrrd",
            "(d // 16).astype(np.uint8)",
            "hdr.update({'encoding': 'raw'})",
            false,
        ),
        (
            "i8.nrrd",
            "(d // 32 - 40).astype(np.int8)",
            "hdr.update({'encoding': 'gzip'})",
            false,
        ),
        (
            "u16.nrrd",
            "d.astype(np.uint16)",
            "hdr.update({'encoding': 'raw'})",
            false,
        ),
        (
            "i32.nrrd",
            "d.astype(np.int32) - 70000",
            "hdr.update({'encoding': 'gzip'})",
            false,
        ),
        (
            "u32.nrrd",
            "(d.astype(np.uint32) * 1000).astype('>u4')",
            "hdr.update({'encoding': 'raw', 'endian': 'big'})",
            false,
        ),
        (
            "i64.nrrd",
            "d.astype(np.int64) - 5",
            "hdr.update({'encoding': 'raw'})",
            false,
        ),
        (
            "f32.nrrd",
            "d.astype(np.float32) * np.float32(0.1)",
            "hdr.update({'encoding': 'gzip'})",
            false,
        ),
        (
            "ascii.nrrd",
            "d",
            "hdr.update({'encoding': 'ascii'})",
            false,
        ),
        (
            "ras.nrrd",
            "d",
            "hdr.update({'space': 'right-anterior-superior'})",
            false,
        ),
        ("las.nrrd", "d", "hdr.update({'space': 'LAS'})", false),
        (
            "detached_raw.nhdr",
            "d",
            "hdr.update({'encoding': 'raw'})",
            true,
        ),
        (
            "detached_gz.nhdr",
            "d",
            "hdr.update({'encoding': 'gzip'})",
            true,
        ),
        // Axis orders: the file's first axis is the slice axis, or rows come before columns.
        (
            "zxy.nrrd",
            "d.transpose(2, 0, 1)",
            "hdr.update({'space directions': D[[2, 0, 1]], 'kinds': ['domain'] * 3})",
            false,
        ),
        (
            "yxz.nhdr",
            "d.transpose(1, 0, 2)",
            "hdr.update({'space directions': D[[1, 0, 2]], 'encoding': 'raw'})",
            true,
        ),
        // No space: spacings only.
        (
            "spacings.nrrd",
            "d",
            "hdr = {'spacings': [0.5, 0.7, 2.0]}",
            false,
        ),
    ];
    for (name, expr, edit, detached) in &cases {
        let p = pynrrd_write(dir, name, expr, edit, *detached);
        let vol = assert_matches_pynrrd(&p);
        if name.starts_with("raw") || *name == "ascii.nrrd" || name.starts_with("detached") {
            assert_eq!(
                vol.data, reference.data,
                "{name}: same voxels as the gzip file"
            );
            assert_eq!(vol.affine, reference.affine, "{name}: same affine");
        }
    }
    // Axis order: the same voxel lands at the same RAS+ point, whichever axis is first.
    let zxy = read(&dir.join("zxy.nrrd"));
    assert_eq!(zxy.dims, [6, 40, 32, 1]);
    for r in 0..4 {
        assert_eq!(zxy.affine[r][0], reference.affine[r][2]);
        assert_eq!(zxy.affine[r][1], reference.affine[r][0]);
        assert_eq!(zxy.affine[r][2], reference.affine[r][1]);
    }
    let (i, j, k) = (7usize, 5usize, 3usize);
    assert_eq!(
        zxy.data[(j * 40 + i) * 6 + k],
        reference.data[(k * 32 + j) * 40 + i]
    );
    // The RAS file holds the same LPS numbers reinterpreted: x and y flip back.
    let ras = read(&dir.join("ras.nrrd"));
    assert_eq!(ras.affine[0][0], -reference.affine[0][0]);
    assert_eq!(ras.affine[2][2], reference.affine[2][2]);
}

#[test]
fn four_d_two_d_and_skips_match_pynrrd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 4-D: three frames, the last axis `none` with kind time and a frame interval.
    let p = pynrrd_write(
        dir,
        "t.nrrd",
        "np.stack([d, d + 1, d * 2], axis=-1)",
        "hdr.update({'space directions': np.vstack([D, np.full(3, np.nan)]), 'kinds': ['domain'] * 3 + ['time'], 'spacings': [np.nan] * 3 + [2.5]})",
        false,
    );
    let v = assert_matches_pynrrd(&p);
    assert_eq!(v.dims, [40, 32, 6, 3]);
    assert_eq!(v.spacing[3], 2.5);
    // 2-D + frames: the third axis is `none`.
    let p = pynrrd_write(
        dir,
        "2dt.nrrd",
        "d[:, :, :4]",
        "hdr.update({'space directions': np.vstack([D[:2], np.full(3, np.nan)]), 'kinds': ['domain', 'domain', 'list']})",
        false,
    );
    let v = assert_matches_pynrrd(&p);
    assert_eq!(v.dims, [40, 32, 1, 4]);
    // 2-D image in 3-D space.
    let p = pynrrd_write(
        dir,
        "2d.nrrd",
        "d[:, :, 2]",
        "hdr.update({'space directions': D[:2], 'kinds': ['domain'] * 2})",
        false,
    );
    assert_eq!(assert_matches_pynrrd(&p).dims, [40, 32, 1, 1]);

    // line skip and byte skip (pynrrd reads them too): a text preamble, then junk bytes.
    let raw = dir.join("skip.raw");
    run_python(
        r#"
import sys, numpy as np, nrrd
d, h = nrrd.read(sys.argv[1], index_order='F')
d = d[:50, :40, :3]
with open(sys.argv[2], 'wb') as f:
    f.write(b'two lines\nof preamble\n' + b'JUNKJUNK')
    f.write(d.astype('<i2').tobytes(order='F'))
with open(sys.argv[3], 'wb') as f:
    f.write(b'anything before the data ' * 5)
    f.write(d.astype('<i2').tobytes(order='F'))
"#,
        &[
            pyradiomics("brain1_image.nrrd").to_str().unwrap(),
            raw.to_str().unwrap(),
            dir.join("tail.raw").to_str().unwrap(),
        ],
    );
    let head = "NRRD0004\ntype: short\ndimension: 3\nsizes: 50 40 3\nendian: little\nencoding: raw\nspace: LPS\nspace directions: (0.5,0,0) (0,0.5,0) (0,0,3)\nspace origin: (1,2,3)\n";
    std::fs::write(
        dir.join("skip.nhdr"),
        format!("{head}data file: skip.raw\nline skip: 2\nbyte skip: 8\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("tail.nhdr"),
        format!("{head}data file: ./tail.raw\nbyte skip: -1\n"),
    )
    .unwrap();
    let a = assert_matches_pynrrd(&dir.join("skip.nhdr"));
    let b = assert_matches_pynrrd(&dir.join("tail.nhdr"));
    assert_eq!(a.data, b.data);
    assert_eq!(a.affine[0][3], -1.0);
}

#[test]
fn list_and_format_data_files_match_numpy() {
    // pynrrd reads one data file only, so the reference is the attached file split by numpy.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base = pynrrd_write(dir, "base.nrrd", "d", "", false);
    let reference = read(&base);
    std::fs::create_dir(dir.join("slices")).unwrap();
    run_python(
        r#"
import sys, os, gzip, numpy as np, nrrd
d, h = nrrd.read(sys.argv[1], index_order='F')
for k in range(d.shape[2]):
    raw = d[:, :, k].astype('<i2').tobytes(order='F')
    open(os.path.join(sys.argv[2], 'slices', 's%03d.raw' % (k + 1)), 'wb').write(raw)
    open(os.path.join(sys.argv[2], 'slices', 'g%d.raw.gz' % k), 'wb').write(gzip.compress(raw))
"#,
        &[base.to_str().unwrap(), dir.to_str().unwrap()],
    );
    let head = "NRRD0005\ntype: int16\ndimension: 3\nsizes: 40 32 6\nendian: little\nspace: left-posterior-superior\n";
    let bytes = std::fs::read(&base).unwrap();
    let end = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
    let geometry = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let geo: String = geometry
        .lines()
        .filter(|l| l.starts_with("space directions") || l.starts_with("space origin"))
        .map(|l| format!("{l}\n"))
        .collect();
    let list: String = (1..=6).map(|k| format!("slices/s{k:03}.raw\n")).collect();
    let cases = [
        (
            "list.nhdr",
            format!("{head}{geo}encoding: raw\ndata file: LIST\n{list}"),
        ),
        (
            "list2.nhdr",
            format!("{head}{geo}encoding: raw\ndata file: LIST 2\n{list}"),
        ),
        (
            "fmt.nhdr",
            format!("{head}{geo}encoding: raw\ndata file: slices/s%03d.raw 1 6 1 2\n"),
        ),
        (
            "fmt_gz.nhdr",
            format!("{head}{geo}encoding: gzip\ndata file: slices/g%d.raw.gz 0 5 1\n"),
        ),
    ];
    for (name, text) in &cases {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let v = read(&p);
        assert_eq!(v.data, reference.data, "{name}: voxels");
        assert_eq!(v.affine, reference.affine, "{name}: affine");
    }
    // Slices listed backwards: the volume comes out in the listed order.
    let back: String = (1..=6)
        .rev()
        .map(|k| format!("slices/s{k:03}.raw\n"))
        .collect();
    let p = dir.join("back.nhdr");
    std::fs::write(
        &p,
        format!("{head}{geo}encoding: raw\ndata file: LIST\n{back}"),
    )
    .unwrap();
    assert_eq!(read(&p).slice(0, 0), reference.slice(5, 0));
    let p = dir.join("fmt_back.nhdr");
    std::fs::write(
        &p,
        format!("{head}{geo}encoding: raw\ndata file: slices/s%03d.raw 6 1 -1\n"),
    )
    .unwrap();
    assert_eq!(read(&p).slice(1, 0), reference.slice(4, 0));
}

/// What pynrrd reads from our file: type, space, and the directions/origin in LPS, then the
/// voxels in Fortran order.
const PYNRRD_OURS: &str = r#"
import sys, numpy as np, nrrd
d, h = nrrd.read(sys.argv[2], index_order='F')
assert h['type'] == 'float' and h['space'] == 'left-posterior-superior' and h['encoding'] == 'gzip', h
D = np.asarray(h['space directions'], float)[:3]
head = np.array(list(d.shape) + [1] * (4 - d.ndim) + list(D.ravel()) + list(h['space origin']), float)
np.concatenate([head, d.astype(np.float64).ravel(order='F')]).astype('<f8').tofile(sys.argv[1])
"#;

#[test]
fn our_nrrd_is_read_by_pynrrd_and_round_trips_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = [
        pyradiomics("brain1_image.nrrd"),
        common::nibabel_file("functional.nii"),
        common::nibabel_file("anatomical.nii"),
        data("pydicom/pydicom/data/test_files/dicomdirtests/98892001/CT5N"),
    ];
    for (n, src) in sources.iter().enumerate() {
        let mut vol = read(src);
        vol.modality = if n == 0 { Modality::Mr } else { vol.modality };
        let out = tmp.path().join(format!("out{n}.nrrd"));
        write_volume(&vol, &out, None, false).unwrap();
        // pynrrd: exact voxels, LPS geometry equal to our RAS+ affine with x and y negated.
        let v = python_array(PYNRRD_OURS, &[out.to_str().unwrap()]);
        let dims = [v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize];
        assert_eq!(dims, vol.dims, "{}: dims", src.display());
        let lps = [-1.0, -1.0, 1.0];
        for a in 0..3 {
            for r in 0..3 {
                assert_eq!(v[4 + a * 3 + r], lps[r] * vol.affine[r][a], "direction {a}");
            }
            assert_eq!(v[13 + a], lps[a] * vol.affine[a][3], "origin");
        }
        let values = &v[16..];
        assert_eq!(values.len(), vol.data.len());
        assert!(
            values.iter().zip(&vol.data).all(|(a, b)| *a == *b as f64),
            "{}: pynrrd's voxels differ",
            src.display()
        );
        // Our read of our file: the same voxels, dims and affine, bit for bit.
        let back = read(&out);
        assert_eq!(back.data, vol.data);
        assert_eq!(back.dims, vol.dims);
        assert_eq!(back.affine, vol.affine);
        assert_eq!(back.modality, vol.modality);
        if vol.nt() > 1 {
            assert_eq!(back.spacing[3], vol.spacing[3]);
        }
        // And what pynrrd computes from it is what we read.
        assert_matches_pynrrd(&out);
    }
}

fn info(p: &Path) -> std::process::Output {
    bin()
        .args(["info", p.to_str().unwrap()])
        .output()
        .expect("run scorerecon")
}

#[test]
fn info_and_convert_handle_nrrd() {
    let tmp = tempfile::tempdir().unwrap();
    let brain = pyradiomics("brain1_image.nrrd");
    let o = info(&brain);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("format:      NRRD"), "{text}");
    assert!(text.contains("256 x 256 x 25 voxels"), "{text}");
    // NRRD -> NIfTI: nibabel sees the same affine (to f32) and voxels.
    let nii = tmp.path().join("brain.nii.gz");
    let o = bin()
        .args(["convert", brain.to_str().unwrap(), nii.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = pynrrd(&brain);
    let v = python_array(
        "import sys, numpy as np, nibabel as nb; i = nb.load(sys.argv[2]); np.concatenate([i.affine.ravel(), np.asarray(i.dataobj, np.float64).ravel(order='F')]).astype('<f8').tofile(sys.argv[1])",
        &[nii.to_str().unwrap()],
    );
    for r in 0..4 {
        for c in 0..4 {
            assert!((v[r * 4 + c] - e.affine[r][c]).abs() < 1e-4);
        }
    }
    assert_eq!(&v[16..], &e.values[..]);
    // NIfTI -> NRRD (by name) and --format nrrd; the .nhdr output is refused with the fix.
    let nrrd = tmp.path().join("back.nrrd");
    let o = bin()
        .args(["convert", nii.to_str().unwrap(), nrrd.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = assert_matches_pynrrd(&nrrd);
    assert_eq!(back.data, read(&brain).data);
    let o = bin()
        .args([
            "convert",
            nii.to_str().unwrap(),
            tmp.path().join("x.nhdr").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("name the output .nrrd"), "{err}");
}

/// Bad input: `scorerecon info` exits 1 with one `error:` line naming the file and the reason,
/// and never panics.
#[test]
fn bad_nrrd_fails_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    let brain = std::fs::read(pyradiomics("brain1_image.nrrd")).unwrap();
    let header_end = brain.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let good_head = std::str::from_utf8(&brain[..header_end])
        .unwrap()
        .to_string();
    let raw_head =
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 4 3 2\nendian: little\nencoding: raw\n";
    let raw24: Vec<u8> = (0..24u8).collect();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // The header cut off before its blank line.
        (
            "trunc_header.nrrd",
            brain[..header_end - 40].to_vec(),
            "truncated",
        ),
        // Half the gzip stream.
        (
            "trunc_gzip.nrrd",
            brain[..header_end + (brain.len() - header_end) / 2].to_vec(),
            "cannot be decompressed",
        ),
        // Raw data two bytes short, and sizes that need more than the file holds.
        (
            "trunc_raw.nrrd",
            [format!("{raw_head}\n").as_bytes(), &raw24[..22]].concat(),
            "holds 22 bytes of data, but sizes 4 x 3 x 2 of int16 need 48",
        ),
        (
            "wrong_sizes.nrrd",
            [
                raw_head.replace("4 3 2", "4 3 3").as_bytes(),
                b"\n",
                &raw24,
                &raw24,
            ]
            .concat(),
            "holds 48 bytes of data, but sizes 4 x 3 x 3 of int16 need 72",
        ),
        (
            "too_long.nrrd",
            [format!("{raw_head}\n").as_bytes(), &raw24, &raw24, &raw24].concat(),
            "holds 72 bytes",
        ),
        (
            "wrong_sizes_gz.nrrd",
            [
                good_head
                    .replace("sizes: 256 256 25", "sizes: 256 256 24")
                    .as_bytes(),
                &brain[header_end..],
            ]
            .concat(),
            "decompresses to more than 3145728 bytes",
        ),
        (
            "bad_type.nrrd",
            format!("{}\n", raw_head.replace("short", "complex")).into_bytes(),
            "unknown type 'complex'",
        ),
        (
            "block.nrrd",
            format!("{}\n", raw_head.replace("short", "block")).into_bytes(),
            "type block",
        ),
        (
            "bad_enc.nrrd",
            format!("{}\n", raw_head.replace("raw", "zstd")).into_bytes(),
            "unknown encoding 'zstd'",
        ),
        (
            "bzip2.nrrd",
            format!("{}\n", raw_head.replace("raw", "bzip2")).into_bytes(),
            "bzip2 is not supported",
        ),
        (
            "no_sizes.nrrd",
            format!("{}\n", raw_head.replace("sizes: 4 3 2\n", "")).into_bytes(),
            "no 'sizes' field",
        ),
        (
            "no_endian.nrrd",
            format!("{}\n", raw_head.replace("endian: little\n", "")).into_bytes(),
            "no 'endian' field",
        ),
        (
            "outside.nhdr",
            format!("{raw_head}data file: ../secret.raw\n").into_bytes(),
            "outside the header's folder",
        ),
        (
            "absolute.nhdr",
            format!("{raw_head}data file: /etc/passwd\n").into_bytes(),
            "outside the header's folder",
        ),
        (
            "missing.nhdr",
            format!("{raw_head}data file: nothere.raw\n").into_bytes(),
            "is missing",
        ),
        (
            "garbage_gz.nrrd",
            [
                raw_head.replace("raw", "gzip").as_bytes(),
                b"\n",
                b"this is not gzip data at all, just text",
            ]
            .concat(),
            "cannot be decompressed",
        ),
        (
            "huge.nrrd",
            format!("{}\n", raw_head.replace("4 3 2", "100000 100000 100000")).into_bytes(),
            "over the limit",
        ),
        (
            "not_nrrd.nrrd",
            b"P5\n4 3\n255\n".to_vec(),
            "not a NRRD file",
        ),
        (
            "bad_dirs.nrrd",
            format!("{raw_head}space: LPS\nspace directions: none (1,0,0) (0,1,0)\n\n")
                .into_bytes(),
            "axis 0 has no space direction but axis 1 after it has one; only the last axis may be non-spatial",
        ),
        ("empty.nrrd", Vec::new(), "the file is empty"),
        (
            "scanner.nrrd",
            format!("{raw_head}space: scanner-xyz\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n\n")
                .into_bytes(),
            "does not say how the axes lie",
        ),
        (
            "dim5.nrrd",
            format!("{}\n", raw_head.replace("dimension: 3", "dimension: 5")).into_bytes(),
            "dimension 5 is not supported",
        ),
        (
            "twice.nrrd",
            format!("{raw_head}type: float\n\n").into_bytes(),
            "given twice",
        ),
        (
            "binary_header.nrrd",
            [
                b"NRRD0004\ntype: short\n".as_slice(),
                &[0xff, 0xfe, 0x00, b'\n'],
            ]
            .concat(),
            "not text",
        ),
    ];
    std::fs::write(tmp.path().join("secret.raw"), &raw24[..]).unwrap();
    // A symbolic link that leads out of the folder.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(tmp.path().join("secret.raw"), dir.join("link.raw")).unwrap();
        cases.push((
            "link.nhdr",
            format!("{raw_head}data file: link.raw\n").into_bytes(),
            "leads outside the header's folder",
        ));
    }
    for (name, bytes, reason) in &cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = info(&p);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: one line: {err}");
        assert!(
            lines[0].starts_with(&format!("error: {}: ", p.display())),
            "{name}: names the file: {err}"
        );
        assert!(lines[0].contains(reason), "{name}: says '{reason}': {err}");
        assert!(
            !lines[0].contains("Some(") && !lines[0].contains("{ "),
            "{name}: no debug formatting: {err}"
        );
    }
}
