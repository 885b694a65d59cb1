//! DICOM in (a file or the files of one folder, grouped by series, sorted along the slice
//! normal, modality LUT applied) and out (a new derived series, one file per slice).
//!
//! Reading goes through dicom-object (parsing, every transfer syntax's data set encoding) and
//! dicom-pixeldata (pixel decoding and the modality LUT: `value = slope * stored + intercept`,
//! the same as pydicom's `apply_modality_lut`). Conventions: docs/io.md.

use crate::io::{warn, WriteOptions};
use crate::volume::{Modality, Provenance, SourceInstance, Volume};
use anyhow::{anyhow, bail, Context, Result};
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

type Object = dicom_object::FileDicomObject<InMemDicomObject>;

/// Explicit VR Little Endian: what every derived file is written in.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// JPEG 2000 (lossless, lossy, Part 2 multi-component) and High-Throughput JPEG 2000.
const JPEG_2000: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
const SECONDARY_CAPTURE_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";
/// This implementation's class UID (a fixed 2.25 UUID UID, made once for scorerecon).
const IMPLEMENTATION_CLASS_UID: &str = "2.25.189023927545064957374178521335612781627";

/// Patient, study and frame-of-reference tags a derived series carries over from its source, so
/// a PACS files it next to the original.
const CARRIED: &[Tag] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::PATIENT_AGE,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::STUDY_ID,
    tags::STUDY_DESCRIPTION,
    tags::ACCESSION_NUMBER,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::FRAME_OF_REFERENCE_UID,
    tags::POSITION_REFERENCE_INDICATOR,
    tags::BODY_PART_EXAMINED,
    tags::PATIENT_POSITION,
    tags::LATERALITY,
];

/// The carried tags (as "GGGGEEEE") that identify the patient, which `--anonymise` drops (the
/// derived series then has PatientName and PatientID empty, as type-2 attributes allow):
/// PatientName, PatientID, PatientBirthDate, PatientSex, PatientAge, AccessionNumber,
/// ReferringPhysicianName.
pub const PATIENT_TAGS: &[&str] = &[
    "00100010", "00100020", "00100030", "00100040", "00101010", "00080050", "00080090",
];

// Acquisition attributes of the CT and MR Image modules are carried too (`carried_tags`), but
// written only into a series of that modality (`write`), so an MR source converted to CT
// carries no MR attributes.

/// Carried tags that belong to the CT Image module only.
const CT_ONLY: &[Tag] = &[tags::KVP];
/// Carried tags that belong to the MR Image module only.
const MR_ONLY: &[Tag] = &[
    tags::SCANNING_SEQUENCE,
    tags::SEQUENCE_VARIANT,
    tags::SCAN_OPTIONS,
    tags::MR_ACQUISITION_TYPE,
    tags::REPETITION_TIME,
    tags::ECHO_TIME,
    tags::ECHO_TRAIN_LENGTH,
    tags::INVERSION_TIME,
    tags::MAGNETIC_FIELD_STRENGTH,
];

/// One series found in a folder, from the headers only.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesSummary {
    pub series_instance_uid: String,
    pub description: String,
    pub modality: String,
    pub files: Vec<PathBuf>,
}

/// Whether `path` starts like a DICOM file: "DICM" after the 128-byte preamble, or at byte 0
/// (a file written without its preamble).
pub fn looks_like_dicom(path: &Path) -> bool {
    let mut head = [0u8; 132];
    let n = std::fs::File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .unwrap_or(0);
    (n >= 132 && &head[128..132] == b"DICM") || (n >= 4 && &head[0..4] == b"DICM")
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn open(path: &Path, header_only: bool) -> Result<Object> {
    if !looks_like_dicom(path) {
        bail!(
            "{}: not a DICOM file (no \"DICM\" marker after a 128-byte preamble; bare data sets without a file meta header are not read)",
            path.display()
        );
    }
    check_declared_lengths(path, header_only)?;
    let mut opts = OpenFileOptions::new();
    if header_only {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    opts.open_file(path).map_err(|e| {
        anyhow!(
            "{}: damaged or truncated DICOM file: {}",
            path.display(),
            one_line(&e)
        )
    })
}

/// Refuses a file in which an element or a pixel data fragment declares more value bytes than
/// the file holds after it. dicom-rs allocates (and zero-fills) a value's declared length before
/// it reads the value, so a damaged 32-bit length (an item tag read as a length, say) would cost
/// up to 4 GiB of memory before the read fails. The walk reads what dicom-object would read, in
/// the same steps, but skips values instead of allocating them: the meta group as
/// `FileMetaTable::read_from` does, the data set with the `DataSetReader` dicom-object uses.
/// Each length is checked against the bytes left (of the inflated data set, for Deflated
/// Explicit VR Little Endian); anything else it cannot parse is left to `open_file` to report.
fn check_declared_lengths(path: &Path, header_only: bool) -> Result<()> {
    use dicom::encoding::decode::Decode;
    use std::io::{BufReader, Seek, SeekFrom};

    let cannot_read = |e: std::io::Error| anyhow!("{}: cannot read: {e}", path.display());
    let open = |offset: u64| -> Result<BufReader<std::fs::File>> {
        let mut f = std::fs::File::open(path).map_err(cannot_read)?;
        f.seek(SeekFrom::Start(offset)).map_err(cannot_read)?;
        Ok(BufReader::new(f))
    };
    let file_len = std::fs::metadata(path).map_err(cannot_read)?.len();
    let mut head = [0u8; 132];
    let n = read_up_to(
        &mut std::fs::File::open(path).map_err(cannot_read)?,
        &mut head,
    )
    .map_err(cannot_read)?;
    let meta_start: u64 = if n == 132 && &head[128..132] == b"DICM" {
        132
    } else {
        4
    };

    // The file meta group, always Explicit VR Little Endian. This mirrors dicom-object's
    // `FileMetaTable::read_from` step for step, since the data set starts wherever it stops:
    // the group length (0002,0000) first, then flat element headers (no sequences or items,
    // whatever their group) read while the bytes read stay below the group length. The last
    // element may run past it; a fuzzed file whose group length ends inside a header puts
    // the data set 10 bytes further on than the group length says.
    let explicit_le = TransferSyntaxRegistry
        .get(EXPLICIT_VR_LE)
        .expect("Explicit VR Little Endian is built in");
    let decoder = dicom::encoding::decode::file_header_decoder();
    let mut meta = open(meta_start)?;
    let mut at = meta_start;
    let Ok((header, n)) = decoder.decode_header(&mut meta) else {
        return Ok(());
    };
    if header.tag != tags::FILE_META_INFORMATION_GROUP_LENGTH || header.len.get() != Some(4) {
        return Ok(());
    }
    let mut gl = [0u8; 4];
    if meta.read_exact(&mut gl).is_err() {
        return Ok(());
    }
    at += n as u64 + 4;
    let (group_length, mut read, mut ts_uid) = (u32::from_le_bytes(gl), 0u32, None);
    while read < group_length {
        let Ok((header, n)) = decoder.decode_header(&mut meta) else {
            return Ok(());
        };
        at += n as u64;
        // An undefined length is dicom-object's to refuse.
        let Some(len) = header.len.get() else {
            return Ok(());
        };
        check_length(path, "meta element", header.tag, len, at, file_len)?;
        if header.tag == tags::TRANSFER_SYNTAX_UID {
            let mut uid = vec![0u8; len as usize];
            if meta.read_exact(&mut uid).is_err() {
                return Ok(());
            }
            let uid = String::from_utf8_lossy(&uid);
            ts_uid = Some(uid.trim_end_matches(['\0', ' ']).to_string());
        } else if meta.seek_relative(i64::from(len)).is_err() {
            return Ok(());
        }
        at += u64::from(len);
        read = read.saturating_add(n as u32).saturating_add(len);
    }
    let data_start = at;
    let Some(ts_uid) = ts_uid else {
        return Ok(());
    };
    // An unknown transfer syntax is open_file's to refuse.
    let Some(ts) = TransferSyntaxRegistry.get(&ts_uid) else {
        return Ok(());
    };
    if ts.is_codec_free() || ts.is_encapsulated_pixel_data() {
        return walk_data_set(
            path,
            open(data_start)?,
            data_start,
            file_len,
            ts,
            header_only,
        );
    }
    // Deflated: the lengths count inflated bytes. Inflate once to count them (streaming, no
    // buffer; up to a damaged stream's first error, as far as dicom-object could read), then
    // walk the inflated stream again.
    let mut stream = flate2::read::DeflateDecoder::new(open(data_start)?);
    let (mut inflated_len, mut chunk) = (0u64, vec![0u8; 1 << 16]);
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        inflated_len += n as u64;
    }
    let inflated = flate2::read::DeflateDecoder::new(open(data_start)?);
    walk_data_set(path, inflated, 0, inflated_len, explicit_le, header_only)
}

/// Walks a data set's tokens with dicom-parser's `DataSetReader` (the reader dicom-object opens
/// files with, so both see the same elements), checking each declared length before the token
/// that reads the value; `end` is the length of the stream `source` reads, whose first byte is
/// byte `base` of it.
fn walk_data_set<R: Read>(
    path: &Path,
    source: R,
    base: u64,
    end: u64,
    ts: &dicom::encoding::TransferSyntax,
    header_only: bool,
) -> Result<()> {
    use dicom::parser::dataset::read::DataSetReaderOptions;
    use dicom::parser::dataset::{DataSetReader, DataToken};
    use std::cell::Cell;
    use std::rc::Rc;

    /// The bytes the decoder has consumed: it reads exactly what each header and value takes.
    struct Counting<R>(R, Rc<Cell<u64>>);
    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.set(self.1.get() + n as u64);
            Ok(n)
        }
    }
    let consumed = Rc::new(Cell::new(0u64));
    // dicom-object's options exactly: how a value is read decides how many bytes it takes (an
    // odd-length US value is read as whole u16s, one byte short of its length, a raw read takes
    // them all), and so where the next header is read.
    let options = DataSetReaderOptions::default();
    let Ok(data) =
        DataSetReader::new_with_ts_options(Counting(source, consumed.clone()), ts, options)
    else {
        return Ok(());
    };
    // The sequences the walk is inside, innermost last; `true` for an encapsulated Pixel Data.
    let mut open_sequences: Vec<bool> = Vec::new();
    for token in data {
        let Ok(token) = token else {
            break;
        };
        let at = base + consumed.get();
        // dicom-object's `read_until(PIXEL_DATA)` stops at the first top-level element from
        // (7FE0,0010) on, before its value; inside a sequence item it reads on (an icon image
        // holds a Pixel Data of its own). It reads an encapsulated Pixel Data's fragments and
        // what follows; so does this walk.
        let stops_here =
            |tag: Tag| header_only && open_sequences.is_empty() && tag >= tags::PIXEL_DATA;
        match token {
            DataToken::ElementHeader(header) => {
                if stops_here(header.tag) {
                    break;
                }
                let len = header.len.get().unwrap_or(0);
                check_length(path, "element", header.tag, len, at, end)?;
            }
            DataToken::SequenceStart { tag, .. } => {
                if stops_here(tag) {
                    break;
                }
                open_sequences.push(false);
            }
            DataToken::PixelSequenceStart => open_sequences.push(true),
            DataToken::SequenceEnd => {
                open_sequences.pop();
            }
            DataToken::ItemStart { len } if open_sequences.last() == Some(&true) => {
                let len = len.get().unwrap_or(0);
                check_length(path, "a fragment of", tags::PIXEL_DATA, len, at, end)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_length(path: &Path, what: &str, tag: Tag, len: u32, at: u64, end: u64) -> Result<()> {
    if u64::from(len) > end.saturating_sub(at) {
        bail!(
            "{}: damaged DICOM file: {what} {tag} declares {len} value bytes at byte {at}, but only {} bytes follow",
            path.display(),
            end.saturating_sub(at)
        );
    }
    Ok(())
}

/// An error and its causes on one line (dicom-rs errors nest their reasons).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s.replace('\n', " ")
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| {
            s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string()
        })
        .filter(|s| !s.is_empty())
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag).and_then(|e| e.to_multi_float64().ok())
}

fn float(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    floats(obj, tag).and_then(|v| v.first().copied())
}

/// The regular, non-hidden files directly inside `dir` (subfolders are not searched), by name.
fn folder_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .map(|n| n.to_string_lossy().starts_with('.'))
                    .unwrap_or(true)
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The image series in a folder (or the one in a file), from headers only. Files that are not
/// DICOM, and DICOM objects without an image (DICOMDIR, reports), are skipped with a warning.
pub fn scan(path: &Path) -> Result<Vec<SeriesSummary>> {
    let files = if path.is_dir() {
        let files = folder_files(path)?;
        if files.is_empty() {
            bail!(
                "{}: empty folder: no files to read (subfolders are not searched)",
                path.display()
            );
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let single = !path.is_dir();
    let mut by_uid: BTreeMap<String, SeriesSummary> = BTreeMap::new();
    let (mut not_dicom, mut no_image) = (0, 0);
    for f in &files {
        if !single && !looks_like_dicom(f) {
            not_dicom += 1;
            continue;
        }
        let obj = open(f, true)?;
        if obj.get(tags::ROWS).is_none() {
            if single {
                bail!(
                    "{}: this DICOM object holds no image (no Rows/Pixel Data)",
                    f.display()
                );
            }
            no_image += 1;
            continue;
        }
        check_image_tags(f, &obj)?;
        let uid = text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        let entry = by_uid.entry(uid.clone()).or_insert_with(|| SeriesSummary {
            series_instance_uid: uid,
            description: text(&obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
            modality: text(&obj, tags::MODALITY).unwrap_or_default(),
            files: Vec::new(),
        });
        entry.files.push(f.clone());
    }
    if not_dicom + no_image > 0 {
        warn(
            &format!(
                "{}: skipped {not_dicom} non-DICOM file(s) and {no_image} DICOM object(s) without an image",
                path.display()
            ),
        );
    }
    if by_uid.is_empty() {
        bail!(
            "{}: no DICOM images in this folder ({} file(s) looked at; subfolders are not searched)",
            path.display(),
            files.len()
        );
    }
    Ok(by_uid.into_values().collect())
}

/// The image tags a file's header must get right before its pixels are worth decoding (cheap:
/// `scan` runs it on headers only, so a 0x0 image fails before a command loads a model): a
/// non-empty image, a usable modality rescale and pixel spacing.
fn check_image_tags(file: &Path, obj: &InMemDicomObject) -> Result<()> {
    let p = file.display();
    let int = |t| obj.get(t).and_then(|e| e.to_int::<i64>().ok());
    let (rows, cols) = (int(tags::ROWS), int(tags::COLUMNS));
    if rows.unwrap_or(0) < 1 || cols.unwrap_or(0) < 1 {
        bail!(
            "{p}: Rows x Columns is {} x {}: an image needs at least one row and one column; the file is damaged",
            rows.map(|v| v.to_string()).unwrap_or_else(|| "missing".into()),
            cols.map(|v| v.to_string()).unwrap_or_else(|| "missing".into())
        );
    }
    if let Some(e) = obj.get(tags::NUMBER_OF_FRAMES) {
        let n = e.to_str().ok().and_then(|s| s.trim().parse::<i64>().ok());
        if n.is_none_or(|n| n < 1) {
            bail!(
                "{p}: NumberOfFrames {:?} must be a whole number of at least 1; the file is damaged",
                e.to_str().map(|s| s.trim().to_string()).unwrap_or_default()
            );
        }
    }
    // Present but unreadable, zero or not finite: refused rather than taken as the default
    // (a slope of "NaN" used to print as NaN and compute as 1).
    // Only tags with their own VR (DS) are judged: a file that stores one as bytes (an
    // implicit-VR oddity, e.g. pydicom's rtdose_rle.dcm) was read without it before, and is still.
    let present = |t| text(obj, t).is_some() && obj.get(t).map(|e| e.vr()) == Some(VR::DS);
    for (tag, name) in [
        (tags::RESCALE_SLOPE, "RescaleSlope"),
        (tags::RESCALE_INTERCEPT, "RescaleIntercept"),
    ] {
        if present(tag) {
            let v = floats(obj, tag).and_then(|v| v.first().copied());
            let ok = v.is_some_and(|v| v.is_finite() && (tag != tags::RESCALE_SLOPE || v != 0.0));
            if !ok {
                bail!(
                    "{p}: {name} {:?} is not usable ({}): fix the tag (e.g. with pydicom) or remove it",
                    text(obj, tag).unwrap_or_default(),
                    if tag == tags::RESCALE_SLOPE { "need a finite, non-zero number" } else { "need a finite number" }
                );
            }
        }
    }
    if present(tags::PIXEL_SPACING) {
        let v = floats(obj, tags::PIXEL_SPACING).unwrap_or_default();
        if v.len() != 2 || !v.iter().all(|x| x.is_finite() && *x > 0.0) {
            bail!(
                "{p}: PixelSpacing {:?} must be two positive numbers of mm (between rows \\ between columns): fix the tag",
                text(obj, tags::PIXEL_SPACING).unwrap_or_default()
            );
        }
    }
    for (tag, name) in [
        (tags::SLICE_THICKNESS, "SliceThickness"),
        (tags::SPACING_BETWEEN_SLICES, "SpacingBetweenSlices"),
    ] {
        if present(tag) && !float(obj, tag).is_some_and(|v| v.is_finite() && v >= 0.0) {
            bail!(
                "{p}: {name} {:?} must be a non-negative number of mm: fix the tag or remove it",
                text(obj, tag).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Pick the series to read: the one asked for, or the only one.
pub fn choose_series(
    path: &Path,
    series: Vec<SeriesSummary>,
    wanted: Option<&str>,
) -> Result<SeriesSummary> {
    if let Some(uid) = wanted {
        let listing = list(&series);
        return series
            .into_iter()
            .find(|s| s.series_instance_uid == uid)
            .ok_or_else(|| {
                anyhow!(
                    "{}: no series with UID {uid}; the folder holds: {listing}",
                    path.display()
                )
            });
    }
    if series.len() > 1 {
        bail!(
            "{}: the folder holds {} series; pick one with --series UID: {}",
            path.display(),
            series.len(),
            list(&series)
        );
    }
    Ok(series
        .into_iter()
        .next()
        .expect("scan returns at least one series"))
}

fn list(series: &[SeriesSummary]) -> String {
    series
        .iter()
        .map(|s| {
            format!(
                "{} ({} {:?}, {} file(s))",
                s.series_instance_uid,
                s.modality,
                s.description,
                s.files.len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One 2-D image (a file, or a frame of a multi-frame file) with its geometry in LPS+.
struct Slice {
    file: PathBuf,
    frame: u32,
    position: Option<[f64; 3]>,
    orientation: Option<[f64; 6]>,
    /// (between rows, between columns), PixelSpacing's order.
    pixel_spacing: Option<[f64; 2]>,
    thickness: Option<f64>,
    instance: Option<i64>,
    rows: usize,
    cols: usize,
    rescale: (f64, f64),
    data: Vec<f32>,
    /// What a derived image's Source Image Sequence names: (SOP Class UID, SOP Instance UID)
    /// and whether the object has several frames.
    sop: Option<(String, String)>,
    multi_frame: bool,
}

/// Read a DICOM file or the chosen series of a folder.
pub fn read(path: &Path, series_uid: Option<&str>) -> Result<Volume> {
    read_series(path, choose_series(path, scan(path)?, series_uid)?)
}

/// Read one series found by `scan` (`path` is the folder or file it came from, for messages).
pub fn read_series(path: &Path, series: SeriesSummary) -> Result<Volume> {
    let mut slices = Vec::new();
    let mut first: Option<Object> = None;
    for f in &series.files {
        let obj = open(f, false)?;
        slices.extend(decode_slices(f, &obj)?);
        if first.is_none() {
            first = Some(obj);
        }
    }
    let first = first.expect("a series has files");
    stack(path, slices, &first, &series)
}

/// Decode every frame of one file to modality values.
fn decode_slices(file: &Path, obj: &Object) -> Result<Vec<Slice>> {
    let ts_uid = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let ts = TransferSyntaxRegistry.get(&ts_uid).ok_or_else(|| {
        anyhow!(
            "{}: unknown transfer syntax UID {ts_uid}; convert it to Explicit VR Little Endian first (e.g. `gdcmconv --raw`)",
            file.display()
        )
    })?;
    if !ts.can_decode_all() {
        bail!(
            "{}: transfer syntax {} ({ts_uid}) has no pure-Rust decoder here; convert it with `gdcmconv --raw` or `dcmdjpls` first",
            file.display(),
            ts.name()
        );
    }
    if obj.get(tags::MODALITY_LUT_SEQUENCE).is_some() {
        bail!(
            "{}: a Modality LUT Sequence (0028,3000) is not supported, only Rescale Slope/Intercept",
            file.display()
        );
    }
    let spp = obj
        .get(tags::SAMPLES_PER_PIXEL)
        .and_then(|e| e.to_int::<u16>().ok())
        .unwrap_or(1);
    if spp != 1 {
        bail!(
            "{}: colour images ({} samples per pixel, {}) are not supported: only grayscale",
            file.display(),
            spp,
            text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default()
        );
    }
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    if !photometric.is_empty() && !photometric.starts_with("MONOCHROME") {
        bail!(
            "{}: PhotometricInterpretation {photometric} is not supported: only grayscale (MONOCHROME1/2)",
            file.display()
        );
    }
    let bits = obj
        .get(tags::BITS_ALLOCATED)
        .and_then(|e| e.to_int::<u16>().ok())
        .unwrap_or(16);
    if ![8, 16, 32].contains(&bits) {
        bail!(
            "{}: BitsAllocated {bits} is not supported (8, 16 or 32 bits per pixel; 1-bit segmentations are not images to reconstruct)",
            file.display()
        );
    }
    // dicom-pixeldata builds its modality LUT with 2^BitsStored entries and asserts 1..=32
    // bits (a panic, found by fuzzing: BitsStored 51); the stored bits must also fit in the
    // allocated ones, below the high bit (PS3.5 8.1.1).
    let us = |tag| obj.get(tag).and_then(|e| e.to_int::<u16>().ok());
    let stored = us(tags::BITS_STORED).unwrap_or(bits);
    let high = us(tags::HIGH_BIT).unwrap_or(stored.saturating_sub(1));
    if stored == 0 || stored > bits || high >= bits || high + 1 < stored {
        bail!(
            "{}: BitsStored {stored} and HighBit {high} do not fit BitsAllocated {bits} (1 <= BitsStored <= HighBit + 1 <= BitsAllocated): the file is damaged",
            file.display()
        );
    }
    check_pixel_length(file, obj)?;
    let decoded = obj.decode_pixel_data().map_err(|e| {
        let hint = if ts.is_codec_free() {
            ""
        } else {
            "; if the codec is the problem, convert it with `gdcmconv --raw` first"
        };
        anyhow!(
            "{}: cannot decode pixel data ({}): {}{hint}",
            file.display(),
            ts.name(),
            one_line(&e)
        )
    })?;
    let (rows, cols) = (decoded.rows() as usize, decoded.columns() as usize);
    let n_frames = decoded.number_of_frames();
    let geometry = FrameGeometry::from_object(obj, n_frames as usize);
    // Big-endian OW pixel data arrives as 16-bit words in native order: a 32-bit sample's high
    // word comes first.
    let big_endian_words = ts.endianness() == dicom::encoding::Endianness::Big
        && obj.get(tags::PIXEL_DATA).map(|e| e.vr()) == Some(VR::OW);
    // Default modality LUT: `slope * stored + intercept` per frame (pydicom's apply_modality_lut).
    let options = ConvertOptions::new().with_modality_lut(ModalityLutOption::Default);
    let rescale = (
        float(obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
        float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
    );
    let instance = obj
        .get(tags::INSTANCE_NUMBER)
        .and_then(|e| e.to_int::<i64>().ok());
    (0..n_frames)
        .map(|frame| {
            let converted = if decoded.bits_allocated() == 32 {
                modality_values_32(&decoded, frame, big_endian_words)
            } else {
                decoded.to_vec_frame_with_options(frame, &options)
            };
            let data: Vec<f32> = converted.map_err(|e| {
                anyhow!(
                    "{}: frame {frame}: cannot convert pixel data: {}",
                    file.display(),
                    one_line(&e)
                )
            })?;
            Ok(Slice {
                file: file.to_path_buf(),
                frame,
                position: geometry.positions.get(frame as usize).copied().flatten(),
                orientation: geometry.orientation,
                pixel_spacing: geometry.pixel_spacing,
                thickness: geometry.thickness,
                instance,
                rows,
                cols,
                rescale,
                data,
                sop: text(obj, tags::SOP_CLASS_UID).zip(text(obj, tags::SOP_INSTANCE_UID)),
                multi_frame: n_frames > 1,
            })
        })
        .collect()
}

/// dicom-pixeldata 0.10 converts 8- and 16-bit samples only; 32-bit ones (RT Dose) get the same
/// modality LUT here from the decoded, native-endian samples.
fn modality_values_32(
    decoded: &dicom_pixeldata::DecodedPixelData,
    frame: u32,
    big_endian_words: bool,
) -> dicom_pixeldata::Result<Vec<f32>> {
    let bytes = decoded.frame_data(frame)?;
    let rescale = decoded.rescale()?;
    let r = rescale[(frame as usize).min(rescale.len() - 1)];
    let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| {
            let b = if big_endian_words {
                let (hi, lo) = ([c[0], c[1]], [c[2], c[3]]);
                let v = (u16::from_ne_bytes(hi) as u32) << 16 | u16::from_ne_bytes(lo) as u32;
                v.to_ne_bytes()
            } else {
                [c[0], c[1], c[2], c[3]]
            };
            let v = if signed {
                i32::from_ne_bytes(b) as f64
            } else {
                u32::from_ne_bytes(b) as f64
            };
            r.apply(v) as f32
        })
        .collect())
}

/// Native (unencapsulated) pixel data shorter than Rows x Columns x frames: a truncated file
/// that the decoder would otherwise report vaguely.
fn check_pixel_length(file: &Path, obj: &Object) -> Result<()> {
    let Some(pd) = obj.get(tags::PIXEL_DATA) else {
        bail!(
            "{}: no Pixel Data (7FE0,0010): truncated or not an image",
            file.display()
        );
    };
    let get = |t| obj.get(t).and_then(|e| e.to_int::<u64>().ok());
    if let Some(fragments) = pd.value().fragments() {
        let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
        if ts == RLE_LOSSLESS {
            let pixels = get(tags::ROWS).unwrap_or(0) * get(tags::COLUMNS).unwrap_or(0);
            let segments = get(tags::SAMPLES_PER_PIXEL).unwrap_or(1)
                * get(tags::BITS_ALLOCATED).unwrap_or(16).div_ceil(8);
            for (frame, fragment) in fragments.iter().enumerate() {
                check_rle_frame(fragment, segments, pixels).map_err(|why| {
                    anyhow!(
                        "{}: damaged RLE Lossless pixel data in frame {frame}: {why}",
                        file.display()
                    )
                })?;
            }
        }
        if JPEG_2000.contains(&ts) {
            let (rows, cols) = (
                get(tags::ROWS).unwrap_or(0),
                get(tags::COLUMNS).unwrap_or(0),
            );
            let spp = get(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
            for (k, fragment) in fragments.iter().enumerate() {
                check_j2k_size(fragment, rows, cols, spp).map_err(|why| {
                    anyhow!(
                        "{}: damaged JPEG 2000 pixel data in fragment {k}: {why}",
                        file.display()
                    )
                })?;
            }
        }
        return Ok(());
    }
    let (rows, cols) = (
        get(tags::ROWS).unwrap_or(0),
        get(tags::COLUMNS).unwrap_or(0),
    );
    let bits = get(tags::BITS_ALLOCATED).unwrap_or(16);
    let frames = obj
        .get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1);
    let expected = rows * cols * frames * bits / 8;
    let got = pd.value().to_bytes().map(|b| b.len() as u64).unwrap_or(0);
    if got < expected {
        bail!(
            "{}: pixel data is truncated: {got} bytes where {rows}x{cols}x{frames} pixels of {bits} bits need {expected}",
            file.display()
        );
    }
    // A whole frame or more beyond what the tags need: Rows, Columns or NumberOfFrames do not
    // describe these pixels, and reading them would scramble the image. Less is padding, which
    // pydicom trims too (its MR_small_padded.dcm has a row of it).
    let frame_bytes = rows * cols * bits / 8;
    if frame_bytes > 0 && got >= expected + frame_bytes {
        bail!(
            "{}: Rows x Columns x NumberOfFrames ({rows} x {cols} x {frames}) of {bits}-bit pixels need {expected} bytes, but the pixel data hold {got}: the image size tags do not match the pixels; the file is damaged",
            file.display()
        );
    }
    Ok(())
}

/// One frame of RLE Lossless (PS3.5 Annex G): a 64-byte header with the segment count and up to
/// 15 offsets, then one PackBits segment per byte of each sample, each decoding to a byte for
/// every pixel. dicom-rs indexes the header and the decoded segments without checking them (a
/// short segment panicked under fuzzing), so they are checked here first.
fn check_rle_frame(fragment: &[u8], segments: u64, pixels: u64) -> std::result::Result<(), String> {
    let word = |k: usize| u32::from_le_bytes(fragment[4 * k..4 * k + 4].try_into().unwrap());
    if fragment.len() < 64 {
        return Err(format!(
            "{} bytes, shorter than the 64-byte RLE header",
            fragment.len()
        ));
    }
    let count = u64::from(word(0));
    // The header has room for 15 offsets (and the caller's image, at most 4).
    if count != segments || count > 15 {
        return Err(format!(
            "the header declares {count} segments where the image needs {segments}"
        ));
    }
    let mut bounds: Vec<usize> = (1..=count as usize).map(|k| word(k) as usize).collect();
    bounds.push(fragment.len());
    for (k, w) in bounds.windows(2).enumerate() {
        if w[0] < 64 || w[0] > w[1] || w[1] > fragment.len() {
            return Err(format!(
                "segment {k} spans bytes {}..{} of a {}-byte fragment",
                w[0],
                w[1],
                fragment.len()
            ));
        }
        let decoded = packbits_len(&fragment[w[0]..w[1]]);
        if decoded < pixels {
            return Err(format!(
                "segment {k} decodes to {decoded} bytes where the image has {pixels} pixels"
            ));
        }
    }
    Ok(())
}

/// A fragment that opens a JPEG 2000 codestream (SOC `FF4F` then SIZ `FF51`, directly or inside
/// a JP2 file) must describe the image the tags do: width `Xsiz - XOsiz` = Columns, height
/// `Ysiz - YOsiz` = Rows, `Csiz` = SamplesPerPixel (ISO 15444-1 A.5.1). dicom-rs writes each
/// decoded component into a buffer sized by the tags without checking (a larger codestream
/// panicked under fuzzing). Fragments that continue a codestream are not checked.
fn check_j2k_size(
    fragment: &[u8],
    rows: u64,
    cols: u64,
    spp: u64,
) -> std::result::Result<(), String> {
    const SOC_SIZ: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
    const JP2_SIGNATURE: [u8; 12] = [0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10];
    let start = if fragment.starts_with(&SOC_SIZ) {
        0
    } else if fragment.starts_with(&JP2_SIGNATURE) {
        match fragment.windows(4).position(|w| w == SOC_SIZ) {
            Some(at) => at,
            None => return Err("a JP2 file without a codestream".into()),
        }
    } else {
        return Ok(());
    };
    // SOC (2), SIZ marker (2), Lsiz (2), Rsiz (2), then Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz,
    // XTOsiz, YTOsiz (4 each, big-endian) and Csiz (2).
    let siz = &fragment[start..];
    if siz.len() < 8 + 32 + 2 {
        return Err(format!("{} bytes, too short for the SIZ marker", siz.len()));
    }
    let u32_at = |k: usize| u64::from(u32::from_be_bytes(siz[k..k + 4].try_into().unwrap()));
    let (x, y, x0, y0) = (u32_at(8), u32_at(12), u32_at(16), u32_at(20));
    let components = u64::from(u16::from_be_bytes([siz[40], siz[41]]));
    if x <= x0 || y <= y0 || x - x0 != cols || y - y0 != rows {
        return Err(format!(
            "the codestream's image is {} x {} (SIZ {x} x {y}, offset {x0}, {y0}) where Rows x Columns are {rows} x {cols}",
            y.saturating_sub(y0),
            x.saturating_sub(x0)
        ));
    }
    if components != spp {
        return Err(format!(
            "the codestream has {components} components where SamplesPerPixel is {spp}"
        ));
    }
    Ok(())
}

/// The number of bytes a PackBits run list decodes to: a header `h` in 0..=127 is followed by
/// `h + 1` literal bytes, one in -127..=-1 by a byte repeated `1 - h` times, and -128 is a no-op.
fn packbits_len(segment: &[u8]) -> u64 {
    let (mut at, mut out) = (0usize, 0u64);
    while at < segment.len() {
        let h = segment[at] as i8;
        at += 1;
        match h {
            0.. => {
                let n = (h as usize + 1).min(segment.len() - at);
                out += n as u64;
                at += n;
            }
            -128 => {}
            _ if at == segment.len() => break,
            _ => {
                out += (1 - i64::from(h)) as u64;
                at += 1;
            }
        }
    }
    out
}

/// Geometry of each frame: from the top-level Image Plane tags, the enhanced multi-frame
/// functional groups, or RT Dose's Grid Frame Offset Vector.
struct FrameGeometry {
    positions: Vec<Option<[f64; 3]>>,
    orientation: Option<[f64; 6]>,
    pixel_spacing: Option<[f64; 2]>,
    thickness: Option<f64>,
}

impl FrameGeometry {
    fn from_object(obj: &InMemDicomObject, n_frames: usize) -> Self {
        let item = |seq: Tag, idx: usize| {
            obj.get(seq)
                .and_then(|e| e.items())
                .and_then(|items| items.get(idx))
        };
        let shared = item(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0);
        let per_frame = |f: usize| item(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, f);
        // A functional-group macro: a one-item sequence inside a group item.
        let macro_value = |group: Option<&InMemDicomObject>, seq: Tag, tag: Tag| {
            group
                .and_then(|g| g.get(seq))
                .and_then(|e| e.items())
                .and_then(|items| items.first())
                .and_then(|m| floats(m, tag))
        };
        let orientation = floats(obj, tags::IMAGE_ORIENTATION_PATIENT)
            .or_else(|| {
                macro_value(
                    shared,
                    tags::PLANE_ORIENTATION_SEQUENCE,
                    tags::IMAGE_ORIENTATION_PATIENT,
                )
            })
            .or_else(|| {
                macro_value(
                    per_frame(0),
                    tags::PLANE_ORIENTATION_SEQUENCE,
                    tags::IMAGE_ORIENTATION_PATIENT,
                )
            })
            .and_then(|v| <[f64; 6]>::try_from(v.as_slice()).ok());
        let pixel_spacing = floats(obj, tags::PIXEL_SPACING)
            .or_else(|| macro_value(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING))
            .and_then(|v| <[f64; 2]>::try_from(v.as_slice()).ok());
        let thickness = float(obj, tags::SLICE_THICKNESS).or_else(|| {
            macro_value(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS)
                .and_then(|v| v.first().copied())
        });
        let top = floats(obj, tags::IMAGE_POSITION_PATIENT)
            .and_then(|v| <[f64; 3]>::try_from(v.as_slice()).ok());
        let normal = orientation.map(|o| slice_normal(&o));
        let offsets = floats(obj, tags::GRID_FRAME_OFFSET_VECTOR);
        let step = float(obj, tags::SPACING_BETWEEN_SLICES).or(thickness);
        let positions = (0..n_frames)
            .map(|f| {
                let from_group = macro_value(
                    per_frame(f),
                    tags::PLANE_POSITION_SEQUENCE,
                    tags::IMAGE_POSITION_PATIENT,
                )
                .and_then(|v| <[f64; 3]>::try_from(v.as_slice()).ok());
                if from_group.is_some() || n_frames == 1 {
                    return from_group.or(top);
                }
                // RT Dose: frame f lies offsets[f] mm along the normal from the first.
                let along = match (&offsets, step) {
                    (Some(o), _) if o.len() == n_frames => Some(o[f] - o[0]),
                    (_, Some(s)) => Some(s * f as f64),
                    _ => None,
                };
                match (top, normal, along) {
                    (Some(p), Some(n), Some(d)) => {
                        Some([p[0] + d * n[0], p[1] + d * n[1], p[2] + d * n[2]])
                    }
                    _ => None,
                }
            })
            .collect();
        FrameGeometry {
            positions,
            orientation,
            pixel_spacing,
            thickness,
        }
    }
}

/// The slice normal: row direction x column direction (both from ImageOrientationPatient).
fn slice_normal(o: &[f64; 6]) -> [f64; 3] {
    let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ]
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Order slices along the normal, check they form one volume, build the affine.
fn stack(
    path: &Path,
    mut slices: Vec<Slice>,
    first: &Object,
    series: &SeriesSummary,
) -> Result<Volume> {
    let (rows, cols) = (slices[0].rows, slices[0].cols);
    if let Some(s) = slices.iter().find(|s| s.rows != rows || s.cols != cols) {
        bail!(
            "{}: slices differ in size: {}x{} in {} but {}x{} in {}",
            path.display(),
            cols,
            rows,
            slices[0].file.display(),
            s.cols,
            s.rows,
            s.file.display()
        );
    }
    let orientation = slices[0].orientation;
    if let (Some(o0), Some(s)) = (
        orientation,
        slices.iter().find(|s| match (s.orientation, orientation) {
            (Some(o), Some(o0)) => o.iter().zip(o0.iter()).any(|(a, b)| (a - b).abs() > 1e-4),
            _ => false,
        }),
    ) {
        bail!(
            "{}: slices have different orientations ({:?} in {} vs {:?} in {}), e.g. a scout series; they do not form one volume",
            path.display(),
            o0,
            slices[0].file.display(),
            s.orientation.unwrap_or_default(),
            s.file.display()
        );
    }
    let mut history = Vec::new();
    let normal = orientation.map(|o| slice_normal(&o));
    let all_positioned = slices.iter().all(|s| s.position.is_some());
    let mut depth: Vec<f64> = Vec::new();
    match normal {
        Some(n) if all_positioned => {
            // Sort along the slice normal (the standard way; file names and InstanceNumber may run
            // either way, e.g. CT5N's z decreases as InstanceNumber increases).
            slices.sort_by(|a, b| {
                let (da, db) = (dot(&n, &a.position.unwrap()), dot(&n, &b.position.unwrap()));
                da.total_cmp(&db).then(a.instance.cmp(&b.instance))
            });
            depth = slices
                .iter()
                .map(|s| dot(&n, &s.position.unwrap()))
                .collect();
            if let Some(w) = depth.windows(2).position(|w| (w[1] - w[0]).abs() < 1e-3) {
                bail!(
                    "{}: {} and {} lie at the same position ({:.3} mm along the normal): several acquisitions or time points in one series are not supported",
                    path.display(),
                    slice_name(&slices[w]),
                    slice_name(&slices[w + 1]),
                    depth[w]
                );
            }
        }
        _ if slices.len() > 1 => {
            slices.sort_by_key(|s| (s.instance, s.frame));
            let msg = format!(
                "{}: no ImagePositionPatient/ImageOrientationPatient on every slice: ordered by InstanceNumber, slice spacing assumed",
                path.display()
            );
            warn(&msg);
            history.push(format!("warning: {msg}"));
        }
        _ => {}
    }
    let [row_spacing, col_spacing] = slices[0].pixel_spacing.unwrap_or([1.0, 1.0]);
    let thickness = slices[0].thickness;
    let nominal = float(first, tags::SPACING_BETWEEN_SLICES)
        .or(thickness)
        .unwrap_or(1.0);
    let steps: Vec<f64> = depth.windows(2).map(|w| w[1] - w[0]).collect();
    let dz = if steps.is_empty() {
        nominal
    } else {
        median(&steps)
    };
    let uneven = steps
        .iter()
        .position(|s| (s - dz).abs() > 0.01 * dz.abs() + 0.01);
    if let Some(i) = uneven {
        let (lo, hi) = steps
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &s| (l.min(s), h.max(s)));
        let msg = format!(
            "{}: uneven slice spacing ({lo:.3} to {hi:.3} mm, median {dz:.3} mm), first between {} and {}; a gap or missing slices; kept as is, not interpolated",
            path.display(),
            slice_name(&slices[i]),
            slice_name(&slices[i + 1])
        );
        warn(&msg);
        history.push(format!("warning: {msg}"));
    }
    // Affine in LPS+ (DICOM), columns: i (along a row), j (down a column), k (slice normal).
    let o = orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let n = normal.unwrap_or([0.0, 0.0, 1.0]);
    let origin = slices[0].position.unwrap_or([0.0; 3]);
    let k_axis = if depth.len() > 1 && uneven.is_none() {
        // Through the first and last positions: keeps a gantry tilt that the normal would lose.
        let (p0, p1) = (origin, slices.last().unwrap().position.unwrap());
        let m = (slices.len() - 1) as f64;
        [
            (p1[0] - p0[0]) / m,
            (p1[1] - p0[1]) / m,
            (p1[2] - p0[2]) / m,
        ]
    } else {
        [n[0] * dz, n[1] * dz, n[2] * dz]
    };
    let mut affine = [[0.0; 4]; 4];
    for r in 0..3 {
        affine[r][0] = o[r] * col_spacing;
        affine[r][1] = o[3 + r] * row_spacing;
        affine[r][2] = k_axis[r];
        affine[r][3] = origin[r];
    }
    affine[3][3] = 1.0;
    let affine = lps_ras(&affine);
    let slice_positions = if all_positioned {
        slices
            .iter()
            .map(|s| {
                let p = s.position.unwrap();
                [-p[0], -p[1], p[2]]
            })
            .collect()
    } else {
        Vec::new()
    };
    let rescale = slices[0].rescale;
    if slices.iter().any(|s| s.rescale != rescale) {
        history.push(format!(
            "{}: rescale slope/intercept differ between slices; each slice used its own",
            path.display()
        ));
    }
    let n_slices = slices.len();
    let mut data = Vec::with_capacity(rows * cols * n_slices);
    for s in &slices {
        data.extend_from_slice(&s.data);
    }
    let modality = Modality::from_dicom_code(&text(first, tags::MODALITY).unwrap_or_default());
    history.insert(
        0,
        format!(
            "read {} DICOM slice(s) of series {} from {}",
            n_slices,
            series.series_instance_uid,
            path.display()
        ),
    );
    Ok(Volume {
        data,
        dims: [cols, rows, n_slices, 1],
        spacing: [col_spacing, row_spacing, dz.abs(), 1.0],
        affine,
        slice_positions,
        modality,
        provenance: Provenance {
            source_files: slices
                .iter()
                .map(|s| s.file.display().to_string())
                .collect(),
            rescale_slope: rescale.0,
            rescale_intercept: rescale.1,
            series_description: text(first, tags::SERIES_DESCRIPTION),
            series_instance_uid: text(first, tags::SERIES_INSTANCE_UID),
            study_instance_uid: text(first, tags::STUDY_INSTANCE_UID),
            carried_tags: carried_tags(first),
            history,
            slice_thickness: thickness,
            // All or nothing: a reference list with holes would point slices at the wrong image.
            source_instances: slices
                .iter()
                .map(|s| {
                    let (class, instance) = s.sop.clone()?;
                    Some(SourceInstance {
                        sop_class_uid: class,
                        sop_instance_uid: instance,
                        frame: s.multi_frame.then_some(s.frame + 1),
                    })
                })
                .collect::<Option<Vec<_>>>()
                .unwrap_or_default(),
        },
    })
}

fn slice_name(s: &Slice) -> String {
    if s.frame > 0 {
        format!("{} (frame {})", s.file.display(), s.frame)
    } else {
        s.file.display().to_string()
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

/// LPS+ <-> RAS+: negate the first two rows (x and y flip sign, z stays). Its own inverse.
pub fn lps_ras(a: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut out = *a;
    for c in 0..4 {
        // `+ 0.0` keeps zeros positive (no "-0" in printed affines).
        out[0][c] = -a[0][c] + 0.0;
        out[1][c] = -a[1][c] + 0.0;
    }
    out
}

/// A tag as the "GGGGEEEE" key of `Provenance::carried_tags`.
fn tag_key(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

/// How a slice's voxels are laid out as stored pixels: radiological convention whatever the
/// volume's voxel order (axial: rows run to the patient's left, columns to posterior; sagittal:
/// posterior and feet; coronal: left and feet), so viewers that show stored pixels show the
/// patient the usual way up. The slice axis stays k: only the in-plane axes swap or flip.
struct DisplayGrid {
    /// The voxel axis (0 = i, 1 = j) along the DICOM row direction (stored column index),
    /// and the one along the column direction (stored row index).
    row_axis: usize,
    col_axis: usize,
    /// -1 where that voxel axis is stored reversed.
    row_sign: f64,
    col_sign: f64,
    /// The voxel (i, j) stored as pixel (0, 0).
    first: [usize; 2],
}

impl DisplayGrid {
    fn new(lps: &[[f64; 4]; 4], n: [usize; 2]) -> Self {
        let unit = |a: usize| -> [f64; 3] {
            let v = [lps[0][a], lps[1][a], lps[2][a]];
            let l = dot(&v, &v).sqrt().max(1e-12);
            [v[0] / l, v[1] / l, v[2] / l]
        };
        let (u, v) = (unit(0), unit(1));
        let normal = [
            u[1] * v[2] - u[2] * v[1],
            u[2] * v[0] - u[0] * v[2],
            u[0] * v[1] - u[1] * v[0],
        ];
        // Targets in LPS+ for the row and column directions, by the plane the normal picks.
        let (row_target, col_target) = match (0..3)
            .max_by(|&a, &b| normal[a].abs().total_cmp(&normal[b].abs()))
            .unwrap_or(2)
        {
            0 => ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0]),
            1 => ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0]),
            _ => ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        };
        let axes = [u, v];
        let keep = dot(&u, &row_target).abs() + dot(&v, &col_target).abs();
        let swap = dot(&v, &row_target).abs() + dot(&u, &col_target).abs();
        let (row_axis, col_axis) = if swap > keep { (1, 0) } else { (0, 1) };
        let sign = |a: usize, t: &[f64; 3]| {
            if dot(&axes[a], t) < 0.0 {
                -1.0
            } else {
                1.0
            }
        };
        let (row_sign, col_sign) = (sign(row_axis, &row_target), sign(col_axis, &col_target));
        let mut first = [0; 2];
        first[row_axis] = if row_sign < 0.0 { n[row_axis] - 1 } else { 0 };
        first[col_axis] = if col_sign < 0.0 { n[col_axis] - 1 } else { 0 };
        DisplayGrid {
            row_axis,
            col_axis,
            row_sign,
            col_sign,
            first,
        }
    }

    /// Index into a slice (`nx` columns) of each stored pixel, row by row.
    fn voxel_order(
        &self,
        nx: usize,
        n_rows: usize,
        n_cols: usize,
    ) -> impl Iterator<Item = usize> + '_ {
        (0..n_rows).flat_map(move |r| {
            (0..n_cols).map(move |c| {
                let mut ij = [0usize; 2];
                ij[self.row_axis] = if self.row_sign < 0.0 {
                    self.first[self.row_axis] - c
                } else {
                    c
                };
                ij[self.col_axis] = if self.col_sign < 0.0 {
                    self.first[self.col_axis] - r
                } else {
                    r
                };
                ij[0] + ij[1] * nx
            })
        })
    }
}

fn carried_tags(obj: &InMemDicomObject) -> Vec<(String, String, String)> {
    CARRIED
        .iter()
        .chain(CT_ONLY)
        .chain(MR_ONLY)
        .filter_map(|&tag| {
            let e = obj.get(tag)?;
            let v = e.to_str().ok()?.to_string();
            Some((tag_key(tag), e.vr().to_string().to_string(), v))
        })
        .collect()
}

/// A fresh UID of the 2.25 form (ISO/IEC 9834-8: the decimal value of a random UUID).
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// A decimal string (VR DS, at most 16 characters) and the value it actually encodes.
fn ds(x: f64) -> (String, f64) {
    let mut s = format!("{x}");
    if s.len() > 16 {
        // Scientific notation with as many digits as fit.
        for prec in (0..=10).rev() {
            s = format!("{x:.prec$e}");
            if s.len() <= 16 {
                break;
            }
        }
    }
    let v = s.parse::<f64>().expect("a formatted float parses");
    (s, v)
}

/// The stored-value encoding: `value = slope * stored + intercept` with int16 `stored`.
/// Integral data whose range fits 16 bits is stored exactly (slope 1); anything else spreads
/// its range over -32767..32767, so the error is at most slope / 2 (docs/io.md).
pub fn choose_rescale(lo: f64, hi: f64, integral: bool) -> (f64, f64) {
    if integral && hi - lo <= 65535.0 {
        let intercept = if lo >= -32768.0 && hi <= 32767.0 {
            0.0
        } else {
            (lo + 32768.0).floor()
        };
        return (1.0, ds(intercept).1);
    }
    let slope = ((hi - lo) / 65534.0).max(f64::MIN_POSITIVE);
    let (_, slope) = ds(slope * (1.0 + 1e-9));
    let (_, intercept) = ds(0.5 * (hi + lo));
    (slope, intercept)
}

/// Write `vol` as a new derived series: one file per slice in the folder `path`, or a single
/// file when `path` ends in `.dcm` and the volume has one slice.
pub fn write(vol: &Volume, path: &Path, opts: &WriteOptions) -> Result<()> {
    if vol.nt() > 1 {
        bail!(
            "{}: DICOM output of a 4-D volume ({} frames) is not supported; write NIfTI instead",
            path.display(),
            vol.nt()
        );
    }
    let (lo, hi) = vol.value_range().ok_or_else(|| {
        anyhow!(
            "{}: the volume has no finite values to write",
            path.display()
        )
    })?;
    if vol.data.iter().any(|v| !v.is_finite()) {
        bail!(
            "{}: the volume holds NaN or infinite values, which DICOM integers cannot store",
            path.display()
        );
    }
    let integral = vol.data.iter().all(|v| v.fract() == 0.0);
    let (slope, intercept) = choose_rescale(lo as f64, hi as f64, integral);
    // The window a viewer opens the series with (default: CT soft tissue, else percentiles).
    let window = opts
        .window
        .unwrap_or(crate::io::png::WindowPreset::Auto)
        .resolve(&vol.data, vol.modality);
    let series_uid = new_uid();
    let carried: BTreeMap<String, (String, String)> = vol
        .provenance
        .carried_tags
        .iter()
        .map(|(t, vr, v)| (t.clone(), (vr.clone(), v.clone())))
        .collect();
    // One study and frame of reference for every series of a job (WriteOptions), else the
    // source's, else new ones.
    let study_uid = opts
        .study_instance_uid
        .clone()
        .or_else(|| {
            carried
                .get(&tag_key(tags::STUDY_INSTANCE_UID))
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(new_uid);
    let frame_of_reference = opts
        .frame_of_reference_uid
        .clone()
        .or_else(|| {
            carried
                .get(&tag_key(tags::FRAME_OF_REFERENCE_UID))
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(new_uid);
    let now = chrono::Local::now();
    let (date, time) = (
        now.format("%Y%m%d").to_string(),
        now.format("%H%M%S").to_string(),
    );
    let description = opts.series_description.clone().unwrap_or_else(|| {
        match &vol.provenance.series_description {
            Some(d) => format!("scorerecon: {d}"),
            None => "scorerecon output".to_string(),
        }
    });
    let derivation = opts.derivation_description.clone().unwrap_or_else(|| {
        format!(
            "scorerecon {} from {}",
            crate::version(),
            vol.provenance
                .series_instance_uid
                .as_deref()
                .or(vol.provenance.source_files.first().map(|s| s.as_str()))
                .unwrap_or("unknown source")
        )
    });
    let sop_class = match vol.modality {
        Modality::Ct => CT_IMAGE_STORAGE,
        Modality::Mr => MR_IMAGE_STORAGE,
        Modality::Other => SECONDARY_CAPTURE_IMAGE_STORAGE,
    };
    // Acquisition attributes of the other modality's image module would be stray here.
    let foreign: &[Tag] = match vol.modality {
        Modality::Ct => MR_ONLY,
        Modality::Mr => CT_ONLY,
        Modality::Other => &[CT_ONLY, MR_ONLY].concat(),
    };
    let foreign: Vec<String> = foreign.iter().map(|&t| tag_key(t)).collect();
    let lps = lps_ras(&vol.affine);
    let grid = DisplayGrid::new(&lps, [vol.nx(), vol.ny()]);
    let column = |a: usize| [lps[0][a], lps[1][a], lps[2][a]];
    let norm = |a: usize| dot(&column(a), &column(a)).sqrt();
    let (col_spacing, row_spacing, step) = (norm(grid.row_axis), norm(grid.col_axis), norm(2));
    let mut iop = [0.0; 6];
    for r in 0..3 {
        iop[r] = grid.row_sign * lps[r][grid.row_axis] / col_spacing;
        iop[3 + r] = grid.col_sign * lps[r][grid.col_axis] / row_spacing;
    }
    // The stored pixel (0, 0) is voxel (i, j) = `grid.first` of the volume's slice.
    let first_offset: [f64; 3] = std::array::from_fn(|r| {
        lps[r][0] * grid.first[0] as f64 + lps[r][1] * grid.first[1] as f64
    });
    let (n_rows, n_cols) = (
        [vol.nx(), vol.ny()][grid.col_axis],
        [vol.nx(), vol.ny()][grid.row_axis],
    );
    // One slice's file object; written below as a folder of files or one file.
    let make = |k: usize| -> Result<Object> {
        let voxel0 = match vol.slice_positions.get(k) {
            Some(p) if vol.slice_positions.len() == vol.nz() => [-p[0], -p[1], p[2]],
            _ => std::array::from_fn(|r| lps[r][3] + k as f64 * lps[r][2]),
        };
        let position: [f64; 3] = std::array::from_fn(|r| voxel0[r] + first_offset[r]);
        let slice = vol.slice(k, 0);
        let stored: Vec<u16> = grid
            .voxel_order(vol.nx(), n_rows, n_cols)
            .map(|v| {
                let s = ((slice[v] as f64 - intercept) / slope).round();
                s.clamp(-32768.0, 32767.0) as i16 as u16
            })
            .collect();
        let mut obj = InMemDicomObject::new_empty();
        let mut put_str = |tag: Tag, vr: VR, v: &str| {
            obj.put(DataElement::new(
                tag,
                vr,
                PrimitiveValue::from(v.to_string()),
            ));
        };
        let sop_uid = new_uid();
        put_str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        for (tag, (vr, value)) in &carried {
            let t = Tag(
                u16::from_str_radix(&tag[..4], 16).unwrap_or(0),
                u16::from_str_radix(&tag[4..], 16).unwrap_or(0),
            );
            let vr = vr.parse::<VR>().unwrap_or(VR::LO);
            if t != tags::SPECIFIC_CHARACTER_SET && !foreign.contains(tag) {
                put_str(t, vr, value);
            }
        }
        // Value 3: the CT Image module allows AXIAL or LOCALIZER only (a cross-section is AXIAL
        // whatever its plane); MR's defined terms have no plain cross-section, so OTHER.
        put_str(
            tags::IMAGE_TYPE,
            VR::CS,
            match vol.modality {
                Modality::Ct => "DERIVED\\SECONDARY\\AXIAL",
                Modality::Mr => "DERIVED\\SECONDARY\\OTHER",
                Modality::Other => "DERIVED\\SECONDARY",
            },
        );
        put_str(tags::SOP_CLASS_UID, VR::UI, sop_class);
        put_str(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid);
        put_str(tags::STUDY_INSTANCE_UID, VR::UI, &study_uid);
        put_str(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid);
        put_str(tags::FRAME_OF_REFERENCE_UID, VR::UI, &frame_of_reference);
        let mut type2 = vec![
            (tags::PATIENT_NAME, VR::PN),
            (tags::PATIENT_ID, VR::LO),
            (tags::PATIENT_BIRTH_DATE, VR::DA),
            (tags::PATIENT_SEX, VR::CS),
            (tags::STUDY_ID, VR::SH),
            (tags::ACCESSION_NUMBER, VR::SH),
            (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
            (tags::POSITION_REFERENCE_INDICATOR, VR::LO),
            // General Series, type 2C (a paired body part without Image Laterality): dciodvfy
            // cannot tell the body part, so empty unless the source said.
            (tags::LATERALITY, VR::CS),
        ];
        match vol.modality {
            Modality::Ct => type2.extend([(tags::KVP, VR::DS), (tags::ACQUISITION_NUMBER, VR::IS)]),
            // MR Image module, type 2 (and 2C: RepetitionTime, unless the sequence is EP or SK).
            Modality::Mr => type2.extend([
                (tags::SCAN_OPTIONS, VR::CS),
                (tags::MR_ACQUISITION_TYPE, VR::CS),
                (tags::REPETITION_TIME, VR::DS),
                (tags::ECHO_TIME, VR::DS),
                (tags::ECHO_TRAIN_LENGTH, VR::IS),
            ]),
            Modality::Other => {}
        }
        for (tag, vr) in type2 {
            // Type 2 attributes: present, empty when the source did not say.
            if !carried.contains_key(&tag_key(tag)) {
                put_str(tag, vr, "");
            }
        }
        if vol.modality == Modality::Mr {
            // Type 1: not known for a derived image of unknown acquisition; RM = research mode,
            // NONE = no variant (the defined terms), unless the MR source said.
            for (tag, value) in [
                (tags::SCANNING_SEQUENCE, "RM"),
                (tags::SEQUENCE_VARIANT, "NONE"),
            ] {
                if !carried.contains_key(&tag_key(tag)) {
                    put_str(tag, VR::CS, value);
                }
            }
        }
        if vol.modality != Modality::Other
            && !carried.contains_key(&tag_key(tags::PATIENT_POSITION))
        {
            // Type 2C for CT and MR; head first supine, the position every prior here was
            // trained on, when the source does not say.
            put_str(tags::PATIENT_POSITION, VR::CS, "HFS");
        }
        if !carried.contains_key("00080020") {
            put_str(tags::STUDY_DATE, VR::DA, &date);
            put_str(tags::STUDY_TIME, VR::TM, &time);
        }
        put_str(tags::SERIES_DATE, VR::DA, &date);
        put_str(tags::SERIES_TIME, VR::TM, &time);
        put_str(tags::CONTENT_DATE, VR::DA, &date);
        put_str(tags::CONTENT_TIME, VR::TM, &time);
        put_str(tags::MODALITY, VR::CS, vol.modality.dicom_code());
        if vol.modality == Modality::Other {
            // SC Equipment module (Secondary Capture only): workstation.
            put_str(tags::CONVERSION_TYPE, VR::CS, "WSD");
        }
        put_str(tags::MANUFACTURER, VR::LO, "scorerecon");
        put_str(tags::SOFTWARE_VERSIONS, VR::LO, crate::version());
        put_str(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            &truncate(&description, 64),
        );
        put_str(
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            &truncate(&derivation, 1024),
        );
        put_str(
            tags::SERIES_NUMBER,
            VR::IS,
            &opts.series_number.unwrap_or(9001).to_string(),
        );
        put_str(tags::INSTANCE_NUMBER, VR::IS, &(k + 1).to_string());
        put_str(tags::IMAGE_POSITION_PATIENT, VR::DS, &ds_multi(&position));
        put_str(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, &ds_multi(&iop));
        put_str(
            tags::PIXEL_SPACING,
            VR::DS,
            &ds_multi(&[row_spacing, col_spacing]),
        );
        // The slices' own thickness, not the step (every 12th slice of a 1.5 mm series is
        // 1.5 mm thick, 18 mm apart).
        let thickness = vol.provenance.slice_thickness.unwrap_or(vol.spacing[2]);
        put_str(tags::SLICE_THICKNESS, VR::DS, &ds(thickness).0);
        put_str(tags::SPACING_BETWEEN_SLICES, VR::DS, &ds(step).0);
        put_str(
            tags::SLICE_LOCATION,
            VR::DS,
            &ds(dot(&slice_normal(&iop), &position)).0,
        );
        put_str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
        // The MR Image IOD has no Modality LUT: identity rescales are left out; float values
        // keep theirs (dciodvfy warns, pydicom and viewers apply it), since dropping it would
        // change the values the NIfTI output holds.
        if vol.modality != Modality::Mr || slope != 1.0 || intercept != 0.0 {
            put_str(tags::RESCALE_SLOPE, VR::DS, &ds(slope).0);
            put_str(tags::RESCALE_INTERCEPT, VR::DS, &ds(intercept).0);
            put_str(
                tags::RESCALE_TYPE,
                VR::LO,
                if vol.modality == Modality::Ct {
                    "HU"
                } else {
                    "US"
                },
            );
        }
        put_str(tags::WINDOW_CENTER, VR::DS, &ds(window.center).0);
        put_str(tags::WINDOW_WIDTH, VR::DS, &ds(window.width).0);
        let put_us = |obj: &mut InMemDicomObject, tag: Tag, v: u16| {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
        };
        put_us(&mut obj, tags::SAMPLES_PER_PIXEL, 1);
        put_us(&mut obj, tags::ROWS, n_rows as u16);
        put_us(&mut obj, tags::COLUMNS, n_cols as u16);
        put_us(&mut obj, tags::BITS_ALLOCATED, 16);
        put_us(&mut obj, tags::BITS_STORED, 16);
        put_us(&mut obj, tags::HIGH_BIT, 15);
        put_us(&mut obj, tags::PIXEL_REPRESENTATION, 1);
        // The source image this slice was derived from (General Image module), when there is one.
        if let Some(src) = vol
            .provenance
            .source_instances
            .get(k)
            .filter(|_| vol.provenance.source_instances.len() == vol.nz())
        {
            let mut item = InMemDicomObject::new_empty();
            let mut put = |tag: Tag, vr: VR, v: String| {
                item.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
            };
            put(
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                src.sop_class_uid.clone(),
            );
            put(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                src.sop_instance_uid.clone(),
            );
            if let Some(f) = src.frame {
                put(tags::REFERENCED_FRAME_NUMBER, VR::IS, f.to_string());
            }
            obj.put(DataElement::new(
                tags::SOURCE_IMAGE_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![item]),
            ));
        }
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(stored.into()),
        ));
        let file_obj = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(EXPLICIT_VR_LE)
                    .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                    .implementation_version_name(format!("SCORERECON_{}", crate::version())),
            )
            .map_err(|e| {
                anyhow!(
                    "{}: cannot build DICOM meta group: {}",
                    path.display(),
                    one_line(&e)
                )
            })?;
        Ok(file_obj)
    };
    let write_err = |shown: &Path, e: &dyn std::error::Error| {
        anyhow!("{}: cannot write: {}", shown.display(), one_line(e))
    };
    let single_file = path
        .extension()
        .map(|e| e.eq_ignore_ascii_case("dcm"))
        .unwrap_or(false);
    if single_file {
        if vol.nz() != 1 {
            bail!(
                "{}: a .dcm name holds one slice and the volume has {}; give a folder name with --format dicom",
                path.display(),
                vol.nz()
            );
        }
        return crate::io::atomic::write_file(path, opts.force, |tmp| {
            make(0)?.write_to_file(tmp).map_err(|e| write_err(path, &e))
        });
    }
    crate::io::atomic::write_dir(path, opts.force, |dir| {
        for k in 0..vol.nz() {
            let name = format!("{:05}.dcm", k + 1);
            make(k)?
                .write_to_file(dir.join(&name))
                .map_err(|e| write_err(&path.join(&name), &e))?;
        }
        Ok(())
    })
}

fn ds_multi(v: &[f64]) -> String {
    v.iter().map(|x| ds(*x).0).collect::<Vec<_>>().join("\\")
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_sixteen_characters_and_reports_its_value() {
        for x in [
            1.0,
            -1024.0,
            0.123_456_789_012_345_68,
            1.0e-7 / 3.0,
            123_456_789.123_456_79,
        ] {
            let (s, v) = ds(x);
            assert!(s.len() <= 16, "{s}");
            assert_eq!(s.parse::<f64>().unwrap(), v);
            assert!((v - x).abs() <= 1e-9 * x.abs().max(1.0), "{x} -> {s}");
        }
    }

    #[test]
    fn rescale_keeps_integers_exact_and_bounds_the_error() {
        assert_eq!(choose_rescale(-1024.0, 3071.0, true), (1.0, 0.0));
        let (s, i) = choose_rescale(0.0, 65535.0, true);
        assert_eq!(s, 1.0);
        assert!((65535.0 - i) <= 32767.0 && (0.0 - i) >= -32768.0);
        let (lo, hi) = (-1000.25, 2999.75);
        let (s, i) = choose_rescale(lo, hi, false);
        for v in [lo, hi, 0.0, 1234.567] {
            let q = ((v - i) / s).round();
            assert!((-32768.0..=32767.0).contains(&q));
            assert!((q * s + i - v).abs() <= s / 2.0 + 1e-9);
        }
    }

    #[test]
    fn normal_is_row_cross_column() {
        assert_eq!(
            slice_normal(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            [0.0, 0.0, 1.0]
        );
        // Sagittal: rows along -y (anterior), columns along -z: normal along +x.
        assert_eq!(
            slice_normal(&[0.0, 1.0, 0.0, 0.0, 0.0, -1.0]),
            [-1.0, 0.0, 0.0]
        );
    }
}
