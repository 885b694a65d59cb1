//! ISMRMRD HDF5 (`/dataset/xml` + `/dataset/data`), Cartesian 2-D only, and the ISMRMRD XML
//! header both readers and the fastMRI writer use (a small tolerant parser: element names with
//! their namespace prefix dropped, text content; attributes ignored).
//!
//! Each acquisition is one readout of `number_of_samples` samples per coil at phase-encode step
//! `idx.kspace_encode_step_1`; it lands in `k[slice, coil, readout sample, ky]`, the line whose
//! step is the encoding limits' centre at col `cols/2`, sample `center_sample` at row
//! `encoded x / 2`. Skipped: noise, navigator, phase-correction, dummy, feedback and
//! phase-stabilisation scans. Parallel-imaging calibration lines fill only lines no imaging
//! readout filled. Repeated lines (averages) are averaged. Refused, with the reason:
//! non-Cartesian (XML trajectory or `trajectory_dimensions > 0`), reversed (EPI) readouts, 3-D
//! encoding, several encoding spaces, more than one contrast/phase/repetition/set, coil counts
//! that change between readouts, lines outside the encoded matrix.

use super::{guarded, h5err, open_h5, remove_readout_oversampling, KspaceFormat, RawKspace};
use anyhow::{bail, Result};
use hdf5::types::{TypeDescriptor, VarLenArray, VarLenAscii, VarLenUnicode};
use hdf5::H5Type;
use hdf5_metno as hdf5;
use ndarray::{Array2, Array4};
use num_complex::Complex32;
use std::path::Path;

// ---------------------------------------------------------------- XML header

/// One XML element: local name, text, children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |e, n| e.child(n))
    }

    pub fn value<T: std::str::FromStr>(&self, names: &[&str]) -> Option<T> {
        self.path(names)?.text.trim().parse().ok()
    }
}

/// Parse an XML document into its root element. Tolerant: comments, processing instructions,
/// DOCTYPE and CDATA are handled, attributes are ignored; mismatched tags are an error.
pub(crate) fn parse_xml(s: &str) -> std::result::Result<Element, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut stack: Vec<Element> = vec![Element::default()];
    let local = |n: &str| n.rsplit(':').next().unwrap_or(n).to_string();
    while i < b.len() {
        if b[i] != b'<' {
            let end = s[i..].find('<').map_or(b.len(), |j| i + j);
            let text = unescape(&s[i..end]);
            stack.last_mut().unwrap().text.push_str(&text);
            i = end;
            continue;
        }
        let rest = &s[i..];
        let skip_to = |pat: &str, from: usize| -> std::result::Result<usize, String> {
            rest[from..]
                .find(pat)
                .map(|j| i + from + j + pat.len())
                .ok_or_else(|| format!("unterminated markup at byte {i}"))
        };
        if rest.starts_with("<!--") {
            i = skip_to("-->", 4)?;
        } else if rest.starts_with("<![CDATA[") {
            let end = skip_to("]]>", 9)?;
            stack.last_mut().unwrap().text.push_str(&s[i + 9..end - 3]);
            i = end;
        } else if rest.starts_with("<?") {
            i = skip_to("?>", 2)?;
        } else if rest.starts_with("<!") {
            i = skip_to(">", 2)?;
        } else if rest.starts_with("</") {
            let end = skip_to(">", 2)?;
            let name = local(s[i + 2..end - 1].trim());
            if stack.len() < 2 {
                return Err(format!("closing tag </{name}> without an opening one"));
            }
            let el = stack.pop().unwrap();
            if el.name != name {
                return Err(format!("<{}> closed by </{name}>", el.name));
            }
            stack.last_mut().unwrap().children.push(el);
            i = end;
        } else {
            let end = skip_to(">", 1)?;
            let inner = &s[i + 1..end - 1];
            let self_closing = inner.ends_with('/');
            let inner = inner.trim_end_matches('/');
            let name = local(inner.split_whitespace().next().unwrap_or(""));
            if name.is_empty() {
                return Err(format!("a tag without a name at byte {i}"));
            }
            if stack.len() > 256 {
                return Err("elements nested deeper than 256".into());
            }
            let el = Element {
                name,
                ..Default::default()
            };
            if self_closing {
                stack.last_mut().unwrap().children.push(el);
            } else {
                stack.push(el);
            }
            i = end;
        }
    }
    if stack.len() != 1 {
        return Err(format!("<{}> is never closed", stack.last().unwrap().name));
    }
    let mut doc = stack.pop().unwrap();
    match doc.children.len() {
        1 => Ok(doc.children.pop().unwrap()),
        0 => Err("no XML element".into()),
        n => Err(format!("{n} root elements")),
    }
}

fn unescape(t: &str) -> String {
    if !t.contains('&') {
        return t.to_string();
    }
    t.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// What the readers take from an ISMRMRD XML header (its first `<encoding>`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    /// encodedSpace matrixSize [x, y, z].
    pub encoded: [usize; 3],
    /// reconSpace matrixSize [x, y, z].
    pub recon: [usize; 3],
    pub encoded_fov: Option<[f64; 3]>,
    pub recon_fov: Option<[f64; 3]>,
    pub trajectory: Option<String>,
    /// encodingLimits kspace_encoding_step_1 [minimum, maximum, center].
    pub ky_limits: Option<[usize; 3]>,
    pub encodings: usize,
}

/// Parse an ISMRMRD XML header; the error says what is missing.
pub(crate) fn parse_header(xml: &str) -> std::result::Result<Header, String> {
    let root = parse_xml(xml)?;
    if root.name != "ismrmrdHeader" {
        return Err(format!(
            "the root element is <{}>, not <ismrmrdHeader>",
            root.name
        ));
    }
    let encodings = root
        .children
        .iter()
        .filter(|c| c.name == "encoding")
        .count();
    let enc = root.child("encoding").ok_or("no <encoding>")?;
    let matrix = |space: &str| -> std::result::Result<[usize; 3], String> {
        let m = enc
            .path(&[space, "matrixSize"])
            .ok_or(format!("no <encoding><{space}><matrixSize>"))?;
        let get = |a: &str, default: Option<usize>| {
            m.value::<usize>(&[a]).or(default).ok_or(format!(
                "<{space}><matrixSize><{a}> is missing or not a whole number"
            ))
        };
        Ok([get("x", None)?, get("y", None)?, get("z", Some(1))?])
    };
    let fov = |space: &str| -> Option<[f64; 3]> {
        let f = enc.path(&[space, "fieldOfView_mm"])?;
        Some([f.value(&["x"])?, f.value(&["y"])?, f.value(&["z"])?])
    };
    let ky_limits = enc
        .path(&["encodingLimits", "kspace_encoding_step_1"])
        .and_then(|l| {
            Some([
                l.value(&["minimum"])?,
                l.value(&["maximum"])?,
                l.value(&["center"])?,
            ])
        });
    Ok(Header {
        encoded: matrix("encodedSpace")?,
        recon: matrix("reconSpace")?,
        encoded_fov: fov("encodedSpace"),
        recon_fov: fov("reconSpace"),
        trajectory: enc.child("trajectory").map(|t| t.text.trim().to_string()),
        ky_limits,
        encodings,
    })
}

/// A minimal valid ISMRMRD XML header for a Cartesian 2-D scan of `slices` slices: encoded and
/// recon matrix ([x, y] = [rows, cols]) and FOV, the phase-encode limits centred at cols/2.
/// The resonance frequency the schema requires is not known here and written as 0.
pub(crate) fn minimal_header(
    encoded: [usize; 2],
    recon: [usize; 2],
    encoded_fov: [f64; 3],
    recon_fov: [f64; 3],
    slices: usize,
) -> String {
    let space = |tag: &str, m: [usize; 2], f: [f64; 3]| {
        format!(
            "    <{tag}>\n      <matrixSize><x>{}</x><y>{}</y><z>1</z></matrixSize>\n      <fieldOfView_mm><x>{}</x><y>{}</y><z>{}</z></fieldOfView_mm>\n    </{tag}>\n",
            m[0], m[1], f[0], f[1], f[2]
        )
    };
    let limit = |tag: &str, max: usize, center: usize| {
        format!("      <{tag}><minimum>0</minimum><maximum>{max}</maximum><center>{center}</center></{tag}>\n")
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n  <experimentalConditions>\n    <H1resonanceFrequency_Hz>0</H1resonanceFrequency_Hz>\n  </experimentalConditions>\n  <encoding>\n{}{}    <encodingLimits>\n{}{}    </encodingLimits>\n    <trajectory>cartesian</trajectory>\n  </encoding>\n</ismrmrdHeader>\n",
        space("encodedSpace", encoded, encoded_fov),
        space("reconSpace", recon, recon_fov),
        limit("kspace_encoding_step_1", encoded[1].saturating_sub(1), encoded[1] / 2),
        limit("slice", slices.saturating_sub(1), 0),
    )
}

/// Read a string dataset (scalar or one element): variable-length or fixed-length, ASCII or
/// UTF-8, as h5py, the ISMRMRD library and fastMRI write them.
pub(crate) fn read_string(path: &Path, ds: &hdf5::Dataset, name: &str) -> Result<String> {
    let dtype = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5err(path, &format!("`{name}`: unreadable type")))?;
    let n = ds.size();
    if n != 1 {
        bail!(
            "{}: `{name}` holds {n} strings, expected one",
            path.display()
        );
    }
    let text = match dtype {
        TypeDescriptor::VarLenAscii => ds
            .read_raw::<VarLenAscii>()
            .map(|v| v[0].as_str().to_string()),
        TypeDescriptor::VarLenUnicode => ds
            .read_raw::<VarLenUnicode>()
            .map(|v| v[0].as_str().to_string()),
        TypeDescriptor::FixedAscii(len) | TypeDescriptor::FixedUnicode(len) => {
            return read_fixed_string(path, ds, name, len);
        }
        other => bail!("{}: `{name}` is {other}, not a string", path.display()),
    };
    text.map_err(h5err(path, &format!("cannot read `{name}`")))
}

/// A fixed-length string (h5py's `bytes` scalar): read into the smallest fixed buffer that holds
/// it (HDF5 converts between fixed lengths).
fn read_fixed_string(path: &Path, ds: &hdf5::Dataset, name: &str, len: usize) -> Result<String> {
    use hdf5::types::FixedAscii;
    fn read<const N: usize>(ds: &hdf5::Dataset) -> hdf5::Result<String> {
        let v = ds.read_raw::<FixedAscii<N>>()?;
        Ok(String::from_utf8_lossy(v[0].as_bytes()).into_owned())
    }
    let r = if len <= 1 << 16 {
        read::<{ 1 << 16 }>(ds)
    } else if len <= 1 << 20 {
        read::<{ 1 << 20 }>(ds)
    } else {
        bail!(
            "{}: `{name}` is a {len}-byte string; more than 1 MiB is not read",
            path.display()
        )
    };
    r.map(|s| s.trim_end_matches('\0').to_string())
        .map_err(h5err(path, &format!("cannot read `{name}`")))
}

// ---------------------------------------------------------------- acquisitions

/// The encoding counters the reader uses (HDF5 matches compound members by name, so a subset of
/// the file's `idx` is read).
#[derive(H5Type, Clone, Copy, Debug, Default)]
#[repr(C)]
struct Counters {
    kspace_encode_step_1: u16,
    kspace_encode_step_2: u16,
    average: u16,
    slice: u16,
    contrast: u16,
    phase: u16,
    repetition: u16,
    set: u16,
}

/// The AcquisitionHeader members the reader uses.
#[derive(H5Type, Clone, Copy, Debug, Default)]
#[repr(C)]
struct Head {
    flags: u64,
    number_of_samples: u16,
    active_channels: u16,
    discard_pre: u16,
    discard_post: u16,
    center_sample: u16,
    encoding_space_ref: u16,
    trajectory_dimensions: u16,
    idx: Counters,
}

#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
struct HeadOnly {
    head: Head,
}

#[derive(H5Type, Clone, Debug)]
#[repr(C)]
struct DataOnly {
    data: VarLenArray<f32>,
}

/// ISMRMRD flag bits (1-based, as in ismrmrd/constants.py).
const ACQ_IS_NOISE_MEASUREMENT: u32 = 19;
const ACQ_IS_PARALLEL_CALIBRATION: u32 = 20;
const ACQ_IS_REVERSE: u32 = 22;
const ACQ_IS_NAVIGATION_DATA: u32 = 23;
const ACQ_IS_PHASECORR_DATA: u32 = 24;
const ACQ_IS_HPFEEDBACK_DATA: u32 = 26;
const ACQ_IS_DUMMYSCAN_DATA: u32 = 27;
const ACQ_IS_RTFEEDBACK_DATA: u32 = 28;
const ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA: u32 = 29;
const ACQ_IS_PHASE_STABILIZATION_REFERENCE: u32 = 30;
const ACQ_IS_PHASE_STABILIZATION: u32 = 31;

/// Scans that are not image data and are skipped.
const SKIPPED: [u32; 9] = [
    ACQ_IS_NOISE_MEASUREMENT,
    ACQ_IS_NAVIGATION_DATA,
    ACQ_IS_PHASECORR_DATA,
    ACQ_IS_HPFEEDBACK_DATA,
    ACQ_IS_DUMMYSCAN_DATA,
    ACQ_IS_RTFEEDBACK_DATA,
    ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    ACQ_IS_PHASE_STABILIZATION_REFERENCE,
    ACQ_IS_PHASE_STABILIZATION,
];

fn flag(flags: u64, bit: u32) -> bool {
    flags & (1u64 << (bit - 1)) != 0
}

/// How many acquisitions are read from the file at a time (bounds the memory of their data).
const BLOCK: usize = 1024;

/// Read a Cartesian 2-D ISMRMRD HDF5 file (module documentation: what is read, skipped and
/// refused).
pub fn read_ismrmrd(path: &Path) -> Result<RawKspace> {
    guarded(path, || read_inner(path))
}

fn read_inner(path: &Path) -> Result<RawKspace> {
    let p = path.display();
    let file = open_h5(path)?;
    let group = file
        .group("dataset")
        .map_err(h5err(path, "no `/dataset` group (not an ISMRMRD file)"))?;
    if !group.link_exists("xml") {
        bail!("{p}: no `/dataset/xml` header (not an ISMRMRD file, or a damaged one)");
    }
    let xml_ds = group
        .dataset("xml")
        .map_err(h5err(path, "cannot open `/dataset/xml`"))?;
    let xml = read_string(path, &xml_ds, "/dataset/xml")?;
    let h = parse_header(&xml)
        .map_err(|e| anyhow::anyhow!("{p}: the ISMRMRD XML header cannot be read: {e}"))?;
    if let Some(t) = &h.trajectory {
        if t != "cartesian" {
            bail!("{p}: the trajectory is {t}; only Cartesian ISMRMRD data is read");
        }
    }
    if h.encoded[2] > 1 {
        bail!(
            "{p}: 3-D encoding (encodedSpace z = {}); only 2-D (slice by slice) Cartesian data is read",
            h.encoded[2]
        );
    }
    let [ex, ey, _] = h.encoded;
    let rx = h.recon[0];
    if ex == 0 || ey == 0 {
        bail!("{p}: the encoded matrix is {ex} x {ey}");
    }

    let data = group
        .dataset("data")
        .map_err(h5err(path, "cannot open `/dataset/data`"))?;
    if data.ndim() != 1 {
        bail!(
            "{p}: `/dataset/data` has rank {}, expected 1 (one acquisition per element)",
            data.ndim()
        );
    }
    let n = data.size();
    // Headers first (a few hundred bytes each in the file, 40 here).
    crate::limits::check_memory(
        &format!("{p}: {n} acquisitions"),
        n as f64 * std::mem::size_of::<Head>() as f64,
    )?;
    let heads: Vec<Head> = data
        .read_raw::<HeadOnly>()
        .map_err(h5err(
            path,
            "`/dataset/data` is not an ISMRMRD acquisition table (its `head` lacks the AcquisitionHeader members)",
        ))?
        .into_iter()
        .map(|a| a.head)
        .collect();

    // Which acquisitions are image data, and the geometry they share.
    let mut coils = None;
    let mut slices = 0usize;
    let mut used = vec![false; n];
    let center = h.ky_limits.map_or(ey / 2, |l| l[2]);
    let col_of = |step: u16| -> Option<usize> {
        let c = step as i64 - center as i64 + (ey / 2) as i64;
        (0..ey as i64).contains(&c).then_some(c as usize)
    };
    for (a, hd) in heads.iter().enumerate() {
        if SKIPPED.iter().any(|&b| flag(hd.flags, b)) {
            continue;
        }
        if hd.trajectory_dimensions > 0 {
            bail!(
                "{p}: acquisition {a} carries a {}-D trajectory; only Cartesian ISMRMRD data (trajectory_dimensions = 0) is read",
                hd.trajectory_dimensions
            );
        }
        if flag(hd.flags, ACQ_IS_REVERSE) {
            bail!("{p}: acquisition {a} is a reversed readout (EPI); EPI data is not read");
        }
        if hd.encoding_space_ref != 0 {
            bail!(
                "{p}: acquisition {a} refers to encoding space {}; only the first is read",
                hd.encoding_space_ref
            );
        }
        let i = &hd.idx;
        if i.kspace_encode_step_2 != 0 {
            bail!(
                "{p}: acquisition {a} has kspace_encode_step_2 = {}; 3-D data is not read",
                i.kspace_encode_step_2
            );
        }
        for (what, v) in [
            ("contrast", i.contrast),
            ("phase", i.phase),
            ("repetition", i.repetition),
            ("set", i.set),
        ] {
            if v != 0 {
                bail!("{p}: acquisition {a} has {what} {v}; files with more than one contrast, phase, repetition or set are not read");
            }
        }
        if hd.number_of_samples == 0 || hd.active_channels == 0 {
            continue;
        }
        match coils {
            None => coils = Some(hd.active_channels as usize),
            Some(c) if c != hd.active_channels as usize => bail!(
                "{p}: acquisition {a} has {} coils, earlier ones {c}; the coil count must not change",
                hd.active_channels
            ),
            _ => {}
        }
        if col_of(i.kspace_encode_step_1).is_none() {
            bail!(
                "{p}: acquisition {a} is at phase-encode step {}, outside the encoded matrix ({ey} lines centred at step {center})",
                i.kspace_encode_step_1
            );
        }
        slices = slices.max(i.slice as usize + 1);
        used[a] = true;
    }
    let Some(coils) = coils else {
        bail!("{p}: no image acquisitions (only noise, navigator or calibration scans, or none at all)");
    };
    // Lines that imaging readouts fill; calibration-only readouts fill only the others.
    let mut imaging = Array2::<bool>::from_elem((slices, ey), false);
    for (a, hd) in heads.iter().enumerate() {
        if used[a] && !flag(hd.flags, ACQ_IS_PARALLEL_CALIBRATION) {
            imaging[[
                hd.idx.slice as usize,
                col_of(hd.idx.kspace_encode_step_1).unwrap(),
            ]] = true;
        }
    }
    for (a, hd) in heads.iter().enumerate() {
        if used[a] && flag(hd.flags, ACQ_IS_PARALLEL_CALIBRATION) {
            let col = col_of(hd.idx.kspace_encode_step_1).unwrap();
            if imaging[[hd.idx.slice as usize, col]] {
                used[a] = false;
            }
        }
    }

    let out_rows = if rx > 0 && rx < ex { rx } else { ex };
    let bytes = (slices * coils) as f64 * ex as f64 * ey as f64 * 8.0;
    crate::limits::check_memory(
        &format!("{p}: k-space of {slices} slices x {coils} coils x {ex} x {ey}"),
        bytes * if out_rows < ex { 1.5 } else { 1.0 },
    )?;
    let mut k = Array4::<Complex32>::zeros((slices, coils, ex, ey));
    let mut count = Array2::<u32>::zeros((slices, ey));
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        if !used[start..end].iter().any(|&u| u) {
            start = end;
            continue;
        }
        let block_bytes: f64 = heads[start..end]
            .iter()
            .map(|h| h.number_of_samples as f64 * h.active_channels as f64 * 8.0)
            .sum();
        crate::limits::check_memory(
            &format!("{p}: acquisitions {start}..{end}"),
            bytes + block_bytes,
        )?;
        let block = data
            .read_slice_1d::<DataOnly, _>(start..end)
            .map_err(h5err(
                path,
                &format!("cannot read acquisitions {start}..{end}"),
            ))?;
        for (off, acq) in block.iter().enumerate() {
            let a = start + off;
            if !used[a] {
                continue;
            }
            let hd = &heads[a];
            let ns = hd.number_of_samples as usize;
            let d = acq.data.as_slice();
            if d.len() != 2 * ns * coils {
                bail!(
                    "{p}: acquisition {a} holds {} floats of data, its header says {} samples x {coils} coils (x 2)",
                    d.len(),
                    ns
                );
            }
            // Sample `center_sample` at row ex/2 (0 and a full readout: the centre already).
            let cs = if hd.center_sample == 0 && ns == ex {
                ex / 2
            } else {
                hd.center_sample as usize
            };
            let shift = (ex / 2) as i64 - cs as i64;
            let (lo, hi) = (
                hd.discard_pre as usize,
                ns.saturating_sub(hd.discard_post as usize),
            );
            if lo < hi && (lo as i64 + shift < 0 || hi as i64 - 1 + shift >= ex as i64) {
                bail!(
                    "{p}: acquisition {a}: {ns} samples centred at sample {cs} do not fit the encoded readout of {ex} samples"
                );
            }
            let (s, col) = (
                hd.idx.slice as usize,
                col_of(hd.idx.kspace_encode_step_1).unwrap(),
            );
            for c in 0..coils {
                for smp in lo..hi {
                    let j = 2 * (c * ns + smp);
                    let row = (smp as i64 + shift) as usize;
                    k[[s, c, row, col]] += Complex32::new(d[j], d[j + 1]);
                }
            }
            count[[s, col]] += 1;
        }
        start = end;
    }
    // Averages: repeated lines are averaged.
    for s in 0..slices {
        for col in 0..ey {
            let cnt = count[[s, col]];
            if cnt > 1 {
                k.slice_mut(ndarray::s![s, .., .., col])
                    .mapv_inplace(|v| v / cnt as f32);
            }
        }
    }
    // One mask for every slice.
    let acquired: Vec<bool> = (0..ey).map(|col| count[[0, col]] > 0).collect();
    for s in 1..slices {
        if (0..ey).any(|col| (count[[s, col]] > 0) != acquired[col]) {
            bail!("{p}: slice {s} samples other phase-encode lines than slice 0; one mask must hold for every slice");
        }
    }
    let mask = if acquired.iter().all(|&a| a) {
        None
    } else {
        Some(Array2::from_shape_fn((out_rows, ey), |(_, col)| {
            if acquired[col] {
                1.0
            } else {
                0.0
            }
        }))
    };
    let kspace = if out_rows < ex {
        remove_readout_oversampling(&k, out_rows)
    } else {
        k
    };
    Ok(RawKspace {
        kspace,
        mask,
        reference: None,
        format: KspaceFormat::Ismrmrd,
        recon_matrix: Some([h.recon[0], h.recon[1]]),
        fov_mm: h.recon_fov,
        source: Some(path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_the_parser() {
        let xml = minimal_header(
            [640, 368],
            [320, 320],
            [280.0, 161.0, 4.5],
            [140.0, 140.0, 4.5],
            3,
        );
        let h = parse_header(&xml).unwrap();
        assert_eq!(h.encoded, [640, 368, 1]);
        assert_eq!(h.recon, [320, 320, 1]);
        assert_eq!(h.recon_fov, Some([140.0, 140.0, 4.5]));
        assert_eq!(h.encoded_fov, Some([280.0, 161.0, 4.5]));
        assert_eq!(h.trajectory.as_deref(), Some("cartesian"));
        assert_eq!(h.ky_limits, Some([0, 367, 184]));
    }

    #[test]
    fn tolerant_parser() {
        let x = "<?xml version='1.0'?><!-- c --><a:root xmlns:a='x'><b k=\"v\">1<![CDATA[2]]></b><c/><d>&amp;</d></a:root>";
        let r = parse_xml(x).unwrap();
        assert_eq!(r.name, "root");
        assert_eq!(r.child("b").unwrap().text, "12");
        assert!(r.child("c").is_some());
        assert_eq!(r.child("d").unwrap().text, "&");
        assert!(parse_xml("<a><b></a>").is_err());
        assert!(parse_xml("<a>").is_err());
        assert!(parse_xml("").is_err());
        assert!(parse_xml("<a><b").is_err());
        assert!(parse_header("<other/>").is_err());
        assert!(parse_header("<ismrmrdHeader><encoding/></ismrmrdHeader>").is_err());
    }
}
