//! Side-by-side image panels (reference | baselines | score-based | |error| | uncertainty): 8-bit
//! tiles laid out in one row with a thin separator, so a reader compares methods at one glance.
//! [`slice_panel`] lays out one slice of a job and keeps each tile, so the HTML report can show
//! them one by one at full resolution with their own labels.

use super::ColourBar;
use crate::io::png::{percentile_window, window_to_u8, Window};

/// One 8-bit grayscale tile, row major.
pub struct Tile {
    pub label: String,
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
    /// What a grey means, for maps of a magnitude (|error|, std); `None` for images.
    pub bar: Option<ColourBar>,
}

/// Gap between tiles, in pixels (white).
const GAP: usize = 4;

/// Lay the tiles out left to right (top-aligned). Returns (width, height, pixels).
pub fn row(tiles: &[Tile]) -> (usize, usize, Vec<u8>) {
    let h = tiles.iter().map(|t| t.height).max().unwrap_or(0);
    let w = tiles.iter().map(|t| t.width).sum::<usize>() + GAP * tiles.len().saturating_sub(1);
    let mut out = vec![255u8; w * h];
    let mut x0 = 0;
    for t in tiles {
        assert_eq!(
            t.pixels.len(),
            t.width * t.height,
            "tile {}: pixel count does not match its size",
            t.label
        );
        for y in 0..t.height {
            out[y * w + x0..y * w + x0 + t.width]
                .copy_from_slice(&t.pixels[y * t.width..(y + 1) * t.width]);
        }
        x0 += t.width + GAP;
    }
    (w, h, out)
}

/// What one slice's panel shows, on the host in output units (HU / scanner intensity):
/// reference | baselines | score-based | |error of score| | posterior std; the reference and the
/// error only when there is a reference.
pub struct SliceViews<'a> {
    pub width: usize,
    pub height: usize,
    pub window: Window,
    pub reference: Option<&'a [f32]>,
    /// Each method in display order, with its PSNR and SSIM on this slice when known.
    pub methods: Vec<MethodView<'a>>,
    /// `|score - reference|`, zero where the metrics exclude pixels (MAR's metal).
    pub error: Option<Vec<f32>>,
    /// The score method's posterior std and the number of samples it is over.
    pub std: Option<(Vec<f32>, usize)>,
    /// The units of the values ("HU", "scanner intensity"), for the colour bars.
    pub units: &'a str,
}

/// A method's name, its slice, and its PSNR and SSIM on the slice.
pub type MethodView<'a> = (&'a str, &'a [f32], Option<f64>, Option<f64>);

/// One slice's panel: the tiles laid out in a row, the tiles themselves, and the caption's parts.
pub struct SlicePanel {
    pub row: (usize, usize, Vec<u8>),
    pub tiles: Vec<Tile>,
    pub captions: Vec<String>,
}

/// The panel of one slice, its tiles and its caption's parts (joined by the caller).
pub fn slice_panel(v: &SliceViews) -> SlicePanel {
    let (w, h) = (v.width, v.height);
    let gray = |label: &str, px: &[f32]| Tile {
        label: label.into(),
        width: w,
        height: h,
        pixels: window_to_u8(px, v.window),
        bar: None,
    };
    let mut tiles = Vec::new();
    let mut captions = Vec::new();
    if let Some(r) = v.reference {
        tiles.push(gray("reference", r));
        captions.push("reference".to_string());
    }
    for &(name, x, psnr, ssim) in &v.methods {
        let p = psnr.map(|p| format!(" {p:.2} dB")).unwrap_or_default();
        let q = ssim.map(|q| format!(" SSIM {q:.4}")).unwrap_or_default();
        tiles.push(gray(&format!("{name}{p}{q}"), x));
        captions.push(format!("{name}{p}"));
    }
    let u = v.units;
    if let Some(err) = &v.error {
        let tile = magnitude_tile("|score - reference|", err, w, h, u);
        let top = tile.bar.as_ref().map_or(0.0, |b| b.top);
        captions.push(format!("|score - reference| (0 to {top:.0} {u})"));
        tiles.push(tile);
    }
    if let Some((s, n)) = &v.std {
        let tile = magnitude_tile(&format!("posterior std, {n} samples"), s, w, h, u);
        let top = tile.bar.as_ref().map_or(0.0, |b| b.top);
        captions.push(format!(
            "posterior std over {n} samples (0 to {top:.0} {u})"
        ));
        tiles.push(tile);
    }
    SlicePanel {
        row: row(&tiles),
        tiles,
        captions,
    }
}

/// A tile of a non-negative map (|error|, std) shown from 0 (black) to its 99.5th percentile
/// (white), so one hot pixel does not darken the rest; its colour bar records both ends and the
/// map's maximum.
fn magnitude_tile(label: &str, values: &[f32], w: usize, h: usize, units: &str) -> Tile {
    let p = percentile_window(values, 0.0, 99.5);
    let top = (p.center + p.width / 2.0).max(1e-6);
    let window = Window {
        center: top / 2.0,
        width: top,
    };
    let max = values
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0f32, f32::max) as f64;
    Tile {
        label: label.into(),
        width: w,
        height: h,
        pixels: window_to_u8(values, window),
        bar: Some(ColourBar {
            top,
            max,
            units: units.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_side_by_side() {
        let a = Tile {
            label: "a".into(),
            width: 2,
            height: 2,
            pixels: vec![1, 2, 3, 4],
            bar: None,
        };
        let b = Tile {
            label: "b".into(),
            width: 1,
            height: 1,
            pixels: vec![9],
            bar: None,
        };
        let (w, h, px) = row(&[a, b]);
        assert_eq!((w, h), (2 + GAP + 1, 2));
        assert_eq!(&px[0..2], &[1, 2]);
        assert_eq!(px[2 + GAP], 9);
        assert_eq!(&px[w..w + 2], &[3, 4]);
        assert_eq!(px[w + 2 + GAP], 255);
    }
}
