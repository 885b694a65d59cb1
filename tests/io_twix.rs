//! Siemens twix reading against twixtools 0.24 (the independent reference in `.venv`) on its
//! real example files (a phantom, gradient echo and EPI, Skyra 3T), copies of them with mdh
//! flags and counters edited (reflected lines, averages, lines turned into noise scans: partial
//! Fourier), a VB file made from the same samples, and truncated copies.
//!
//! twixtools' `remove_os` uses numpy's unnormalised ifft/fft pair, ours the orthonormal one: for
//! a factor-2 oversampled readout ours is sqrt(2) times its values, and the expected values
//! below are scaled by that.

mod common;

use common::{data, python_array};
use num_complex::Complex32;
use scorerecon::io::kspace::twix::read_twix;
use scorerecon::io::kspace::{KspaceFormat, RawKspace};
use std::path::Path;

/// twixtools' k-space of the image scans of the last measurement, os removed, averages averaged,
/// turned into RawKspace's layout [slices=1, coils, readout, lines] and scaled by sqrt(2): a
/// header of 4 sizes, then (re, im) pairs in C order; then the lines twixtools holds data for.
const TWIXTOOLS: &str = r#"
import sys, numpy as np, twixtools
t = twixtools.map_twix(sys.argv[2], verbose=False)[-1]['image']
t.flags['remove_os'] = True
t.flags['squeeze_singletons'] = True
k = np.asarray(t[:])
assert t.dims == ['Lin', 'Cha', 'Col'], t.dims
k = np.sqrt(2) * k.transpose(1, 2, 0)[np.newaxis]
lines = (np.abs(k).sum(axis=(0, 1, 2)) > 0).astype(np.float64)
head = np.array(k.shape, float)
np.concatenate([head, np.stack([k.real, k.imag], -1).ravel().astype(np.float64), lines]).astype('<f8').tofile(sys.argv[1])
"#;

struct Reference {
    shape: [usize; 4],
    k: Vec<Complex32>,
    lines: Vec<bool>,
}

fn twixtools(file: &Path) -> Reference {
    let v = python_array(TWIXTOOLS, &[file.to_str().unwrap()]);
    let shape = [v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize];
    let n: usize = shape.iter().product();
    let k = (0..n)
        .map(|i| Complex32::new(v[4 + 2 * i] as f32, v[5 + 2 * i] as f32))
        .collect();
    let lines = v[4 + 2 * n..].iter().map(|&x| x > 0.0).collect();
    Reference { shape, k, lines }
}

/// Centred orthonormal 2-D inverse FFT of each (slice, coil) plane: the coil images.
fn coil_images(raw: &RawKspace) -> Vec<Complex32> {
    let (s, c, h, w) = raw.kspace.dim();
    let mut planner = rustfft::FftPlanner::<f32>::new();
    let fh = planner.plan_fft_inverse(h);
    let fw = planner.plan_fft_inverse(w);
    let mut out = Vec::with_capacity(s * c * h * w);
    for si in 0..s {
        for ci in 0..c {
            let mut plane: Vec<Complex32> = raw
                .kspace
                .slice(ndarray::s![si, ci, .., ..])
                .iter()
                .copied()
                .collect();
            ifft2c(&mut plane, h, w, &*fh, &*fw);
            out.extend(plane);
        }
    }
    out
}

fn shift(v: &mut [Complex32], fwd: bool) {
    let n = v.len();
    if fwd {
        v.rotate_right(n / 2)
    } else {
        v.rotate_left(n / 2)
    }
}

fn ifft2c(
    p: &mut [Complex32],
    h: usize,
    w: usize,
    fh: &dyn rustfft::Fft<f32>,
    fw: &dyn rustfft::Fft<f32>,
) {
    let scale = 1.0 / ((h * w) as f32).sqrt();
    for r in 0..h {
        let row = &mut p[r * w..(r + 1) * w];
        shift(row, false);
        fw.process(row);
        shift(row, true);
    }
    let mut col = vec![Complex32::new(0.0, 0.0); h];
    for c in 0..w {
        for r in 0..h {
            col[r] = p[r * w + c];
        }
        shift(&mut col, false);
        fh.process(&mut col);
        shift(&mut col, true);
        for r in 0..h {
            p[r * w + c] = col[r] * scale;
        }
    }
}

fn rel_err(a: &[Complex32], b: &[Complex32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).norm_sqr() as f64)
        .sum();
    let den: f64 = b.iter().map(|y| y.norm_sqr() as f64).sum();
    (num / den).sqrt()
}

/// Root sum of squares over coils of [1, coils, h, w] images.
fn rss(images: &[Complex32], coils: usize, hw: usize) -> Vec<f64> {
    (0..hw)
        .map(|i| {
            (0..coils)
                .map(|c| images[c * hw + i].norm_sqr() as f64)
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn gre() -> std::path::PathBuf {
    data("twix/gre.dat")
}

/// twixtools' k-space as a `RawKspace`, for the same coil-image transform as ours.
fn twixtools_raw(dim: (usize, usize, usize, usize), k: Vec<Complex32>) -> RawKspace {
    RawKspace {
        kspace: ndarray::Array4::from_shape_vec(dim, k).unwrap(),
        mask: None,
        reference: None,
        format: KspaceFormat::Twix,
        recon_matrix: None,
        fov_mm: None,
        source: None,
    }
}

/// Read `file` and compare its k-space and coil images with twixtools'; returns the images'
/// relative error.
fn check_against_twixtools(file: &Path) -> (RawKspace, Reference, f64) {
    let raw = read_twix(file).unwrap();
    let r = twixtools(file);
    let d = raw.kspace.dim();
    assert_eq!([d.0, d.1, d.2, d.3], r.shape, "{}", file.display());
    let ours: Vec<Complex32> = raw.kspace.iter().copied().collect();
    let ek = rel_err(&ours, &r.k);
    assert!(ek < 1e-5, "{}: k-space relative error {ek}", file.display());
    // The coil images, from both k-spaces by the same transform.
    let ref_raw = twixtools_raw(d, r.k.clone());
    let ei = rel_err(&coil_images(&raw), &coil_images(&ref_raw));
    eprintln!(
        "{}: relative error vs twixtools: k-space {ek:.3e}, coil images {ei:.3e}",
        file.display()
    );
    assert!(ei < 1e-5, "{}: image relative error {ei}", file.display());
    (raw, r, ei)
}

#[test]
fn gre_coil_images_match_twixtools() {
    let (raw, _, _) = check_against_twixtools(&gre());
    assert_eq!(raw.kspace.dim(), (1, 2, 160, 160));
    assert!(raw.mask.is_none(), "gre.dat is fully sampled");
    assert_eq!(raw.format, KspaceFormat::Twix);
    assert_eq!(raw.format.to_string(), "Siemens twix");
    assert_eq!(raw.fov_mm, Some([200.0, 200.0, 4.0]));
    assert_eq!(raw.recon_matrix, Some([160, 160]));
}

#[test]
fn gre_rss_is_the_centred_phantom() {
    let raw = read_twix(&gre()).unwrap();
    let (_, coils, h, w) = raw.kspace.dim();
    let r = twixtools(&gre());
    let ref_raw = twixtools_raw(raw.kspace.dim(), r.k);
    let ours = rss(&coil_images(&raw), coils, h * w);
    let theirs = rss(&coil_images(&ref_raw), coils, h * w);
    let corr = correlation(&ours, &theirs);
    eprintln!("gre.dat: RSS correlation with twixtools' {corr:.8}");
    assert!(corr >= 0.9999, "correlation {corr}");
    // The phantom: bright object in the middle, dark corners. Centroid of the pixels above
    // half the maximum.
    let max = ours.iter().cloned().fold(0.0, f64::max);
    let (mut sy, mut sx, mut n) = (0.0, 0.0, 0.0);
    for (i, &v) in ours.iter().enumerate() {
        if v > 0.5 * max {
            sy += (i / w) as f64;
            sx += (i % w) as f64;
            n += 1.0;
        }
    }
    let (cy, cx) = (sy / n, sx / n);
    eprintln!("gre.dat: object centroid ({cy:.1}, {cx:.1}) of {h}x{w}, {n} pixels");
    assert!(n > 0.05 * (h * w) as f64, "object too small: {n} pixels");
    assert!(
        (cy - h as f64 / 2.0).abs() < 0.1 * h as f64
            && (cx - w as f64 / 2.0).abs() < 0.1 * w as f64,
        "centroid ({cy}, {cx}) far from the centre"
    );
    // Background: the four 8x8 corners hold noise only, well below the object.
    let mut corners = Vec::new();
    for (y0, x0) in [(0, 0), (0, w - 8), (h - 8, 0), (h - 8, w - 8)] {
        for y in y0..y0 + 8 {
            corners.extend_from_slice(&ours[y * w + x0..y * w + x0 + 8]);
        }
    }
    let background = corners.iter().sum::<f64>() / corners.len() as f64;
    let object = ours.iter().filter(|&&v| v > 0.5 * max).sum::<f64>() / n;
    eprintln!("gre.dat: object mean {object:.3e}, corner mean {background:.3e}");
    assert!(
        background < 0.2 * object,
        "corners {background} vs object {object}"
    );
}

#[test]
fn epi_is_refused_for_its_phase_correction_scans() {
    let e = read_twix(&data("twix/epi.dat")).expect_err("epi.dat must be refused");
    let msg = format!("{e:#}");
    assert!(msg.contains("epi.dat"), "{msg}");
    assert!(
        msg.contains("PHASCOR") && msg.contains("phase correction"),
        "{msg}"
    );
}

/// gre.dat's layout, from its bytes (its measurement at 10240, header 786112 bytes, 160 scans
/// of 2 channels x 320 samples, then ACQEND).
const SCANS_AT: usize = 10240 + 786112;
const SCAN_LEN: usize = 192 + 2 * (32 + 320 * 8);

fn edit_scan(bytes: &mut [u8], scan: usize, f: impl FnOnce(&mut [u8])) {
    let p = SCANS_AT + scan * SCAN_LEN;
    f(&mut bytes[p..p + 192]);
}

fn lin_of(mdh: &[u8]) -> u16 {
    u16::from_le_bytes([mdh[52], mdh[53]])
}

#[test]
fn edited_gre_reflected_averaged_and_partial_fourier_match_twixtools() {
    let mut b = std::fs::read(gre()).unwrap();
    for s in 0..160 {
        edit_scan(&mut b, s, |m| {
            let lin = lin_of(m);
            assert_eq!(lin as usize, s);
            let mut mask = u64::from_le_bytes(m[40..48].try_into().unwrap());
            if lin < 40 {
                mask |= 1 << 25; // NOISEADJSCAN: not an image scan, so lines 0..39 are missing
            }
            if lin % 4 == 1 {
                mask |= 1 << 24; // REFLECT
            }
            if lin % 4 == 2 {
                // A second average of the line before (a reflected one).
                m[52..54].copy_from_slice(&(lin - 1).to_le_bytes());
                m[54..56].copy_from_slice(&1u16.to_le_bytes());
            }
            m[40..48].copy_from_slice(&mask.to_le_bytes());
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("edited.dat");
    std::fs::write(&f, &b).unwrap();
    let (raw, r, _) = check_against_twixtools(&f);
    let mask = raw.mask.expect("lines are missing");
    for c in 0..160 {
        let expect = c >= 40 && c % 4 != 2;
        assert_eq!(mask[[0, c]] == 1.0, expect, "line {c}");
        assert_eq!(mask[[77, c]], mask[[0, c]]);
        assert_eq!(r.lines[c], expect, "twixtools' line {c}");
    }
}

/// The same samples as a VB file (one 128-byte mdh in front of each channel, no multi-raid
/// header) read the same as gre.dat.
#[test]
fn vb_layout_reads_like_vd() {
    let b = std::fs::read(gre()).unwrap();
    let mut prot = String::from(
        "### ASCCONV BEGIN ###\nsKSpace.ucTrajectory\t = \t1\nsSliceArray.asSlice[0].dReadoutFOV\t = \t200.0\n\
         sSliceArray.asSlice[0].dPhaseFOV\t = \t200.0\nsSliceArray.asSlice[0].dThickness\t = \t4.0\n### ASCCONV END ###\n\
         <ParamDouble.\"flReadoutOSFactor\">  { <Precision> 6  2.000000  }\n",
    );
    // VB is told from VD by a first word (the header length) of 10000 or more.
    while prot.len() < 12000 {
        prot.push(' ');
    }
    let name = b"MeasYaps\0";
    let hdr_len = 8 + name.len() + 4 + prot.len();
    let mut out = Vec::new();
    out.extend((hdr_len as u32).to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(name);
    out.extend((prot.len() as u32).to_le_bytes());
    out.extend(prot.as_bytes());
    let vb_mdh = |vd: &[u8]| {
        let mut m = vec![0u8; 128];
        m[0..4].copy_from_slice(&((2 * (128 + 2560)) as u32).to_le_bytes());
        m[20..28].copy_from_slice(&vd[40..48]); // EvalInfoMask
        m[28..32].copy_from_slice(&vd[48..52]); // SamplesInScan, UsedChannels
        m[32..60].copy_from_slice(&vd[52..80]); // counters
        m[60..64].copy_from_slice(&vd[80..84]); // cut-off
        m[64..66].copy_from_slice(&vd[84..86]); // CenterCol
        m[76..80].copy_from_slice(&vd[96..100]); // CenterLin, CenterPar
        m
    };
    for s in 0..160 {
        let p = SCANS_AT + s * SCAN_LEN;
        let m = vb_mdh(&b[p..p + 192]);
        for c in 0..2 {
            let d = p + 192 + c * (32 + 2560) + 32;
            out.extend(&m);
            out.extend(&b[d..d + 2560]);
        }
    }
    let mut end = vec![0u8; 128];
    end[20] = 1; // ACQEND
    out.extend(end);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("vb.dat");
    std::fs::write(&f, &out).unwrap();
    let vb = read_twix(&f).unwrap();
    let vd = read_twix(&gre()).unwrap();
    assert_eq!(vb.kspace, vd.kspace);
    assert_eq!(vb.fov_mm, vd.fov_mm);
}

#[test]
fn truncated_copies_fail_with_the_file_and_the_offset() {
    let b = std::fs::read(gre()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cuts = [
        ("in the multi-raid header", 100, "multi-raid header"),
        ("at the measurement header", 10240 + 6, "truncated"),
        ("in the protocol buffers", 10240 + 50_000, "truncated"),
        (
            "in the first scan's header",
            SCANS_AT + 100,
            "truncated at byte",
        ),
        (
            "in the first scan's samples",
            SCANS_AT + 192 + 32 + 1000,
            "truncated at byte",
        ),
        (
            "in the last scan's samples",
            SCANS_AT + 160 * SCAN_LEN - 7,
            "truncated at byte",
        ),
        (
            "in the ACQEND block",
            SCANS_AT + 160 * SCAN_LEN + 100,
            "truncated at byte",
        ),
        (
            "after the ACQEND header",
            SCANS_AT + 160 * SCAN_LEN + 200,
            "truncated",
        ),
    ];
    for (what, at, why) in cuts {
        let f = dir.path().join(format!("cut_{at}.dat"));
        std::fs::write(&f, &b[..at]).unwrap();
        let r = std::panic::catch_unwind(|| read_twix(&f));
        let r = r.unwrap_or_else(|_| panic!("cut {what} (byte {at}): panicked"));
        if at == SCANS_AT + 160 * SCAN_LEN + 200 {
            // The ACQEND header is whole: every scan is there, so it reads.
            assert!(r.is_ok(), "cut {what}: {:#}", r.err().unwrap());
            continue;
        }
        let msg = format!("{:#}", r.err().unwrap_or_else(|| panic!("cut {what} read")));
        eprintln!("cut {what}: {msg}");
        assert!(msg.contains(&format!("cut_{at}.dat")), "{msg}");
        assert!(msg.contains(why), "cut {what}: {msg}");
    }
}

#[test]
fn damaged_counters_are_refused_before_allocating() {
    let mut b = std::fs::read(gre()).unwrap();
    edit_scan(&mut b, 3, |m| {
        m[56..58].copy_from_slice(&60000u16.to_le_bytes()); // Sli
        m[52..54].copy_from_slice(&60000u16.to_le_bytes()); // Lin
    });
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("counters.dat");
    std::fs::write(&f, &b).unwrap();
    // Fuzzing finding 1 (docs/fuzzing.md): the acquired-line grid was allocated (lazily, 7 GB)
    // and counted before this check; that took over 10 s.
    let t = std::time::Instant::now();
    let msg = format!("{:#}", read_twix(&f).err().unwrap());
    assert!(
        msg.contains("counters.dat") && msg.contains("damaged counters"),
        "{msg}"
    );
    assert!(t.elapsed().as_secs_f64() < 2.0, "took {:?}", t.elapsed());
}
