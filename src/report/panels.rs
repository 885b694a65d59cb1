//! Side-by-side image panels (reference | baselines | score-based | |error| | uncertainty): 8-bit
//! tiles laid out in one row with a thin separator, so a reader compares methods at one glance.
//! Each tile is windowed by the caller (`io::png::window_to_u8`); captions live in the HTML report.

/// One 8-bit grayscale tile, row major.
pub struct Tile {
    pub label: String,
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
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
        };
        let b = Tile {
            label: "b".into(),
            width: 1,
            height: 1,
            pixels: vec![9],
        };
        let (w, h, px) = row(&[a, b]);
        assert_eq!((w, h), (2 + GAP + 1, 2));
        assert_eq!(&px[0..2], &[1, 2]);
        assert_eq!(px[2 + GAP], 9);
        assert_eq!(&px[w..w + 2], &[3, 4]);
        assert_eq!(px[w + 2 + GAP], 255);
    }
}
