//! Analytic phantoms: the modified Shepp-Logan head, a seeded random-ellipse generator, and
//! metal-implant variants. The shipped definitions live in `phantoms/*.yaml` (compiled in);
//! images are on the attenuation scale `x = (HU + 1000) / 2000` (src/ops/hu.rs).

use crate::ops::ct::hu;
use crate::simulate::{Material, MetalObject};
use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// An ellipse in the `[-1, 1]^2` frame (x to the right, y up), adding `value` inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ellipse {
    pub value: f64,
    pub a: f64,
    pub b: f64,
    pub x0: f64,
    pub y0: f64,
    pub phi_deg: f64,
}

/// A metal ellipse replacing the tissue under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetalEllipse {
    pub material: Material,
    pub density_g_cm3: f64,
    pub a: f64,
    pub b: f64,
    pub x0: f64,
    pub y0: f64,
    pub phi_deg: f64,
}

/// A phantom definition as stored in `phantoms/*.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhantomDef {
    pub name: String,
    pub description: String,
    /// Another shipped phantom whose ellipses come first.
    #[serde(default)]
    pub base: Option<String>,
    pub ellipses: Vec<Ellipse>,
    #[serde(default)]
    pub metal: Vec<MetalEllipse>,
}

const SHIPPED: [(&str, &str); 2] = [
    ("shepp-logan", include_str!("../phantoms/shepp-logan.yaml")),
    ("metal", include_str!("../phantoms/metal.yaml")),
];

/// A shipped phantom by name (`shepp-logan`, `metal`), its `base` resolved.
pub fn shipped(name: &str) -> Result<PhantomDef> {
    let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) else {
        bail!(
            "--phantom {name}: unknown phantom (shipped: {}, and ellipses)",
            SHIPPED.map(|(n, _)| n).join(", ")
        );
    };
    let mut def: PhantomDef = serde_yaml_ng::from_str(text)
        .with_context(|| format!("phantoms/{name}.yaml: not a valid phantom definition"))?;
    if let Some(base) = def.base.take() {
        let b = shipped(&base)?;
        let mut ellipses = b.ellipses;
        ellipses.extend(def.ellipses);
        def.ellipses = ellipses;
        let mut metal = b.metal;
        metal.extend(def.metal);
        def.metal = metal;
    }
    Ok(def)
}

/// `n x n` pixel centres in the `[-1, 1]^2` frame, MATLAB's `phantom` convention: column
/// `i` at `x = (i - (n-1)/2) / ((n-1)/2)`, row `j` at `y = -(j - (n-1)/2) / ((n-1)/2)`.
fn pixel_xy(n: usize, k: usize) -> (f64, f64) {
    let h = (n as f64 - 1.0) / 2.0;
    let (i, j) = ((k % n) as f64, (k / n) as f64);
    ((i - h) / h, -(j - h) / h)
}

fn inside(x: f64, y: f64, a: f64, b: f64, x0: f64, y0: f64, phi_deg: f64) -> bool {
    let (s, c) = phi_deg.to_radians().sin_cos();
    let (dx, dy) = (x - x0, y - y0);
    let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
    (u / a).powi(2) + (v / b).powi(2) <= 1.0
}

/// The tissue image (attenuation scale, clamped at 0), `n x n` row major, sampled at pixel
/// centres.
pub fn rasterize(ellipses: &[Ellipse], n: usize) -> Vec<f32> {
    (0..n * n)
        .map(|k| {
            let (x, y) = pixel_xy(n, k);
            let v: f64 = ellipses
                .iter()
                .filter(|e| inside(x, y, e.a, e.b, e.x0, e.y0, e.phi_deg))
                .map(|e| e.value)
                .sum();
            v.max(0.0) as f32
        })
        .collect()
}

/// The metal objects of a definition, with 4x4 supersampled pixel fractions.
pub fn metal_objects(def: &PhantomDef, n: usize) -> Vec<MetalObject> {
    let h = (n as f64 - 1.0) / 2.0;
    def.metal
        .iter()
        .map(|m| {
            let fraction = (0..n * n)
                .map(|k| {
                    let (x, y) = pixel_xy(n, k);
                    let mut hits = 0;
                    for sj in 0..4 {
                        for si in 0..4 {
                            let dx = (-0.375 + 0.25 * si as f64) / h;
                            let dy = (-0.375 + 0.25 * sj as f64) / h;
                            if inside(x + dx, y + dy, m.a, m.b, m.x0, m.y0, m.phi_deg) {
                                hits += 1;
                            }
                        }
                    }
                    hits as f32 / 16.0
                })
                .collect();
            MetalObject {
                material: m.material,
                density_g_cm3: m.density_g_cm3,
                fraction,
            }
        })
        .collect()
}

/// A random phantom for training and tests: a water body (an ellipse of value 0.5) holding
/// `count` ellipses of random size, position, angle and contrast (-0.25..0.5, so from fat to
/// bone), seeded and reproducible.
pub fn random_ellipses(count: usize, seed: u64) -> Vec<Ellipse> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![Ellipse {
        value: 0.5,
        a: rng.random_range(0.7..0.9),
        b: rng.random_range(0.75..0.95),
        x0: 0.0,
        y0: 0.0,
        phi_deg: rng.random_range(-10.0..10.0),
    }];
    for _ in 0..count {
        let r = rng.random_range(0.0..0.55f64);
        let t = rng.random_range(0.0..std::f64::consts::TAU);
        out.push(Ellipse {
            value: rng.random_range(-0.25..0.5),
            a: rng.random_range(0.03..0.25),
            b: rng.random_range(0.03..0.25),
            x0: r * t.cos(),
            y0: r * t.sin(),
            phi_deg: rng.random_range(0.0..180.0),
        });
    }
    out
}

/// A phantom as an HU slice plus its metal objects (empty unless the definition has metal).
pub fn phantom_hu(name: &str, n: usize, seed: u64) -> Result<(Vec<f32>, Vec<MetalObject>)> {
    ensure!(n >= 8, "--size {n}: a phantom needs at least 8x8 pixels");
    let def = if name == "ellipses" {
        PhantomDef {
            name: "ellipses".into(),
            description: format!("random ellipses, seed {seed}"),
            base: None,
            ellipses: random_ellipses(12, seed),
            metal: Vec::new(),
        }
    } else {
        shipped(name)?
    };
    let hu_slice = rasterize(&def.ellipses, n)
        .into_iter()
        .map(|x| hu::unit_to_hu(f64::from(x)) as f32)
        .collect();
    Ok((hu_slice, metal_objects(&def, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_phantoms_parse() {
        let sl = shipped("shepp-logan").unwrap();
        assert_eq!(sl.ellipses.len(), 10);
        let m = shipped("metal").unwrap();
        assert_eq!(m.ellipses.len(), 10);
        assert_eq!(m.metal.len(), 2);
        assert!(shipped("nope").is_err());
    }

    #[test]
    fn random_ellipses_are_reproducible() {
        assert_eq!(random_ellipses(5, 7), random_ellipses(5, 7));
        assert_ne!(random_ellipses(5, 7), random_ellipses(5, 8));
    }
}
