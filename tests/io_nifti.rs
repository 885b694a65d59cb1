//! NIfTI-1 reading and writing against nibabel (`get_fdata()`, `img.affine`, zooms) on the real
//! files the setup script fetches; round trips through our writer, read back by us and nibabel.

mod common;

use common::{data, nibabel_file, python_array};
use scorerecon::io::{read_volume, write_volume, ReadOptions};
use scorerecon::Volume;
use std::path::Path;

/// nibabel's view: dims (4), zooms (4, 1 where absent), affine (16), then get_fdata() in C order
/// over (t, k, j, i), i.e. the transposed array raveled.
const NIBABEL: &str = r#"
import sys, numpy as np, nibabel as nb
img = nb.load(sys.argv[2])
a = np.asarray(img.get_fdata(), dtype=np.float64)
shape = list(a.shape) + [1] * (4 - a.ndim)
zooms = list(img.header.get_zooms()) + [1.0] * (4 - a.ndim)
head = np.array(shape + [float(z) for z in zooms] + list(np.asarray(img.affine, float).ravel()))
np.concatenate([head, a.T.ravel()]).astype('<f8').tofile(sys.argv[1])
"#;

struct Nib {
    dims: [usize; 4],
    zooms: [f64; 4],
    affine: [[f64; 4]; 4],
    values: Vec<f64>,
}

fn nibabel(p: &Path) -> Nib {
    nibabel_view(p, false)
}

/// nibabel's view of the file, or of `nb.as_closest_canonical` of it (RAS+ voxel order).
fn nibabel_view(p: &Path, canonical: bool) -> Nib {
    let script = if canonical {
        NIBABEL.replace(
            "img = nb.load(sys.argv[2])",
            "img = nb.as_closest_canonical(nb.load(sys.argv[2]))",
        )
    } else {
        NIBABEL.to_string()
    };
    let v = python_array(&script, &[p.to_str().unwrap()]);
    let mut affine = [[0.0; 4]; 4];
    for r in 0..4 {
        for c in 0..4 {
            affine[r][c] = v[8 + r * 4 + c];
        }
    }
    Nib {
        dims: [v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize],
        zooms: [v[4], v[5], v[6], v[7]],
        affine,
        values: v[24..].to_vec(),
    }
}

fn read(p: &Path) -> Volume {
    read_volume(p, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Values equal nibabel's float64 rounded to f32; dims, zooms and affine equal.
fn assert_matches_nibabel(p: &Path) -> Volume {
    let vol = read(p);
    let nib = nibabel(p);
    let what = p.display();
    assert_eq!(vol.dims, nib.dims, "{what}: dims");
    for a in 0..4 {
        assert!(
            (vol.spacing[a] - nib.zooms[a]).abs() < 1e-6,
            "{what}: zoom {a}: {:?} vs {:?}",
            vol.spacing,
            nib.zooms
        );
    }
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (vol.affine[r][c] - nib.affine[r][c]).abs() < 1e-5,
                "{what}: affine[{r}][{c}] {} vs nibabel {}",
                vol.affine[r][c],
                nib.affine[r][c]
            );
        }
    }
    assert_eq!(vol.data.len(), nib.values.len(), "{what}: voxel count");
    let bad = vol
        .data
        .iter()
        .zip(&nib.values)
        .filter(|(a, b)| **a != **b as f32)
        .count();
    assert_eq!(bad, 0, "{what}: {bad} voxels differ from nibabel");
    vol
}

#[test]
fn big_endian_anatomical_matches_nibabel() {
    assert_matches_nibabel(&nibabel_file("anatomical.nii"));
}

#[test]
fn functional_scl_slope_and_inter_applied_like_nibabel() {
    let vol = assert_matches_nibabel(&nibabel_file("functional.nii"));
    assert_eq!(vol.nt(), 20);
    assert!((vol.provenance.rescale_slope - 0.0754).abs() < 1e-4);
}

#[test]
fn example4d_gz_matches_nibabel() {
    assert_matches_nibabel(&nibabel_file("example4d.nii.gz"));
}

#[test]
fn mni_template_and_head_ct_match_nibabel() {
    assert_matches_nibabel(&data(
        "nilearn/nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    ));
    let ct = assert_matches_nibabel(&data("cranium/head_ct.nii.gz"));
    assert_eq!(ct.dims, [256, 256, 108, 1]);
}

#[test]
fn pydeface_average_and_itk_t1_match_nibabel() {
    let avg = assert_matches_nibabel(&data("pydeface/pydeface/data/mean_reg2mean.nii.gz"));
    assert_eq!(avg.dims, [176, 256, 256, 1]);
    let t1 = assert_matches_nibabel(&data("itk/KmeansTest_T1UCharRaw.nii.gz"));
    assert_eq!(t1.dims, [128, 128, 62, 1]);
}

/// `Volume::to_canonical` (the axis order cross-subject priors train and reconstruct in) gives
/// the voxels, zooms and affine of nibabel's `as_closest_canonical`: the ITK T1 is stored LSA
/// (coronal slices along k); the head CT is RAS already and must come back unchanged.
#[test]
fn canonical_order_matches_nibabel_as_closest_canonical() {
    for rel in ["itk/KmeansTest_T1UCharRaw.nii.gz", "cranium/head_ct.nii.gz"] {
        let p = data(rel);
        let c = read(&p).to_canonical();
        let nib = nibabel_view(&p, true);
        assert_eq!(c.dims, nib.dims, "{rel}: dims");
        for a in 0..3 {
            assert!(
                (c.spacing[a] - nib.zooms[a]).abs() < 1e-6,
                "{rel}: zoom {a}"
            );
        }
        for r in 0..4 {
            for col in 0..4 {
                assert!(
                    (c.affine[r][col] - nib.affine[r][col]).abs() < 1e-4,
                    "{rel}: affine[{r}][{col}] {} vs nibabel {}",
                    c.affine[r][col],
                    nib.affine[r][col]
                );
            }
        }
        let bad = c
            .data
            .iter()
            .zip(&nib.values)
            .filter(|(a, b)| **a != **b as f32)
            .count();
        assert_eq!(
            bad, 0,
            "{rel}: {bad} voxels differ from nibabel's canonical array"
        );
    }
}

#[test]
fn nifti_round_trip_is_exact_for_us_and_nibabel() {
    let dir = tempfile::tempdir().unwrap();
    for (src, name) in [
        (nibabel_file("anatomical.nii"), "a.nii"),
        (nibabel_file("functional.nii"), "f.nii.gz"),
        (nibabel_file("example4d.nii.gz"), "e.nii.gz"),
    ] {
        let vol = read(&src);
        let out = dir.path().join(name);
        write_volume(&vol, &out, None, false).unwrap();
        let back = read(&out);
        assert_eq!(back.data, vol.data, "{name}: values");
        assert_eq!(back.dims, vol.dims, "{name}: dims");
        assert_eq!(back.affine, vol.affine, "{name}: affine");
        assert_eq!(back.spacing, vol.spacing, "{name}: pixdim");
        // nibabel reads our file to the same numbers (sform), and its qform agrees.
        assert_matches_nibabel(&out);
        let q = python_array(
            "import sys, numpy as np, nibabel as nb; h = nb.load(sys.argv[2]).header; np.concatenate([h.get_qform().ravel(), h.get_sform().ravel(), [h['qform_code'], h['sform_code']]]).astype('<f8').tofile(sys.argv[1])",
            &[out.to_str().unwrap()],
        );
        for i in 0..16 {
            assert!(
                (q[i] - q[16 + i]).abs() < 1e-4,
                "{name}: qform {} vs sform {}",
                q[i],
                q[16 + i]
            );
        }
        assert_eq!((q[32], q[33]), (1.0, 1.0), "{name}: xform codes");
    }
}

#[test]
fn dicom_to_nifti_keeps_geometry_nibabel_agrees() {
    let vol = read(&data(
        "pydicom/pydicom/data/test_files/dicomdirtests/98892001/CT5N",
    ));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ct5n.nii.gz");
    write_volume(&vol, &out, None, false).unwrap();
    let nib = nibabel(&out);
    assert_eq!(nib.dims, vol.dims);
    for r in 0..4 {
        for c in 0..4 {
            // The sform holds f32.
            assert!((nib.affine[r][c] - vol.affine[r][c]).abs() < 1e-4);
        }
    }
    let bad = vol
        .data
        .iter()
        .zip(&nib.values)
        .filter(|(a, b)| **a as f64 != **b)
        .count();
    assert_eq!(bad, 0);
}

#[test]
fn hdr_img_pair_matches_nibabel() {
    let dir = tempfile::tempdir().unwrap();
    let hdr = dir.path().join("pair.hdr");
    common::run_python(
        "import sys, nibabel as nb; i = nb.load(sys.argv[1]); nb.save(nb.Nifti1Pair(i.dataobj, i.affine, i.header), sys.argv[2])",
        &[nibabel_file("anatomical.nii").to_str().unwrap(), hdr.to_str().unwrap()],
    );
    assert!(dir.path().join("pair.img").exists());
    assert_matches_nibabel(&hdr);
}
