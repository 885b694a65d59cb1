//! NRRD in and out: 3D Slicer's and ITK's format (teem's "Nearly Raw Raster Data",
//! <https://teem.sourceforge.net/nrrd/format.html>). No maintained crate reads it, and the part a
//! scanner volume needs is small, so this is a hand-written reader of that part.
//!
//! The subset read (anything else is refused with an error naming the file and the fix):
//! - Magic `NRRD0001` .. `NRRD0005`; `# comments`; `field: value` lines; `key:=value` pairs
//!   (`modality:=CT|MR` is read back as the modality, as our writer writes it). Field names with
//!   or without their inner space (`byte skip` = `byteskip`); a field given twice is an error.
//! - Required: `dimension` (2 to 4), `type`, `sizes`, `encoding`; `endian` when a sample has
//!   more than one byte and the encoding is not text.
//! - `type`: int8/uint8/int16/uint16/int32/uint32/int64/uint64/float/double and teem's aliases
//!   (`short`, `unsigned char`, `uint16_t`, ...); `block` is refused.
//! - `encoding`: `raw`, `gzip`/`gz`, `ascii`/`text`/`txt`; `bzip2` and `hex` are refused.
//! - Attached data (after the blank line that ends the header) or `data file:` (`datafile:`)
//!   with one path relative to the header's folder, the `LIST [subdim]` form (file names on the
//!   lines that follow, to the end of the header) or the `FORMAT MIN MAX STEP [subdim]` form
//!   (`slice%03d.raw 0 24 1`). A path that is absolute or leaves the header's folder is refused.
//! - `line skip` (lines skipped in each data file first), `byte skip` (bytes skipped next; for
//!   gzip after decompression, as pynrrd does; `-1`: the data are the file's last bytes).
//! - Geometry: `space` right-anterior-superior / left-anterior-superior / left-posterior-superior
//!   (or RAS, LAS, LPS, and their `-time` forms, whose fourth vector component is time);
//!   `space directions` (a vector per axis, `none` for a non-spatial axis, which may only be the
//!   last one: it becomes the frames), `space origin`, `kinds`. Without `space directions`, the
//!   axes are along RAS+ x, y, z with `spacings` (1 where absent) and origin 0: NRRD then says
//!   nothing about where the patient is, and the history says so. `scanner-xyz`, the
//!   `3D-*-handed` spaces and a bare `space dimension` are refused: they do not say how the axes
//!   lie in the patient.
//!
//! Axes: NRRD's first axis varies fastest, as the Volume's `i`, so the axes map in order
//! (0 -> i, 1 -> j, 2 -> k, a non-spatial last axis -> t) with no transposition; the affine's
//! column `a` is axis `a`'s space direction converted to RAS+ (LPS: x and y change sign, as in
//! `dicom::lps_ras`; LAS: x), and its translation the converted `space origin`, whatever the
//! axis order. `spacing` is the length of each direction. A 2-D image gets the unit normal of its
//! two directions as its third column.
//!
//! Every check on sizes happens before the voxels are allocated: the product of `sizes` against a
//! limit, the data's byte count against what the sizes and type need (raw: from the file length;
//! gzip: a bound from the compressed length, then the exact count after decompressing at most the
//! bytes needed plus one).
//!
//! Out: `.nrrd`, attached header, gzip, little-endian `float` (the Volume's own f32, so voxels
//! round-trip exactly), `space: left-posterior-superior` (what ITK and Slicer write), space
//! directions and origin printed with the shortest decimal that reads back to the same f64, so
//! write -> read gives the same voxels and affine bit for bit. 4-D volumes get a `none` direction
//! and kind `time` on the fourth axis and its interval in `spacings`.

use crate::io::WriteOptions;
use crate::volume::{Modality, Provenance, Volume};
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

/// Longest header read before giving up (a header is text; megabytes of it are not a header).
const MAX_HEADER_BYTES: u64 = 16 << 20;
/// Most voxels one volume may have (8 GiB of f32): refused before anything is allocated.
const MAX_VOXELS: u64 = 1 << 31;
/// Deflate cannot expand data by more than about 1032:1; a gzip stream shorter than
/// needed / this cannot hold the data and is refused before decompressing.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Sample types, with their size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleType {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl SampleType {
    /// teem's names and aliases (NRRD format definition, section 5, "type").
    fn parse(s: &str) -> Option<SampleType> {
        use SampleType::*;
        let s = s.trim().to_ascii_lowercase();
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        Some(match s.as_str() {
            "signed char" | "int8" | "int8_t" => I8,
            "uchar" | "unsigned char" | "uint8" | "uint8_t" => U8,
            "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => {
                I16
            }
            "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => U16,
            "int" | "signed int" | "int32" | "int32_t" => I32,
            "uint" | "unsigned int" | "uint32" | "uint32_t" => U32,
            "longlong"
            | "long long"
            | "long long int"
            | "signed long long"
            | "signed long long int"
            | "int64"
            | "int64_t" => I64,
            "ulonglong"
            | "unsigned long long"
            | "unsigned long long int"
            | "uint64"
            | "uint64_t" => U64,
            "float" => F32,
            "double" => F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        use SampleType::*;
        match self {
            I8 | U8 => 1,
            I16 | U16 => 2,
            I32 | U32 | F32 => 4,
            I64 | U64 | F64 => 8,
        }
    }

    fn name(self) -> &'static str {
        use SampleType::*;
        match self {
            I8 => "int8",
            U8 => "uint8",
            I16 => "int16",
            U16 => "uint16",
            I32 => "int32",
            U32 => "uint32",
            I64 => "int64",
            U64 => "uint64",
            F32 => "float",
            F64 => "double",
        }
    }

    /// One sample from its bytes (`b.len() == self.size()`), as f32 (via f64 for 64-bit types).
    fn decode(self, b: &[u8], big: bool) -> f32 {
        use SampleType::*;
        macro_rules! num {
            ($t:ty) => {{
                let a = b.try_into().expect("sample width");
                if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            }};
        }
        match self {
            I8 => b[0] as i8 as f32,
            U8 => b[0] as f32,
            I16 => num!(i16) as f32,
            U16 => num!(u16) as f32,
            I32 => num!(i32) as f32,
            U32 => num!(u32) as f32,
            I64 => num!(i64) as f64 as f32,
            U64 => num!(u64) as f64 as f32,
            F32 => num!(f32),
            F64 => num!(f64) as f32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    Gzip,
    Ascii,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Gzip => "gzip",
            Encoding::Ascii => "ascii",
        }
    }
}

/// The anatomical frames NRRD names, as the signs that take their x, y, z to RAS+.
fn frame_signs(space: &str) -> Result<([f64; 3], bool), String> {
    let s = space.trim().to_ascii_lowercase();
    let (base, time) = match s.strip_suffix("-time") {
        Some(b) => (b.to_string(), true),
        None => match s.as_str() {
            "rast" | "last" | "lpst" => (s[..3].to_string(), true),
            _ => (s.clone(), false),
        },
    };
    match base.as_str() {
        "right-anterior-superior" | "ras" => Ok(([1.0, 1.0, 1.0], time)),
        "left-anterior-superior" | "las" => Ok(([-1.0, 1.0, 1.0], time)),
        "left-posterior-superior" | "lps" => Ok(([-1.0, -1.0, 1.0], time)),
        "scanner-xyz" | "3d-right-handed" | "3d-left-handed" => Err(format!(
            "space '{}' does not say how the axes lie in the patient; if you know the frame, set `space: left-posterior-superior` (or right-anterior-superior) in the header",
            space.trim()
        )),
        _ => Err(format!(
            "unknown space '{}'; expected right-anterior-superior, left-anterior-superior or left-posterior-superior",
            space.trim()
        )),
    }
}

/// Where the voxel bytes are.
#[derive(Debug, Clone)]
enum DataSource {
    /// In the header's own file, from this byte offset.
    Attached(u64),
    /// In these files (relative to the header's folder), each holding an equal share.
    Files(Vec<PathBuf>),
}

/// What the header says, checked field by field.
#[derive(Debug)]
struct Header {
    sizes: Vec<usize>,
    ty: SampleType,
    encoding: Encoding,
    big_endian: bool,
    /// Signs to RAS+ and whether the space has a time component, when `space` is given.
    frame: Option<([f64; 3], bool)>,
    space_name: Option<String>,
    directions: Option<Vec<Option<Vec<f64>>>>,
    origin: Option<Vec<f64>>,
    spacings: Option<Vec<f64>>,
    kinds: Option<Vec<String>>,
    content: Option<String>,
    modality: Modality,
    data: DataSource,
    line_skip: u64,
    byte_skip: i64,
}

/// A header problem as the one-line error every reader gives.
fn err(path: &Path, what: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}: {what}", path.display())
}

/// Read the header lines: the fields, the key/value pairs, any `LIST` file names, and the byte
/// offset just after the blank line (None when the file ended first).
struct RawHeader {
    fields: Vec<(String, String, usize)>,
    keys: Vec<(String, String)>,
    list: Vec<String>,
    data_offset: Option<u64>,
}

fn read_raw_header(path: &Path) -> Result<RawHeader> {
    let file = std::fs::File::open(path).map_err(|e| err(path, format!("cannot open: {e}")))?;
    let mut r = BufReader::new(file).take(MAX_HEADER_BYTES);
    let mut line = Vec::new();
    let mut consumed = 0u64;
    let mut n = 0usize;
    let mut out = RawHeader {
        fields: Vec::new(),
        keys: Vec::new(),
        list: Vec::new(),
        data_offset: None,
    };
    let mut in_list = false;
    loop {
        line.clear();
        let got = r
            .read_until(b'\n', &mut line)
            .map_err(|e| err(path, format!("cannot read the header: {e}")))?;
        if got == 0 {
            if n == 0 {
                bail!("{}: the file is empty: not a NRRD file", path.display());
            }
            if consumed >= MAX_HEADER_BYTES {
                return Err(err(
                    path,
                    format!("no end of the header in its first {MAX_HEADER_BYTES} bytes: not a NRRD file, or a damaged one"),
                ));
            }
            break;
        }
        consumed += got as u64;
        n += 1;
        // A last line without its newline: the file ended inside the header.
        let cut = line.last() != Some(&b'\n');
        let truncated = || {
            anyhow!(
                "{}: the file ends inside header line {n}: it is truncated",
                path.display()
            )
        };
        if cut && std::str::from_utf8(&line).is_err() {
            return Err(truncated());
        }
        let text = std::str::from_utf8(&line).map_err(|_| {
            err(
                path,
                format!("header line {n} is not text: the header is damaged, or the blank line that ends it is missing"),
            )
        })?;
        let text = text.trim_end_matches(['\n', '\r']);
        if n == 1 {
            let ok = text.len() == 8
                && text.starts_with("NRRD000")
                && matches!(text.as_bytes()[7], b'1'..=b'5');
            if !ok {
                if text.starts_with("NRRD") {
                    bail!(
                        "{}: NRRD magic '{}' is not NRRD0001 to NRRD0005: a format version this reader does not know",
                        path.display(),
                        text.chars().take(16).collect::<String>()
                    );
                }
                bail!(
                    "{}: not a NRRD file (it does not start with the NRRD0004-style magic line)",
                    path.display()
                );
            }
            continue;
        }
        if text.is_empty() {
            out.data_offset = Some(consumed);
            break;
        }
        if in_list {
            out.list.push(text.trim().to_string());
            continue;
        }
        if text.starts_with('#') {
            continue;
        }
        let field_at = text.find(": ");
        let key_at = text.find(":=");
        match (field_at, key_at) {
            (f, Some(k)) if f.is_none_or(|f| k < f) => {
                out.keys
                    .push((text[..k].to_string(), text[k + 2..].to_string()));
            }
            (Some(f), _) => {
                let name: String = text[..f]
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_ascii_lowercase();
                let value = text[f + 2..].trim().to_string();
                if out.fields.iter().any(|(n2, _, _)| *n2 == name) {
                    bail!(
                        "{}: header field '{}' is given twice (lines {} and {n}); keep one",
                        path.display(),
                        &text[..f],
                        out.fields.iter().find(|(n2, _, _)| *n2 == name).unwrap().2
                    );
                }
                if name == "datafile" && value.split_whitespace().next() == Some("LIST") {
                    in_list = true;
                }
                out.fields.push((name, value, n));
            }
            _ if cut => return Err(truncated()),
            _ => bail!(
                "{}: header line {n} is neither `field: value` nor `key:=value`: '{}'; the header is damaged (or its blank line is missing)",
                path.display(),
                text.chars().take(60).collect::<String>()
            ),
        }
    }
    Ok(out)
}

/// Numbers separated by whitespace.
fn parse_numbers<T: std::str::FromStr>(path: &Path, field: &str, v: &str) -> Result<Vec<T>> {
    v.split_whitespace()
        .map(|t| {
            t.parse::<T>()
                .map_err(|_| err(path, format!("{field}: '{t}' is not a number")))
        })
        .collect()
}

/// A vector `(x,y,z)`: numbers between parentheses, separated by commas.
fn parse_vector(path: &Path, field: &str, s: &str) -> Result<Vec<f64>> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| {
            err(
                path,
                format!("{field}: '{s}' is not a vector like (1.0,0,0)"),
            )
        })?;
    inner
        .split(',')
        .map(|t| {
            let t = t.trim();
            match t.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                Ok(_) => Err(err(
                    path,
                    format!("{field}: '{s}' has a component that is not finite"),
                )),
                Err(_) => Err(err(
                    path,
                    format!("{field}: '{t}' in '{s}' is not a number"),
                )),
            }
        })
        .collect()
}

/// `space directions`: one `(..)` vector or `none` per axis.
fn parse_directions(path: &Path, v: &str) -> Result<Vec<Option<Vec<f64>>>> {
    let mut out = Vec::new();
    let mut rest = v.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("none") {
            out.push(None);
            rest = r.trim_start();
        } else if rest.starts_with('(') {
            let end = rest
                .find(')')
                .ok_or_else(|| err(path, format!("space directions: '{v}' has an unclosed '('")))?;
            out.push(Some(parse_vector(path, "space directions", &rest[..=end])?));
            rest = rest[end + 1..].trim_start();
        } else {
            bail!(
                "{}: space directions: '{}' is neither a vector like (1,0,0) nor none",
                path.display(),
                rest.split_whitespace().next().unwrap_or("")
            );
        }
    }
    Ok(out)
}

/// A `data file` path relative to the header's folder that stays inside it.
fn data_file_path(path: &Path, name: &str) -> Result<PathBuf> {
    let rel = Path::new(name);
    let mut depth = 0i32;
    for c in rel.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => depth = -1000,
        }
        if depth < 0 {
            bail!(
                "{}: data file '{name}' is outside the header's folder; move the data next to the header (or below it) and give a relative path",
                path.display()
            );
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let full = dir.join(rel);
    if !full.is_file() {
        bail!(
            "{}: data file '{name}' is missing (looked for {})",
            path.display(),
            full.display()
        );
    }
    // Symbolic links may not lead out of the folder either.
    let (cdir, cfull) = (dir.canonicalize(), full.canonicalize());
    if let (Ok(d), Ok(f)) = (cdir, cfull) {
        if !f.starts_with(&d) {
            bail!(
                "{}: data file '{name}' leads outside the header's folder (to {}); copy the data next to the header",
                path.display(),
                f.display()
            );
        }
    }
    Ok(full)
}

/// A C `printf` pattern with one integer conversion (`%d`, `%03d`, `%i`, `%u`) applied to `i`.
fn format_index(pattern: &str, i: i64) -> Option<String> {
    let start = pattern.find('%')?;
    let rest = &pattern[start + 1..];
    let conv = rest.find(|c: char| c.is_ascii_alphabetic())?;
    let spec = &rest[..conv];
    if !matches!(&rest[conv..conv + 1], "d" | "i" | "u") || rest[conv + 1..].contains('%') {
        return None;
    }
    let (zero, width) = match spec.strip_prefix('0') {
        Some(w) => (true, w),
        None => (false, spec),
    };
    let width: usize = if width.is_empty() {
        0
    } else {
        width.parse().ok()?
    };
    let num = if zero {
        format!("{i:0width$}")
    } else {
        format!("{i:width$}")
    };
    Some(format!("{}{num}{}", &pattern[..start], &rest[conv + 1..]))
}

fn parse_header(path: &Path) -> Result<Header> {
    let raw = read_raw_header(path)?;
    let get = |name: &str| {
        raw.fields
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| v.as_str())
    };
    let need = |name: &str, what: &str| {
        get(name).ok_or_else(|| {
            err(
                path,
                format!("the header has no '{what}' field, which NRRD requires"),
            )
        })
    };
    // A header whose file ends before the blank line is truncated, unless it is detached.
    if raw.data_offset.is_none() && get("datafile").is_none() {
        bail!(
            "{}: the header ends before the blank line that separates it from the data, and names no data file: the file is truncated, or a detached header lacks its `data file:` line",
            path.display()
        );
    }
    let dimension: usize = need("dimension", "dimension")?
        .parse()
        .map_err(|_| err(path, "dimension is not a whole number"))?;
    if !(2..=4).contains(&dimension) {
        bail!(
            "{}: dimension {dimension} is not supported: a volume has 2 to 4 axes",
            path.display()
        );
    }
    let type_s = need("type", "type")?;
    let ty = match SampleType::parse(type_s) {
        Some(t) => t,
        None if type_s.trim().eq_ignore_ascii_case("block") => bail!(
            "{}: type block (opaque records) is not an image; only numeric types are read",
            path.display()
        ),
        None => bail!(
            "{}: unknown type '{type_s}'; expected int8, uint8, int16, uint16, int32, uint32, int64, uint64, float or double (or a teem alias)",
            path.display()
        ),
    };
    let sizes: Vec<u64> = parse_numbers(path, "sizes", need("sizes", "sizes")?)?;
    if sizes.len() != dimension {
        bail!(
            "{}: sizes gives {} numbers for dimension {dimension}",
            path.display(),
            sizes.len()
        );
    }
    if sizes.contains(&0) {
        bail!("{}: sizes has a zero: an empty volume", path.display());
    }
    sizes
        .iter()
        .try_fold(1u64, |a, &s| a.checked_mul(s))
        .filter(|&v| v <= MAX_VOXELS)
        .ok_or_else(|| {
            err(
                path,
                format!(
                    "sizes {} is over the limit of {MAX_VOXELS} voxels: refused before reading",
                    join(&sizes, " x ")
                ),
            )
        })?;
    let enc_s = need("encoding", "encoding")?;
    let encoding = match enc_s.to_ascii_lowercase().as_str() {
        "raw" => Encoding::Raw,
        "gzip" | "gz" => Encoding::Gzip,
        "ascii" | "text" | "txt" => Encoding::Ascii,
        "bzip2" | "bz2" => bail!(
            "{}: encoding bzip2 is not supported; re-save it as gzip or raw (teem: `unu save -f nrrd -e gzip -i IN -o OUT.nrrd`; Slicer: save with compression)",
            path.display()
        ),
        "hex" => bail!(
            "{}: encoding hex is not supported; re-save it as gzip or raw (`unu save -f nrrd -e gzip -i IN -o OUT.nrrd`)",
            path.display()
        ),
        other => bail!(
            "{}: unknown encoding '{other}'; expected raw, gzip or ascii",
            path.display()
        ),
    };
    let big_endian = match get("endian").map(|s| s.to_ascii_lowercase()) {
        Some(e) if e == "big" => true,
        Some(e) if e == "little" => false,
        Some(e) => bail!(
            "{}: endian '{e}' is neither little nor big",
            path.display()
        ),
        None if ty.size() > 1 && encoding != Encoding::Ascii => bail!(
            "{}: the header has no 'endian' field, which {}-byte {} samples need; add `endian: little` (or big)",
            path.display(),
            ty.size(),
            ty.name()
        ),
        None => false,
    };

    // Geometry.
    let space_name = get("space").map(str::to_string);
    let frame = match &space_name {
        Some(s) => Some(frame_signs(s).map_err(|m| err(path, m))?),
        None => None,
    };
    let space_dim = match (frame, get("spacedimension")) {
        (Some(_), Some(_)) => bail!(
            "{}: both 'space' and 'space dimension' are given; NRRD allows one",
            path.display()
        ),
        (Some((_, time)), None) => Some(if time { 4 } else { 3 }),
        (None, Some(d)) => bail!(
            "{}: 'space dimension: {d}' without 'space' does not say how the axes lie in the patient; set `space: left-posterior-superior` (or right-anterior-superior) if you know the frame",
            path.display()
        ),
        (None, None) => None,
    };
    let directions = match get("spacedirections") {
        Some(v) => {
            let Some(sd) = space_dim else {
                bail!(
                    "{}: 'space directions' needs a 'space' field to say which frame they are in",
                    path.display()
                );
            };
            let d = parse_directions(path, v)?;
            if d.len() != dimension {
                bail!(
                    "{}: space directions gives {} entries for dimension {dimension}",
                    path.display(),
                    d.len()
                );
            }
            if let Some(bad) = d.iter().flatten().find(|v| v.len() != sd) {
                bail!(
                    "{}: space directions: a vector has {} components, the space has {sd}",
                    path.display(),
                    bad.len()
                );
            }
            Some(d)
        }
        None if frame.is_some() => bail!(
            "{}: 'space' is given without 'space directions'; NRRD needs both (or neither, with spacings)",
            path.display()
        ),
        None => None,
    };
    let origin = match get("spaceorigin") {
        Some(v) => {
            let o = parse_vector(path, "space origin", v)?;
            let Some(sd) = space_dim else {
                bail!(
                    "{}: 'space origin' needs a 'space' field to say which frame it is in",
                    path.display()
                );
            };
            if o.len() != sd {
                bail!(
                    "{}: space origin has {} components, the space has {sd}",
                    path.display(),
                    o.len()
                );
            }
            Some(o)
        }
        None => None,
    };
    let spacings = match get("spacings") {
        Some(v) => {
            let s: Vec<f64> = v
                .split_whitespace()
                .map(|t| match t.to_ascii_lowercase().as_str() {
                    "nan" => Ok(f64::NAN),
                    _ => t
                        .parse::<f64>()
                        .map_err(|_| err(path, format!("spacings: '{t}' is not a number"))),
                })
                .collect::<Result<_>>()?;
            if s.len() != dimension {
                bail!(
                    "{}: spacings gives {} numbers for dimension {dimension}",
                    path.display(),
                    s.len()
                );
            }
            Some(s)
        }
        None => None,
    };
    let kinds = match get("kinds") {
        Some(v) => {
            let k: Vec<String> = v.split_whitespace().map(str::to_string).collect();
            if k.len() != dimension {
                bail!(
                    "{}: kinds gives {} entries for dimension {dimension}",
                    path.display(),
                    k.len()
                );
            }
            Some(k)
        }
        None => None,
    };
    let line_skip: u64 = match get("lineskip") {
        Some(v) => v.parse().map_err(|_| {
            err(
                path,
                format!("line skip '{v}' is not a whole number of 0 or more"),
            )
        })?,
        None => 0,
    };
    let byte_skip: i64 = match get("byteskip") {
        Some(v) => match v.parse::<i64>() {
            Ok(b) if b >= -1 => b,
            _ => bail!(
                "{}: byte skip '{v}' is not -1 or a whole number of 0 or more",
                path.display()
            ),
        },
        None => 0,
    };
    let data = match get("datafile") {
        None => DataSource::Attached(raw.data_offset.expect("checked above")),
        Some(v) => {
            let words: Vec<&str> = v.split_whitespace().collect();
            if words.first() == Some(&"LIST") {
                if words.len() > 2 {
                    bail!("{}: data file: 'LIST' takes at most one number (the sub-dimension), got '{v}'", path.display());
                }
                check_subdim(path, &words[1..], dimension)?;
                if raw.list.is_empty() {
                    bail!(
                        "{}: data file: LIST names no files (they go one per line after it, to the end of the header)",
                        path.display()
                    );
                }
                let files = raw
                    .list
                    .iter()
                    .map(|n| data_file_path(path, n))
                    .collect::<Result<Vec<_>>>()?;
                check_file_count(path, files.len(), &sizes, &words[1..])?;
                DataSource::Files(files)
            } else if words.len() >= 4 && v.contains('%') {
                let nums = words[1..4]
                    .iter()
                    .map(|w| w.parse::<i64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        err(path, format!("data file: '{v}': expected `FORMAT MIN MAX STEP [SUBDIM]` with whole numbers"))
                    })?;
                let (min, max, step) = (nums[0], nums[1], nums[2]);
                if step == 0 || (max - min).signum() * step.signum() < 0 {
                    bail!(
                        "{}: data file: '{v}': a step of {step} does not go from {min} to {max}",
                        path.display()
                    );
                }
                check_subdim(path, &words[4..], dimension)?;
                let count = (max - min) / step + 1;
                if count as u64 > sizes.iter().product::<u64>() {
                    bail!(
                        "{}: data file: '{v}' names {count} files, more than there are voxels",
                        path.display()
                    );
                }
                let mut files = Vec::new();
                for i in 0..count {
                    let name = format_index(words[0], min + i * step).ok_or_else(|| {
                        err(
                            path,
                            format!("data file: '{}' is not a pattern with one %d", words[0]),
                        )
                    })?;
                    files.push(data_file_path(path, &name)?);
                }
                check_file_count(path, files.len(), &sizes, &words[4..])?;
                DataSource::Files(files)
            } else if words.len() == 1 || !v.contains('%') {
                DataSource::Files(vec![data_file_path(path, v)?])
            } else {
                bail!(
                    "{}: data file: '{v}': expected a file name, `LIST [SUBDIM]`, or `FORMAT MIN MAX STEP [SUBDIM]`",
                    path.display()
                );
            }
        }
    };
    let modality = raw
        .keys
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("modality"))
        .map(|(_, v)| Modality::from_dicom_code(v))
        .unwrap_or(Modality::Other);
    Ok(Header {
        sizes: sizes.iter().map(|&s| s as usize).collect(),
        ty,
        encoding,
        big_endian,
        frame,
        space_name,
        directions,
        origin,
        spacings,
        kinds,
        content: get("content").map(str::to_string),
        modality,
        data,
        line_skip,
        byte_skip,
    })
}

fn check_subdim(path: &Path, w: &[&str], dimension: usize) -> Result<()> {
    if let Some(s) = w.first() {
        match s.parse::<usize>() {
            Ok(d) if (1..=dimension).contains(&d) => {}
            _ => bail!(
                "{}: data file: sub-dimension '{s}' is not between 1 and {dimension}",
                path.display()
            ),
        }
    }
    Ok(())
}

/// The files must split the slowest axes: their count is the product of the sizes past `subdim`
/// (default dimension - 1).
fn check_file_count(path: &Path, n: usize, sizes: &[u64], w: &[&str]) -> Result<()> {
    let sub = w
        .first()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(sizes.len() - 1);
    let want: u64 = sizes[sub..].iter().product();
    if n as u64 != want {
        bail!(
            "{}: data file names {n} files, but sizes {} with sub-dimension {sub} need {want}",
            path.display(),
            join(sizes, " x ")
        );
    }
    Ok(())
}

fn join<T: std::fmt::Display>(v: &[T], sep: &str) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Kinds an axis of space may have (teem: domain kinds other than time).
fn is_spatial_kind(k: &str) -> bool {
    matches!(
        k.to_ascii_lowercase().as_str(),
        "domain" | "space" | "none" | "???"
    )
}

/// Where the voxels are: the Volume's geometry fields.
struct Geometry {
    dims: [usize; 4],
    spacing: [f64; 4],
    affine: [[f64; 4]; 4],
    /// For the history: what the file left unsaid (no origin, no directions).
    notes: Vec<String>,
}

/// Dims, spacing and RAS+ affine from the geometry fields, plus a note for the history when the
/// file does not place the volume in the patient.
fn geometry(path: &Path, h: &Header) -> Result<Geometry> {
    let d = h.sizes.len();
    let mut notes = Vec::new();
    // Which axes are spatial: all, or all but the last.
    let n_spatial = match &h.directions {
        Some(dirs) => {
            let time = h.frame.is_some_and(|f| f.1);
            let spatial: Vec<bool> = dirs
                .iter()
                .map(|v| match v {
                    None => false,
                    // A -time space: an axis along time alone is the frames.
                    Some(v) if time => v[..3].iter().any(|&x| x != 0.0),
                    Some(_) => true,
                })
                .collect();
            let ns = spatial.iter().take_while(|&&s| s).count();
            if let Some(a) = spatial.iter().skip(ns).position(|&s| s) {
                bail!(
                    "{}: axis {} has no space direction but axis {} after it has one; only the last axis may be non-spatial (time or a list): reorder the axes (teem: `unu permute`)",
                    path.display(),
                    ns,
                    ns + a
                );
            }
            if ns + 1 < d {
                bail!(
                    "{}: axes {ns} to {} have no space direction; only the last axis may be non-spatial",
                    path.display(),
                    d - 1
                );
            }
            ns
        }
        None => {
            // No directions: kinds may still mark the last axis of a 3-D file as time or a list.
            let last_non_spatial = h
                .kinds
                .as_ref()
                .is_some_and(|k| !is_spatial_kind(&k[d - 1]));
            if d == 4 || (d == 3 && last_non_spatial) {
                d - 1
            } else {
                d
            }
        }
    };
    if n_spatial < 2 {
        bail!(
            "{}: only {n_spatial} spatial axis: an image needs 2 or 3",
            path.display()
        );
    }
    if n_spatial > 3 {
        bail!(
            "{}: {n_spatial} spatial axes: at most 3 (a fourth axis must have space direction none)",
            path.display()
        );
    }
    if let Some(k) = &h.kinds {
        if let Some(a) = (0..n_spatial).find(|&a| !is_spatial_kind(&k[a])) {
            bail!(
                "{}: axis {a} is of kind '{}', not space; only the last axis may be non-spatial (teem: `unu permute` to move it last)",
                path.display(),
                k[a]
            );
        }
    }
    let mut cols = [[0.0f64; 3]; 3];
    let mut origin = [0.0f64; 3];
    match (&h.directions, h.frame) {
        (Some(dirs), Some((sign, _))) => {
            for a in 0..n_spatial {
                let v = dirs[a].as_ref().expect("spatial axis");
                // `+ 0.0` turns the -0.0 of a sign flip into 0.0.
                for r in 0..3 {
                    cols[a][r] = sign[r] * v[r] + 0.0;
                }
            }
            match &h.origin {
                Some(o) => {
                    for r in 0..3 {
                        origin[r] = sign[r] * o[r] + 0.0;
                    }
                }
                None => notes.push("no space origin: origin taken as 0".to_string()),
            }
        }
        _ => {
            for (a, col) in cols.iter_mut().enumerate().take(n_spatial) {
                let given = h.spacings.as_ref().map(|s| s[a]);
                // NaN is NRRD's "unknown" (taken as 1); zero or infinite is a damaged header.
                if let Some(s) = given.filter(|s| *s == 0.0 || s.is_infinite()) {
                    bail!(
                        "{}: spacings: axis {a} has spacing {s}: a voxel needs a non-zero, finite size; fix the header",
                        path.display()
                    );
                }
                col[a] = given.filter(|s| s.is_finite()).unwrap_or(1.0);
            }
            notes.push(
                "no space directions: axes taken along RAS+ x, y, z with the spacings, origin 0 (the file does not say where the patient is)"
                    .to_string(),
            );
        }
    }
    let norm = |c: &[f64; 3]| (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
    if let Some(a) = (0..n_spatial).find(|&a| norm(&cols[a]) == 0.0) {
        bail!(
            "{}: the space direction of axis {a} is zero",
            path.display()
        );
    }
    if n_spatial == 2 {
        let (u, v) = (cols[0], cols[1]);
        let n = [
            u[1] * v[2] - u[2] * v[1],
            u[2] * v[0] - u[0] * v[2],
            u[0] * v[1] - u[1] * v[0],
        ];
        let l = norm(&n);
        if l == 0.0 {
            bail!(
                "{}: the space directions of axes 0 and 1 are parallel",
                path.display()
            );
        }
        cols[2] = [n[0] / l, n[1] / l, n[2] / l];
    }
    let det = cols[0][0] * (cols[1][1] * cols[2][2] - cols[1][2] * cols[2][1])
        - cols[1][0] * (cols[0][1] * cols[2][2] - cols[0][2] * cols[2][1])
        + cols[2][0] * (cols[0][1] * cols[1][2] - cols[0][2] * cols[1][1]);
    if det == 0.0 {
        bail!(
            "{}: the space directions do not span 3-D space (they lie in a plane)",
            path.display()
        );
    }
    let mut affine = [[0.0; 4]; 4];
    for a in 0..3 {
        for r in 0..3 {
            affine[r][a] = cols[a][r];
        }
    }
    for r in 0..3 {
        affine[r][3] = origin[r];
    }
    affine[3][3] = 1.0;
    let mut spacing = [
        norm(&cols[0]),
        norm(&cols[1]),
        if n_spatial == 3 { norm(&cols[2]) } else { 1.0 },
        1.0,
    ];
    let mut dims = [h.sizes[0], h.sizes[1], 1, 1];
    if n_spatial == 3 {
        dims[2] = h.sizes[2];
    }
    if n_spatial < d {
        dims[3] = h.sizes[d - 1];
        // The frame interval: the time component of a -time space, else `spacings`.
        let dt = h
            .directions
            .as_ref()
            .and_then(|dirs| dirs[d - 1].as_ref().map(|v| v[3].abs()))
            .or_else(|| h.spacings.as_ref().map(|s| s[d - 1].abs()))
            .filter(|s| s.is_finite() && *s > 0.0);
        spacing[3] = dt.unwrap_or(1.0);
    }
    Ok(Geometry {
        dims,
        spacing,
        affine,
        notes,
    })
}

/// One data file's share: where its bytes start after `line skip`.
fn skip_lines(path: &Path, file: &Path, start: u64, lines: u64) -> Result<u64> {
    let f = std::fs::File::open(file)
        .map_err(|e| err(path, format!("cannot open {}: {e}", file.display())))?;
    let mut r = BufReader::new(f);
    r.seek(SeekFrom::Start(start))
        .map_err(|e| err(path, format!("cannot read {}: {e}", file.display())))?;
    let mut pos = start;
    let mut buf = Vec::new();
    for i in 0..lines {
        buf.clear();
        let n = r
            .by_ref()
            .take(MAX_HEADER_BYTES)
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(path, format!("cannot read {}: {e}", file.display())))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            bail!(
                "{}: line skip {lines}: {} ends after {i} lines",
                path.display(),
                file.display()
            );
        }
        pos += n as u64;
    }
    Ok(pos)
}

/// The bytes of one data piece (`need` bytes of samples; text: the whole text).
fn read_piece(path: &Path, h: &Header, file: &Path, start: u64, need: u64) -> Result<Vec<u8>> {
    let start = skip_lines(path, file, start, h.line_skip)?;
    let len = std::fs::metadata(file)
        .map_err(|e| err(path, format!("cannot read {}: {e}", file.display())))?
        .len();
    let avail = len.saturating_sub(start);
    let name = if file == path {
        "the file".to_string()
    } else {
        file.display().to_string()
    };
    let open_at = |at: u64| -> Result<std::fs::File> {
        let mut f = std::fs::File::open(file)
            .map_err(|e| err(path, format!("cannot open {}: {e}", file.display())))?;
        f.seek(SeekFrom::Start(at))
            .map_err(|e| err(path, format!("cannot read {}: {e}", file.display())))?;
        Ok(f)
    };
    match h.encoding {
        Encoding::Raw => {
            let (at, have) = match h.byte_skip {
                -1 if avail >= need => (len - need, need),
                -1 => (start, avail),
                b => (start + b as u64, avail.saturating_sub(b as u64)),
            };
            if have != need {
                bail!(
                    "{}: {name} holds {have} bytes of data{}, but sizes {} of {} need {need}; the data are truncated or the sizes are wrong",
                    path.display(),
                    if h.byte_skip > 0 { format!(" after the byte skip of {}", h.byte_skip) } else { String::new() },
                    join(&h.sizes, " x "),
                    h.ty.name()
                );
            }
            let mut buf = Vec::new();
            buf.try_reserve_exact(need as usize)
                .map_err(|_| err(path, format!("cannot allocate {need} bytes")))?;
            open_at(at)?
                .take(need)
                .read_to_end(&mut buf)
                .map_err(|e| err(path, format!("cannot read {name}: {e}")))?;
            if buf.len() as u64 != need {
                bail!("{}: {name} ended while reading its data", path.display());
            }
            Ok(buf)
        }
        Encoding::Gzip => {
            let skip = h.byte_skip.max(0) as u64;
            let want = need + skip;
            if avail == 0 || avail.saturating_mul(MAX_DEFLATE_RATIO) + 64 < want {
                bail!(
                    "{}: {name} holds {avail} bytes of gzip data, too few to hold the {need} bytes that sizes {} of {} need; the data are truncated or the sizes are wrong",
                    path.display(),
                    join(&h.sizes, " x "),
                    h.ty.name()
                );
            }
            // Read at most one byte more than needed: enough to tell "too much" from "exact".
            let limit = if h.byte_skip == -1 {
                avail.saturating_mul(MAX_DEFLATE_RATIO) + 64
            } else {
                want + 1
            };
            let mut buf = Vec::new();
            buf.try_reserve_exact(want.min(limit) as usize)
                .map_err(|_| err(path, format!("cannot allocate {want} bytes")))?;
            flate2::read::MultiGzDecoder::new(BufReader::new(open_at(start)?))
                .take(limit)
                .read_to_end(&mut buf)
                .map_err(|e| {
                    err(
                        path,
                        format!("the gzip data in {name} cannot be decompressed ({e}); the file is damaged or not gzip-encoded"),
                    )
                })?;
            let got = buf.len() as u64;
            let (ok, have) = if h.byte_skip == -1 {
                (got >= need, got.to_string())
            } else if got > want {
                (false, format!("more than {need}"))
            } else {
                (got == want, got.saturating_sub(skip).to_string())
            };
            if !ok {
                bail!(
                    "{}: {name} decompresses to {have} bytes of data{}, but sizes {} of {} need {need}; the data are truncated or the sizes are wrong",
                    path.display(),
                    if skip > 0 { format!(" after the byte skip of {skip}") } else { String::new() },
                    join(&h.sizes, " x "),
                    h.ty.name()
                );
            }
            if h.byte_skip == -1 {
                buf.drain(..(got - need) as usize);
            } else {
                buf.drain(..skip as usize);
            }
            Ok(buf)
        }
        Encoding::Ascii => {
            let at = start + h.byte_skip.max(0) as u64;
            let mut buf = Vec::new();
            open_at(at)?
                .read_to_end(&mut buf)
                .map_err(|e| err(path, format!("cannot read {name}: {e}")))?;
            Ok(buf)
        }
    }
}

/// Text samples: whitespace- or comma-separated numbers, counted before they are stored.
fn decode_ascii(path: &Path, h: &Header, text: &[u8], n: usize) -> Result<Vec<f32>> {
    let text = std::str::from_utf8(text).map_err(|_| err(path, "ascii data are not text"))?;
    let tokens = || {
        text.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
    };
    let count = tokens().count();
    if count != n {
        bail!(
            "{}: the ascii data hold {count} numbers, but sizes {} need {n}; the data are truncated or the sizes are wrong",
            path.display(),
            join(&h.sizes, " x ")
        );
    }
    tokens()
        .map(|t| {
            t.parse::<f64>()
                .map(|v| v as f32)
                .map_err(|_| err(path, format!("ascii data: '{t}' is not a number")))
        })
        .collect()
}

/// Read a NRRD file (`.nrrd`, or a detached `.nhdr`) into a volume; voxels equal pynrrd's array
/// cast to f32, in the file's axis order (first axis fastest, as `i`).
/// The header and geometry checks of `read`, without the data: what a command runs before it
/// loads a model.
pub fn check_header(path: &Path) -> Result<()> {
    let h = parse_header(path)?;
    geometry(path, &h).map(|_| ())
}

pub fn read(path: &Path) -> Result<Volume> {
    let h = parse_header(path)?;
    let Geometry {
        dims,
        spacing,
        affine,
        notes,
    } = geometry(path, &h)?;
    let data = read_data(path, &h)?;
    let data_note = match &h.data {
        DataSource::Attached(_) => String::new(),
        DataSource::Files(f) if f.len() == 1 => format!(", data in {}", f[0].display()),
        DataSource::Files(f) => format!(", data in {} files from {}", f.len(), f[0].display()),
    };
    let mut history = vec![format!(
        "read NRRD {} ({} {}{}, space {}{data_note})",
        path.display(),
        h.ty.name(),
        h.encoding.name(),
        if h.ty.size() > 1 {
            if h.big_endian {
                ", big-endian"
            } else {
                ", little-endian"
            }
        } else {
            ""
        },
        h.space_name.as_deref().unwrap_or("not given")
    )];
    history.extend(notes);
    let content = h
        .content
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok(Volume {
        data,
        dims,
        spacing,
        affine,
        slice_positions: Vec::new(),
        // NRRD has no modality field; our writer keeps it as `modality:=CT|MR`. Otherwise the
        // caller (a flag, or a reconstruction command's task) decides, as for NIfTI.
        modality: h.modality,
        provenance: Provenance {
            source_files: vec![path.display().to_string()],
            rescale_slope: 1.0,
            rescale_intercept: 0.0,
            series_description: content,
            history,
            ..Default::default()
        },
    })
}

/// The samples of a NRRD file as f32, first axis fastest, for arrays that are not images (a
/// measurement's sinogram or mask): the header's `sizes` must be `sizes` (trailing 1s may be
/// left out on either side), checked before any data are read; the geometry fields are not used.
pub fn read_samples(path: &Path, sizes: &[usize]) -> Result<Vec<f32>> {
    let h = parse_header(path)?;
    let trim = |v: &[usize]| {
        let mut v = v.to_vec();
        while v.len() > 1 && v.last() == Some(&1) {
            v.pop();
        }
        v
    };
    if trim(&h.sizes) != trim(sizes) {
        bail!(
            "{}: sizes {}, expected {}",
            path.display(),
            join(&h.sizes, " "),
            join(sizes, " ")
        );
    }
    read_data(path, &h)
}

/// The data of a parsed header, as f32 (first axis fastest).
fn read_data(path: &Path, h: &Header) -> Result<Vec<f32>> {
    let n: usize = h.sizes.iter().product();
    let files: Vec<(PathBuf, u64)> = match &h.data {
        DataSource::Attached(off) => vec![(path.to_path_buf(), *off)],
        DataSource::Files(f) => f.iter().map(|p| (p.clone(), 0)).collect(),
    };
    let per_file = (n / files.len()) as u64;
    let data: Vec<f32> = if h.encoding == Encoding::Ascii {
        let mut out = Vec::new();
        for (f, at) in &files {
            let text = read_piece(path, h, f, *at, 0)?;
            out.extend(decode_ascii(path, h, &text, per_file as usize)?);
        }
        out
    } else {
        let size = h.ty.size();
        let mut out = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| err(path, format!("cannot allocate {n} voxels")))?;
        for (f, at) in &files {
            let bytes = read_piece(path, h, f, *at, per_file * size as u64)?;
            out.extend(
                bytes
                    .chunks_exact(size)
                    .map(|b| h.ty.decode(b, h.big_endian)),
            );
        }
        out
    };
    debug_assert_eq!(data.len(), n);
    Ok(data)
}

/// Write `vol` as an attached-header, gzip, little-endian float `.nrrd` in LPS.
pub fn write(vol: &Volume, path: &Path, opts: &WriteOptions) -> Result<()> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".nhdr") {
        bail!(
            "{}: writing a detached NRRD header is not supported; name the output .nrrd (one file, gzip)",
            path.display()
        );
    }
    let [nx, ny, nz, nt] = vol.dims;
    if vol.data.len() != nx * ny * nz * nt {
        bail!(
            "{}: volume has {} voxels for dims {nx} x {ny} x {nz} x {nt}",
            path.display(),
            vol.data.len()
        );
    }
    let a = &vol.affine;
    // RAS+ -> LPS: x and y change sign (negation is exact, so the round trip is too).
    let lps = [-1.0, -1.0, 1.0];
    let vec3 = |c: usize| {
        format!(
            "({},{},{})",
            lps[0] * a[0][c],
            lps[1] * a[1][c],
            lps[2] * a[2][c]
        )
    };
    let four = nt > 1;
    let mut head = String::from("NRRD0004\n");
    head += &format!(
        "# Complete NRRD file format specification at:\n# http://teem.sourceforge.net/nrrd/format.html\n# written by scorerecon {}\n",
        crate::version()
    );
    head += "type: float\n";
    head += &format!("dimension: {}\n", if four { 4 } else { 3 });
    head += "space: left-posterior-superior\n";
    if four {
        head += &format!("sizes: {nx} {ny} {nz} {nt}\n");
        head += &format!(
            "space directions: {} {} {} none\n",
            vec3(0),
            vec3(1),
            vec3(2)
        );
        head += "kinds: domain domain domain time\n";
        head += &format!("spacings: nan nan nan {}\n", vol.spacing[3]);
    } else {
        head += &format!("sizes: {nx} {ny} {nz}\n");
        head += &format!("space directions: {} {} {}\n", vec3(0), vec3(1), vec3(2));
        head += "kinds: domain domain domain\n";
    }
    head += "endian: little\nencoding: gzip\n";
    head += &format!("space origin: {}\n", vec3(3));
    head += "space units: \"mm\" \"mm\" \"mm\"\n";
    let description = opts
        .series_description
        .clone()
        .or_else(|| vol.provenance.series_description.clone());
    if let Some(d) = description {
        let d: String = d.chars().filter(|c| !c.is_control()).collect();
        if !d.trim().is_empty() {
            head += &format!("content: {}\n", d.trim());
        }
    }
    if matches!(vol.modality, Modality::Ct | Modality::Mr) {
        head += &format!("modality:={}\n", vol.modality.dicom_code());
    }
    head += "\n";
    crate::io::atomic::write_file(path, opts.force, |tmp| {
        let f = std::fs::File::create(tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        w.write_all(head.as_bytes())?;
        let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
        let mut bytes = Vec::with_capacity(4 << 20);
        for chunk in vol.data.chunks(1 << 20) {
            bytes.clear();
            bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            gz.write_all(&bytes)?;
        }
        gz.finish()?.flush()?;
        Ok(())
    })
    .map_err(|e| anyhow!("{}: cannot write NRRD: {e:#}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_aliases_and_sizes() {
        assert_eq!(SampleType::parse("short"), Some(SampleType::I16));
        assert_eq!(SampleType::parse("unsigned  char"), Some(SampleType::U8));
        assert_eq!(SampleType::parse("uint16_t"), Some(SampleType::U16));
        assert_eq!(SampleType::parse("long long int"), Some(SampleType::I64));
        assert_eq!(SampleType::parse("block"), None);
        assert_eq!(SampleType::F64.size(), 8);
        assert_eq!(SampleType::I16.decode(&[0x01, 0x80], false), -32767.0);
        assert_eq!(SampleType::I16.decode(&[0x80, 0x01], true), -32767.0);
    }

    #[test]
    fn frames_and_patterns() {
        assert_eq!(frame_signs("LPS").unwrap().0, [-1.0, -1.0, 1.0]);
        assert_eq!(
            frame_signs("right-anterior-superior-time").unwrap(),
            ([1.0, 1.0, 1.0], true)
        );
        assert!(frame_signs("scanner-xyz").is_err());
        assert_eq!(format_index("s%03d.raw", 7).unwrap(), "s007.raw");
        assert_eq!(format_index("s%d.raw", 12).unwrap(), "s12.raw");
        assert_eq!(format_index("s%s.raw", 1), None);
    }

    #[test]
    fn directions_parse_with_none_and_spaces() {
        let p = Path::new("x.nhdr");
        let d = parse_directions(p, "(1, 0,0) (0,-0.5,0)  none").unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[1], Some(vec![0.0, -0.5, 0.0]));
        assert_eq!(d[2], None);
        assert!(parse_directions(p, "(1,0,0) (0,1").is_err());
        assert!(parse_directions(p, "(1,0,nan)").is_err());
    }
}
