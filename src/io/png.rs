//! PNG previews: 8-bit grayscale through a display window. CT uses fixed HU windows (soft
//! tissue, bone, lung, brain); MR and anything else a 0.5-99.5 percentile window, because their
//! intensities have no absolute scale.

use crate::io::WriteOptions;
use crate::volume::{Modality, Volume};
use anyhow::{anyhow, bail, Result};
use std::path::Path;

/// A linear display window: values in `center +- width / 2` map to 0..255.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

/// Named windows (`--window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowPreset {
    /// CT soft tissue: centre 40 HU, width 400.
    SoftTissue,
    /// CT bone: centre 400 HU, width 1800.
    Bone,
    /// CT lung: centre -600 HU, width 1500.
    Lung,
    /// CT brain: centre 40 HU, width 80.
    Brain,
    /// Soft tissue for CT, else the 0.5-99.5 percentile range of the values.
    #[default]
    Auto,
}

crate::names::named!(WindowPreset, "--window", {
    SoftTissue => "soft-tissue",
    Bone => "bone",
    Lung => "lung",
    Brain => "brain",
    Auto => "auto",
});

impl WindowPreset {
    /// What a CT preset shows, in words ("soft tissue, level 40 HU / width 400 HU (-160 to 240
    /// HU)"), `Auto` as soft tissue; `None` for the data-driven windows of other modalities.
    pub fn describe_ct(self) -> String {
        let (name, preset) = match self {
            WindowPreset::SoftTissue | WindowPreset::Auto => {
                ("soft tissue", WindowPreset::SoftTissue)
            }
            WindowPreset::Bone => ("bone", self),
            WindowPreset::Lung => ("lung", self),
            WindowPreset::Brain => ("brain", self),
        };
        let w = preset.resolve(&[], Modality::Ct);
        format!(
            "{name}, level {} HU / width {} HU ({} to {} HU)",
            w.center,
            w.width,
            w.center - w.width / 2.0,
            w.center + w.width / 2.0
        )
    }

    /// The window for these values: fixed for the CT presets, from the data for `Auto` on
    /// non-CT volumes.
    pub fn resolve(self, values: &[f32], modality: Modality) -> Window {
        let w = |center, width| Window { center, width };
        match self {
            WindowPreset::SoftTissue => w(40.0, 400.0),
            WindowPreset::Bone => w(400.0, 1800.0),
            WindowPreset::Lung => w(-600.0, 1500.0),
            WindowPreset::Brain => w(40.0, 80.0),
            WindowPreset::Auto if modality == Modality::Ct => w(40.0, 400.0),
            WindowPreset::Auto => percentile_window(values, 0.5, 99.5),
        }
    }
}

/// The window spanning the `lo`..`hi` percentiles of the finite values (numpy's default linear
/// interpolation); width at least 1e-6 so a constant image maps to one grey.
pub fn percentile_window(values: &[f32], lo: f64, hi: f64) -> Window {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Window {
            center: 0.0,
            width: 1.0,
        };
    }
    v.sort_by(f32::total_cmp);
    let (a, b) = (percentile(&v, lo), percentile(&v, hi));
    Window {
        center: 0.5 * (a + b),
        width: (b - a).max(1e-6),
    }
}

/// `q`-th percentile of sorted values, linear between the closest ranks (numpy.percentile).
pub fn percentile(sorted: &[f32], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    let a = sorted[i] as f64;
    let b = sorted[(i + 1).min(sorted.len() - 1)] as f64;
    a + (b - a) * frac
}

/// Map values through `window` to 8-bit grey: `(v - (c - w/2)) / w * 255`, rounded and
/// clipped; NaN maps to 0.
pub fn window_to_u8(values: &[f32], window: Window) -> Vec<u8> {
    let lo = window.center - window.width / 2.0;
    values
        .iter()
        .map(|&v| {
            if v.is_nan() {
                0
            } else {
                ((v as f64 - lo) / window.width * 255.0)
                    .round()
                    .clamp(0.0, 255.0) as u8
            }
        })
        .collect()
}

/// Write an 8-bit grayscale PNG of `w` x `h` pixels (row major), atomically.
pub fn write_png_gray(path: &Path, w: usize, h: usize, pixels: &[u8], force: bool) -> Result<()> {
    if pixels.len() != w * h {
        bail!(
            "{}: {} pixels given for a {w}x{h} image",
            path.display(),
            pixels.len()
        );
    }
    crate::io::atomic::write_file(path, force, |tmp| write_png_to(tmp, w, h, pixels, path))
}

fn write_png_to(tmp: &Path, w: usize, h: usize, pixels: &[u8], shown: &Path) -> Result<()> {
    image::save_buffer_with_format(
        tmp,
        pixels,
        w as u32,
        h as u32,
        image::ExtendedColorType::L8,
        image::ImageFormat::Png,
    )
    .map_err(|e| anyhow!("{}: cannot write PNG: {e}", shown.display()))
}

/// A PNG preview of `vol`: a `.png` path gets one slice (`opts.slice`, else the middle one);
/// any other path becomes a folder with one PNG per slice (`slice_000.png`, ...; with frames
/// `t00_slice_000.png`). The window is resolved once over the whole volume so slices compare.
pub fn write(vol: &Volume, path: &Path, opts: &WriteOptions) -> Result<()> {
    // A picture of nothing would pass for an image: an all-black PNG of NaN is refused.
    if !vol.data.iter().any(|v| v.is_finite()) {
        bail!(
            "{}: the volume holds no finite value (all NaN or infinite), so there is no image to draw; check the input ({})",
            path.display(),
            vol.provenance
                .source_files
                .first()
                .map(|s| s.as_str())
                .unwrap_or("unknown source")
        );
    }
    let window = opts
        .window
        .unwrap_or(WindowPreset::Auto)
        .resolve(&vol.data, vol.modality);
    let (nx, ny, nz, nt) = (vol.nx(), vol.ny(), vol.nz(), vol.nt());
    let single = path
        .extension()
        .map(|e| e.eq_ignore_ascii_case("png"))
        .unwrap_or(false);
    if single {
        let k = opts.slice.unwrap_or(nz / 2);
        if k >= nz {
            bail!(
                "--slice {k}: out of range, {} has {nz} slices (0..{})",
                vol.provenance
                    .source_files
                    .first()
                    .map(|s| s.as_str())
                    .unwrap_or("the volume"),
                nz - 1
            );
        }
        if opts.slice.is_none() && nz > 1 {
            eprintln!(
                "note: {}: slice {k} of {nz} (the middle one; pick another with --slice K, or give a folder for all)",
                path.display()
            );
        }
        return write_png_gray(
            path,
            nx,
            ny,
            &window_to_u8(vol.slice(k, 0), window),
            opts.force,
        );
    }
    let ks: Vec<usize> = match opts.slice {
        Some(k) if k >= nz => bail!("--slice {k}: out of range, the volume has {nz} slices"),
        Some(k) => vec![k],
        None => (0..nz).collect(),
    };
    crate::io::atomic::write_dir(path, opts.force, |dir| {
        for t in 0..nt {
            for &k in &ks {
                let name = if nt > 1 {
                    format!("t{t:02}_slice_{k:03}.png")
                } else {
                    format!("slice_{k:03}.png")
                };
                let pixels = window_to_u8(vol.slice(k, t), window);
                write_png_to(&dir.join(&name), nx, ny, &pixels, &path.join(&name))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_maps_edges_to_black_and_white() {
        let w = Window {
            center: 40.0,
            width: 400.0,
        };
        let out = window_to_u8(&[-1000.0, -160.0, 40.0, 240.0, 3000.0, f32::NAN], w);
        assert_eq!(out, vec![0, 0, 128, 255, 255, 0]);
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], 50) == 2.5, (.., 25) == 1.75
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 25.0), 1.75);
        assert_eq!(percentile(&v, 100.0), 4.0);
    }
}
