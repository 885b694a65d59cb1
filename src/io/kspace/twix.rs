//! Siemens raw data ("twix", `meas_*.dat`), VB and VD/VE, read by hand: no crate reads it. The
//! layout (docs/formats.md, "Siemens twix raw data") is the one twixtools 0.24 reads, the
//! independent reference the tests compare against (tests/io_twix.rs).
//!
//! What is read: the last measurement of a VD/VE multi-raid file (VB files hold one), its
//! protocol buffers (only for the readout oversampling factor, the trajectory, ramp-sampling
//! regridding and the field of view), and its image scans (not noise, phase-correction,
//! feedback, sync, phase-stabilisation or separate PAT reference scans). Each scan's line is
//! placed by its Lin and Sli counters so that the mdh's k-space centre (CenterLin, CenterCol)
//! lands at (rows/2, cols/2) of `RawKspace`; readout oversampling is removed (centred
//! orthonormal inverse FFT along the readout, the centre 1/factor kept, FFT back: twixtools'
//! `remove_os` with orthonormal scaling, i.e. sqrt(2) times its values for factor 2); REFLECT
//! lines are reversed after that (as twixtools does); repeated (Ave, Seg) lines are averaged.
//!
//! Refused, with the file and the reason: EPI phase-correction scans (PHASCOR; the correction
//! is not implemented), non-Cartesian trajectories and PROPELLER blades, ramp-sampled readouts
//! (regridding), 3-D partitions, several echoes/phases/repetitions/sets or Ida..Ide indices,
//! coil counts or k-space centres that change between scans, a scan or its samples running past
//! the end of the file (with the byte offset), and declared sizes the file cannot back or the
//! machine cannot hold (checked before allocating).

use super::{KspaceFormat, RawKspace};
use anyhow::{anyhow, bail, Result};
use ndarray::{Array2, Array4};
use num_complex::Complex32;
use std::path::Path;

/// VD/VE: one scan header for all channels, then per channel a channel header and the samples.
const VD_SCAN_HDR: usize = 192;
const VD_CHANNEL_HDR: usize = 32;
/// VB: one 128-byte mdh in front of each channel's samples.
const VB_MDH: usize = 128;
/// MrParcRaidFileHeader (8 bytes) + 64 MrParcRaidFileEntry (152 bytes each).
const RAID_HEADER: usize = 8 + 64 * RAID_ENTRY;
const RAID_ENTRY: usize = 152;
/// The low 25 bits of FlagsAndDMALength are the block's length.
const DMA_LEN_MASK: u32 = (1 << 25) - 1;
/// A k-space may have at most this many (slice, line) cells per acquired line: undersampling
/// beyond 64x is not an acquisition but damaged counters.
const MAX_CELLS_PER_LINE: usize = 64;

/// EvalInfoMask bits (twixtools' mdh_def.mask_id).
pub mod bit {
    pub const ACQEND: u32 = 0;
    pub const RTFEEDBACK: u32 = 1;
    pub const HPFEEDBACK: u32 = 2;
    pub const SYNCDATA: u32 = 5;
    pub const REFPHASESTABSCAN: u32 = 14;
    pub const PHASESTABSCAN: u32 = 15;
    pub const PHASCOR: u32 = 21;
    pub const PATREFSCAN: u32 = 22;
    pub const PATREFANDIMASCAN: u32 = 23;
    pub const REFLECT: u32 = 24;
    pub const NOISEADJSCAN: u32 = 25;
    pub const FIRST_SCAN_IN_BLADE: u32 = 40;
    pub const LAST_SCAN_IN_BLADE: u32 = 41;
    pub const LAST_BLADE_IN_TR: u32 = 42;
    /// Unnamed by Siemens; twixtools files these scans as FID navigators, not image scans.
    pub const NONAME60: u32 = 60;
}

fn has(mask: u64, b: u32) -> bool {
    mask & (1u64 << b) != 0
}

/// Whether a scan with this EvalInfoMask is an image scan (twixtools' `is_image_scan`).
pub fn is_image_scan(mask: u64) -> bool {
    use bit::*;
    let disqualified = [
        ACQEND,
        RTFEEDBACK,
        HPFEEDBACK,
        SYNCDATA,
        REFPHASESTABSCAN,
        PHASESTABSCAN,
        PHASCOR,
        NOISEADJSCAN,
        NONAME60,
    ];
    if disqualified.iter().any(|&b| has(mask, b)) {
        return false;
    }
    !has(mask, PATREFSCAN) || has(mask, PATREFANDIMASCAN)
}

/// The mdh fields this reader uses.
#[derive(Debug, Clone, Copy)]
struct Mdh {
    flags_dma: u32,
    mask: u64,
    samples: usize,
    channels: usize,
    /// Lin, Ave, Sli, Par, Eco, Phs, Rep, Set, Seg, Ida, Idb, Idc, Idd, Ide.
    counter: [u16; 14],
    center_col: usize,
    center_lin: usize,
}

const COUNTER_NAMES: [&str; 14] = [
    "Lin", "Ave", "Sli", "Par", "Eco", "Phs", "Rep", "Set", "Seg", "Ida", "Idb", "Idc", "Idd",
    "Ide",
];
const LIN: usize = 0;
const SLI: usize = 2;
/// Counters that must stay 0: each would be another image of the same slice.
const REFUSED_COUNTERS: [usize; 10] = [3, 4, 5, 6, 7, 9, 10, 11, 12, 13];

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

impl Mdh {
    /// `b` holds at least the header (192 bytes VD, 128 VB).
    fn parse(b: &[u8], vd: bool) -> Mdh {
        // Offsets of EvalInfoMask, SamplesInScan (UsedChannels follows), Counter, CenterCol
        // and CenterLin: VD's scan header has SystemType, PTAB positions and a reserved word
        // (20 bytes) before EvalInfoMask that VB's mdh lacks.
        let (mask, samples, counter, ccol, clin) = if vd {
            (40, 48, 52, 84, 96)
        } else {
            (20, 28, 32, 64, 76)
        };
        let mut c = [0u16; 14];
        for (i, v) in c.iter_mut().enumerate() {
            *v = u16_at(b, counter + 2 * i);
        }
        Mdh {
            flags_dma: u32_at(b, 0),
            mask: u64_at(b, mask),
            samples: u16_at(b, samples) as usize,
            channels: u16_at(b, samples + 2) as usize,
            counter: c,
            center_col: u16_at(b, ccol) as usize,
            center_lin: u16_at(b, clin) as usize,
        }
    }
}

/// One image scan: where its channels' samples start and how to place them.
struct Scan {
    offset: usize,
    mdh: Mdh,
}

/// Read the image scans of the last measurement of a Siemens twix file (docs/formats.md).
pub fn read_twix(path: &Path) -> Result<RawKspace> {
    let len = std::fs::metadata(path)
        .map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?
        .len();
    crate::limits::check_memory(
        &format!("{}: the twix file ({len} bytes)", path.display()),
        len as f64,
    )?;
    let bytes = std::fs::read(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    let mut raw = parse(&bytes).map_err(|e| anyhow!("{}: Siemens twix: {e:#}", path.display()))?;
    raw.source = Some(path.to_path_buf());
    Ok(raw)
}

/// The protocol buffers of one measurement, by name (Config, Dicom, Meas, MeasYaps, Phoenix,
/// Spice), as Latin-1 text.
struct Protocol {
    buffers: Vec<(String, String)>,
}

impl Protocol {
    /// An ASCCONV value (`sKSpace.ucTrajectory = 1`), from MeasYaps first, then any buffer.
    fn ascconv(&self, key: &str) -> Option<String> {
        let order = self
            .buffers
            .iter()
            .filter(|(n, _)| n == "MeasYaps")
            .chain(self.buffers.iter().filter(|(n, _)| n != "MeasYaps"));
        for (_, text) in order {
            for line in text.lines() {
                let line = line.trim_start();
                if let Some(rest) = line.strip_prefix(key) {
                    let rest = rest.trim_start();
                    if let Some(v) = rest.strip_prefix('=') {
                        let v = v.trim();
                        let v = v.split_whitespace().next().unwrap_or("");
                        return Some(v.trim_matches('"').to_string());
                    }
                }
            }
        }
        None
    }

    /// The values of the first non-empty XProtocol parameter `<Param*."name"> { ... }`, with
    /// `<Tag> value` pairs (e.g. `<Precision> 6`) left out.
    fn xprot(&self, name: &str) -> Option<Vec<String>> {
        let needle = format!(".\"{name}\">");
        for (_, text) in &self.buffers {
            let mut from = 0;
            while let Some(i) = text[from..].find(&needle) {
                let start = from + i + needle.len();
                from = start;
                let rest = text[start..].trim_start();
                let Some(body) = rest.strip_prefix('{') else {
                    continue;
                };
                let Some(end) = body.find('}') else {
                    continue;
                };
                let mut values = Vec::new();
                let mut tokens = body[..end].split_whitespace();
                while let Some(t) = tokens.next() {
                    if t.starts_with('<') {
                        tokens.next();
                    } else {
                        values.push(t.trim_matches('"').to_string());
                    }
                }
                if !values.is_empty() {
                    return Some(values);
                }
            }
        }
        None
    }

    fn number(&self, ascconv_key: &str) -> Option<f64> {
        self.ascconv(ascconv_key)?.parse::<f64>().ok()
    }
}

/// Parse a whole twix file held in memory. Errors say what is wrong, without the path.
pub fn parse(b: &[u8]) -> Result<RawKspace> {
    let file_len = b.len();
    if file_len < 8 {
        bail!("the file has {file_len} bytes, too short for a twix header");
    }
    // twixtools' version check: a VD/VE file starts with MrParcRaidFileHeader (hdSize_ small,
    // count_ <= 64); a VB file with its measurement's header length (larger).
    let (first, second) = (u32_at(b, 0), u32_at(b, 4));
    let vd = first < 10000 && second <= 64;
    let (meas_off, meas_len) = if vd {
        let count = second as usize;
        if count == 0 {
            bail!("the multi-raid header lists no measurement");
        }
        if file_len < RAID_HEADER {
            bail!("truncated at byte {file_len}: the multi-raid header needs {RAID_HEADER} bytes");
        }
        let e = 8 + (count - 1) * RAID_ENTRY;
        let off = u64_at(b, e + 8);
        let mut len = u64_at(b, e + 16);
        if len == 0 && count == 1 {
            len = (file_len as u64).saturating_sub(off);
        }
        if off < RAID_HEADER as u64 {
            bail!(
                "measurement {count} of {count} starts at byte {off}, inside the multi-raid header"
            );
        }
        (off, len)
    } else {
        (0, file_len as u64)
    };
    let declared_end = meas_off.saturating_add(meas_len);
    let truncated = declared_end > file_len as u64;
    if meas_off.saturating_add(8) > file_len as u64 {
        bail!(
            "truncated: the measurement starts at byte {meas_off} but the file ends at byte {file_len}"
        );
    }
    let meas_off = meas_off as usize;
    let end = declared_end.min(file_len as u64) as usize;

    // The measurement header: its length, the number of protocol buffers, then each buffer's
    // NUL-terminated name, u32 length and text.
    let hdr_len = u32_at(b, meas_off) as usize;
    let n_buf = u32_at(b, meas_off + 4) as usize;
    let hdr_end = meas_off
        .checked_add(hdr_len)
        .filter(|&e| e <= end)
        .ok_or_else(|| {
            anyhow!(
                "truncated at byte {end}: the measurement header at byte {meas_off} declares {hdr_len} bytes"
            )
        })?;
    if hdr_len < 8 {
        bail!("the measurement header at byte {meas_off} declares {hdr_len} bytes, fewer than 8");
    }
    let mut buffers = Vec::new();
    let mut p = meas_off + 8;
    for k in 0..n_buf {
        let window = &b[p..hdr_end.min(p + 48)];
        let nul = window.iter().position(|&c| c == 0).ok_or_else(|| {
            anyhow!("protocol buffer {k} at byte {p}: no NUL-terminated name in its first 48 bytes")
        })?;
        let name = &window[..nul];
        if name.is_empty() || !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            bail!("protocol buffer {k} at byte {p}: its name is not a word");
        }
        let lp = p + nul + 1;
        if lp + 4 > hdr_end {
            bail!("protocol buffer {k} at byte {p}: its length runs past the measurement header (byte {hdr_end})");
        }
        let blen = u32_at(b, lp) as usize;
        let text_start = lp + 4;
        let text_end = text_start
            .checked_add(blen)
            .filter(|&e| e <= hdr_end)
            .ok_or_else(|| {
                anyhow!(
                    "protocol buffer {k} at byte {p} declares {blen} bytes, past the measurement header's end (byte {hdr_end})"
                )
            })?;
        let text: String = b[text_start..text_end].iter().map(|&c| c as char).collect();
        buffers.push((String::from_utf8_lossy(name).into_owned(), text));
        p = text_end;
    }
    let prot = Protocol { buffers };

    // The scans.
    let mdh_len = if vd { VD_SCAN_HDR } else { VB_MDH };
    let mut pos = hdr_end;
    let mut scans: Vec<Scan> = Vec::new();
    let mut phascor = 0usize;
    let mut blades = 0usize;
    let mut acqend = false;
    let mut n_scan = 0usize;
    while pos < end {
        if end - pos < mdh_len {
            if truncated {
                bail!(
                    "truncated at byte {pos}: scan {n_scan}'s header needs {mdh_len} bytes but the file ends at byte {file_len}"
                );
            }
            if b[pos..end].iter().any(|&c| c != 0) {
                bail!(
                    "truncated at byte {pos}: {} bytes of scan {n_scan}'s header, which needs {mdh_len}",
                    end - pos
                );
            }
            // Zero padding after the last scan (twixtools stops there too).
            break;
        }
        let mdh = Mdh::parse(&b[pos..pos + mdh_len], vd);
        if has(mdh.mask, bit::ACQEND) {
            acqend = true;
            break;
        }
        let block = if has(mdh.mask, bit::SYNCDATA) {
            let dma = (mdh.flags_dma & DMA_LEN_MASK) as usize;
            if dma < mdh_len {
                bail!("scan {n_scan} at byte {pos}: a SYNCDATA block of {dma} bytes, shorter than its header");
            }
            dma
        } else {
            let per = 8 * mdh.samples + if vd { VD_CHANNEL_HDR } else { VB_MDH };
            mdh.channels * per + if vd { VD_SCAN_HDR } else { 0 }
        };
        if block == 0 {
            bail!("scan {n_scan} at byte {pos}: no channels (UsedChannels 0)");
        }
        if pos + block > end {
            let what = if truncated || !vd {
                "the file ends"
            } else {
                "the measurement ends"
            };
            bail!(
                "truncated at byte {pos}: scan {n_scan} ({} channels x {} samples) needs bytes {pos}..{} but {what} at byte {end}",
                mdh.channels,
                mdh.samples,
                pos + block
            );
        }
        if has(mdh.mask, bit::PHASCOR) {
            phascor += 1;
        }
        if [
            bit::FIRST_SCAN_IN_BLADE,
            bit::LAST_SCAN_IN_BLADE,
            bit::LAST_BLADE_IN_TR,
        ]
        .iter()
        .any(|&f| has(mdh.mask, f))
        {
            blades += 1;
        }
        if is_image_scan(mdh.mask) {
            scans.push(Scan { offset: pos, mdh });
        }
        pos += block;
        n_scan += 1;
    }
    if truncated && !acqend {
        bail!(
            "truncated: the measurement declares bytes {meas_off}..{declared_end} but the file ends at byte {file_len}"
        );
    }

    // What this reader does not reconstruct.
    if phascor > 0 {
        bail!(
            "{phascor} EPI phase-correction scans (PHASCOR): echo-planar data need a phase correction this reader does not apply"
        );
    }
    if let Some(t) = prot.ascconv("sKSpace.ucTrajectory") {
        let t = parse_int(&t);
        if t != Some(1) {
            bail!(
                "non-Cartesian acquisition (sKSpace.ucTrajectory = {}; 1 is Cartesian): not read",
                prot.ascconv("sKSpace.ucTrajectory").unwrap_or_default()
            );
        }
    }
    if blades > 0 {
        bail!("PROPELLER/BLADE scans ({blades} with blade flags): non-Cartesian, not read");
    }
    if let Some(mode) = prot.xprot("alRegridMode") {
        if mode
            .first()
            .and_then(|m| m.parse::<i64>().ok())
            .is_some_and(|m| m >= 2)
        {
            bail!(
                "ramp-sampled readout (alRegridMode {}): it needs regridding, which this reader does not do",
                mode[0]
            );
        }
    }
    if scans.is_empty() {
        bail!("no image scans in the last measurement ({n_scan} scans read)");
    }
    let first = scans[0].mdh;
    let coils = first.channels;
    for s in &scans {
        let m = &s.mdh;
        if m.channels != coils {
            bail!(
                "scan at byte {} has {} channels, the first image scan {coils}",
                s.offset,
                m.channels
            );
        }
        if m.samples == 0 {
            bail!("scan at byte {} has no samples", s.offset);
        }
        if m.center_col > m.samples {
            bail!(
                "scan at byte {}: k-space centre column {} is past its {} samples",
                s.offset,
                m.center_col,
                m.samples
            );
        }
        if m.center_lin != first.center_lin {
            bail!(
                "scan at byte {}: k-space centre line {}, the first image scan's {}",
                s.offset,
                m.center_lin,
                first.center_lin
            );
        }
        for &c in &REFUSED_COUNTERS {
            if m.counter[c] != 0 {
                let why = if c == 3 {
                    "3-D partitions are not read"
                } else {
                    "more than one image per slice is not read"
                };
                bail!(
                    "scan at byte {}: counter {} = {}: {why}",
                    s.offset,
                    COUNTER_NAMES[c],
                    m.counter[c]
                );
            }
        }
    }

    // Readout oversampling factor: the protocol's, else Siemens' default of 2.
    let os = match prot.xprot("flReadoutOSFactor") {
        Some(v) => v[0]
            .parse::<f64>()
            .map_err(|_| anyhow!("flReadoutOSFactor {:?} is not a number", v[0]))?,
        None => 2.0,
    };
    let os = if os == 1.0 {
        1
    } else if os == 2.0 {
        2
    } else {
        bail!("readout oversampling factor {os}: only 1 and 2 are read");
    };

    // Sizes: the oversampled readout is long enough to hold every scan with its centre column
    // at the middle; lines likewise around the centre line.
    let rows_os = scans
        .iter()
        .map(|s| 2 * s.mdh.center_col.max(s.mdh.samples - s.mdh.center_col))
        .max()
        .unwrap();
    let rows = rows_os / os;
    // Every line is transformed at the full readout length: one much shorter than the longest
    // is damage (an asymmetric echo keeps well over half), and would let a small file cost
    // long transforms.
    if let Some(s) = scans.iter().find(|s| 4 * s.mdh.samples < rows_os) {
        bail!(
            "scan at byte {} has {} samples, under a quarter of the {rows_os}-sample readout that other scans and their centre columns need",
            s.offset,
            s.mdh.samples
        );
    }
    let center_lin = first.center_lin;
    let max_lin = scans
        .iter()
        .map(|s| s.mdh.counter[LIN] as usize)
        .max()
        .unwrap();
    let cols = 2 * center_lin.max(max_lin + 1 - center_lin.min(max_lin + 1));
    let slices = scans
        .iter()
        .map(|s| s.mdh.counter[SLI] as usize)
        .max()
        .unwrap()
        + 1;
    let lin_shift = cols / 2 - center_lin.min(cols / 2);
    if center_lin > cols / 2 {
        bail!("k-space centre line {center_lin} does not fit {cols} lines");
    }
    // The distinct (slice, line) cells acquired, counted from the scans (not from a grid the
    // counters size, which damaged counters make huge).
    let mut cells_acquired: Vec<(u16, u16)> = scans
        .iter()
        .map(|s| (s.mdh.counter[SLI], s.mdh.counter[LIN]))
        .collect();
    cells_acquired.sort_unstable();
    cells_acquired.dedup();
    let n_acquired = cells_acquired.len();
    if slices * cols > MAX_CELLS_PER_LINE * n_acquired {
        bail!(
            "the counters span {slices} slices x {cols} lines but only {n_acquired} lines were acquired (more than {MAX_CELLS_PER_LINE}x undersampled): damaged counters?"
        );
    }
    let mut acquired = vec![false; slices * cols];
    for &(sl, lin) in &cells_acquired {
        acquired[sl as usize * cols + lin as usize + lin_shift] = true;
    }
    let samples: usize = scans.iter().map(|s| s.mdh.samples).sum::<usize>() * coils;
    if slices * cols * rows * coils > MAX_CELLS_PER_LINE * samples {
        bail!(
            "a k-space of {slices} slices x {coils} coils x {rows} x {cols} from {samples} samples (more than {MAX_CELLS_PER_LINE}x undersampled): damaged counters?"
        );
    }
    let cells = (slices * coils * rows * cols) as f64;
    crate::limits::check_memory(
        &format!("{slices} slices x {coils} coils x {rows} x {cols} k-space"),
        cells * 8.0 * 2.0,
    )?;

    let mut planner = rustfft::FftPlanner::<f32>::new();
    let mut k = Array4::<Complex32>::zeros((slices, coils, rows, cols));
    let mut count = vec![0u32; slices * cols];
    let mut line = vec![Complex32::new(0.0, 0.0); rows_os];
    for s in &scans {
        let m = &s.mdh;
        let sl = m.counter[SLI] as usize;
        let col = m.counter[LIN] as usize + lin_shift;
        count[sl * cols + col] += 1;
        let shift = rows_os / 2 - m.center_col;
        let reflect = has(m.mask, bit::REFLECT);
        for c in 0..coils {
            let start = if vd {
                s.offset + VD_SCAN_HDR + c * (VD_CHANNEL_HDR + 8 * m.samples) + VD_CHANNEL_HDR
            } else {
                s.offset + c * (VB_MDH + 8 * m.samples) + VB_MDH
            };
            line.iter_mut().for_each(|v| *v = Complex32::new(0.0, 0.0));
            for i in 0..m.samples {
                let o = start + 8 * i;
                let re = f32::from_le_bytes(b[o..o + 4].try_into().unwrap());
                let im = f32::from_le_bytes(b[o + 4..o + 8].try_into().unwrap());
                line[shift + i] = Complex32::new(re, im);
            }
            let cropped;
            let out: &[Complex32] = if os == 1 {
                &line
            } else {
                cropped = super::crop_readout(&mut planner, &mut line, rows);
                &cropped
            };
            let mut dst = k.slice_mut(ndarray::s![sl, c, .., col]);
            for r in 0..rows {
                let src = if reflect { out[rows - 1 - r] } else { out[r] };
                dst[r] += src;
            }
        }
    }
    for sl in 0..slices {
        for col in 0..cols {
            let n = count[sl * cols + col];
            if n > 1 {
                let f = 1.0 / n as f32;
                k.slice_mut(ndarray::s![sl, .., .., col])
                    .mapv_inplace(|v| v * f);
            }
        }
    }

    // The mask: lines acquired, which every slice must share.
    let lines: Vec<bool> = acquired[..cols].to_vec();
    for sl in 1..slices {
        if acquired[sl * cols..(sl + 1) * cols] != lines[..] {
            bail!(
                "slice {sl} was sampled on other lines than slice 0: one mask cannot describe both"
            );
        }
    }
    let mask = if lines.iter().all(|&a| a) {
        None
    } else {
        Some(Array2::from_shape_fn((rows, cols), |(_, c)| {
            if lines[c] {
                1.0
            } else {
                0.0
            }
        }))
    };

    let fov = [
        "sSliceArray.asSlice[0].dReadoutFOV",
        "sSliceArray.asSlice[0].dPhaseFOV",
        "sSliceArray.asSlice[0].dThickness",
    ]
    .map(|key| prot.number(key).filter(|v| v.is_finite() && *v > 0.0));
    let fov_mm = match fov {
        [Some(a), Some(b), Some(c)] => Some([a, b, c]),
        _ => None,
    };
    Ok(RawKspace {
        kspace: k,
        mask,
        reference: None,
        format: KspaceFormat::Twix,
        recon_matrix: Some([rows, cols]),
        fov_mm,
        source: None,
    })
}

/// An ASCCONV integer: decimal or 0x hexadecimal.
fn parse_int(s: &str) -> Option<i64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}
