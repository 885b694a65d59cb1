//! Augmentation of training batches: a random affine map (rotation, isotropic scale, shift)
//! composed with a smooth random ("elastic") displacement, resampled bilinearly; then, for MR,
//! random intensity changes (gamma, contrast, a smooth multiplicative bias field).
//!
//! Why: with one volume to learn from (the MNI152 template) a score model learns the training
//! slices themselves and fills the missing k-space of an unseen slice with anatomy it memorised.
//! Neighbouring slices of a brain differ by smooth deformations of the same structures, so
//! deformed training slices are plausible unseen slices; the prior then spreads its mass over
//! shapes instead of a few remembered ones. Every parameter comes from the step's ChaCha20
//! stream, so a resumed run draws the same deformations as an uninterrupted one.
//!
//! MR intensities vary between scanners, sequences and coils in ways the per-volume percentile
//! scaling does not remove: the contrast between tissues (gamma), the overall gain, and a slow
//! receive-coil shading (bias field). A prior trained on a handful of subjects sees only their
//! few contrasts; the intensity draws widen that. CT is in HU, an absolute scale: leave them off.

use rand::Rng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Augmentation settings (`augment:` in a training config). All zero: off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Share of training images that are deformed (the rest are used as they are).
    pub probability: f64,
    /// Rotation angle ~ U(-rotate_deg, rotate_deg), degrees.
    pub rotate_deg: f64,
    /// Scale ~ exp(U(-ln(1 + scale), ln(1 + scale))): 0.1 gives factors in [1/1.1, 1.1].
    pub scale: f64,
    /// Shift of each axis ~ U(-shift_px, shift_px), pixels.
    pub shift_px: f64,
    /// Standard deviation (pixels) of the elastic displacement at its control points.
    pub elastic_px: f64,
    /// Control points per side of the elastic displacement (bicubically interpolated between
    /// them; fewer points: smoother deformation).
    pub elastic_points: i64,
    /// Gamma ~ exp(U(-ln(1 + gamma), ln(1 + gamma))): `x -> x^gamma` (model space, x >= 0).
    pub gamma: f64,
    /// Gain ~ exp(U(-ln(1 + contrast), ln(1 + contrast))), multiplying the image.
    pub contrast: f64,
    /// Standard deviation of a smooth log bias field (3x3 control points, bicubic), so the
    /// image is multiplied by `exp(field)`: 0.2 gives shading of about +-20 %.
    pub bias_field: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            probability: 0.0,
            rotate_deg: 0.0,
            scale: 0.0,
            shift_px: 0.0,
            elastic_px: 0.0,
            elastic_points: 5,
            gamma: 0.0,
            contrast: 0.0,
            bias_field: 0.0,
        }
    }
}

impl AugmentConfig {
    pub fn enabled(&self) -> bool {
        self.probability > 0.0
            && (self.rotate_deg > 0.0
                || self.scale > 0.0
                || self.shift_px > 0.0
                || self.elastic_px > 0.0)
    }

    /// Whether any intensity change is asked for (drawn only then, so configs without them
    /// keep their random streams).
    pub fn intensity_enabled(&self) -> bool {
        self.probability > 0.0 && (self.gamma > 0.0 || self.contrast > 0.0 || self.bias_field > 0.0)
    }

    /// Impossible values, refused before training starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        let non_negative = [
            ("augment.rotate_deg", self.rotate_deg),
            ("augment.scale", self.scale),
            ("augment.shift_px", self.shift_px),
            ("augment.elastic_px", self.elastic_px),
            ("augment.gamma", self.gamma),
            ("augment.contrast", self.contrast),
            ("augment.bias_field", self.bias_field),
        ];
        for (name, v) in non_negative {
            if !(v >= 0.0 && v.is_finite()) {
                anyhow::bail!("{name} {v}: must be a finite number >= 0");
            }
        }
        if !(0.0..=1.0).contains(&self.probability) {
            anyhow::bail!(
                "augment.probability {}: must lie in [0, 1]",
                self.probability
            );
        }
        if self.rotate_deg > 180.0 {
            anyhow::bail!(
                "augment.rotate_deg {}: must be at most 180",
                self.rotate_deg
            );
        }
        if self.elastic_points < 2 {
            anyhow::bail!(
                "augment.elastic_points {}: need at least 2 control points per side",
                self.elastic_points
            );
        }
        Ok(())
    }
}

/// `U(-1, 1)`.
fn signed_unit(rng: &mut ChaCha20Rng) -> f64 {
    2.0 * rng.random::<f64>() - 1.0
}

/// A factor `exp(U(-ln(1 + a), ln(1 + a)))`: as likely to shrink by `1 + a` as to grow by it.
fn log_uniform_factor(rng: &mut ChaCha20Rng, a: f64) -> f64 {
    ((1.0 + a).ln() * signed_unit(rng)).exp()
}

/// `n` draws of `N(0, std^2)`.
fn gaussians(rng: &mut ChaCha20Rng, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            (std * z) as f32
        })
        .collect()
}

/// One image's deformation: affine part and elastic control-point displacements (pixels,
/// `[2, n, n]` as x then y), or `None` for an image left as it is.
#[derive(Debug, Clone)]
pub struct Deformation {
    pub angle_rad: f64,
    pub scale: f64,
    /// Shift in pixels (x, y).
    pub shift_px: (f64, f64),
    pub elastic_px: Vec<f32>,
}

impl Deformation {
    pub fn identity(points: i64) -> Self {
        Deformation {
            angle_rad: 0.0,
            scale: 1.0,
            shift_px: (0.0, 0.0),
            elastic_px: vec![0.0; (2 * points * points) as usize],
        }
    }

    /// Draw one from `rng` (a fixed number of draws whatever the outcome, so the stream stays
    /// aligned).
    pub fn draw(cfg: &AugmentConfig, rng: &mut ChaCha20Rng) -> Option<Self> {
        let apply = rng.random::<f64>() < cfg.probability;
        let angle_rad = (cfg.rotate_deg * signed_unit(rng)).to_radians();
        let scale = log_uniform_factor(rng, cfg.scale);
        let shift_px = (
            cfg.shift_px * signed_unit(rng),
            cfg.shift_px * signed_unit(rng),
        );
        let n = (2 * cfg.elastic_points * cfg.elastic_points) as usize;
        let elastic_px = gaussians(rng, n, cfg.elastic_px);
        apply.then_some(Deformation {
            angle_rad,
            scale,
            shift_px,
            elastic_px,
        })
    }
}

/// Deform each image of `x` (`[b, 1, h, w]`, square) by its deformation (`None`: unchanged),
/// bilinear resampling, zeros outside. The map sends output pixel `p` to the input position
/// `R(angle) p / scale + shift + elastic(p)` about the image centre.
pub fn deform(x: &Tensor, deformations: &[Option<Deformation>]) -> Tensor {
    let size = x.size();
    let (b, h, w) = (size[0], size[2], size[3]);
    assert_eq!(deformations.len() as i64, b, "one deformation per image");
    if deformations.iter().all(Option::is_none) {
        return x.shallow_clone();
    }
    let device = x.device();
    let points = deformations
        .iter()
        .flatten()
        .map(|d| ((d.elastic_px.len() / 2) as f64).sqrt().round() as i64)
        .next()
        .unwrap_or(2);
    let mut theta = Vec::with_capacity(b as usize * 6);
    let mut elastic = Vec::with_capacity((b * 2 * points * points) as usize);
    for d in deformations {
        let id = Deformation::identity(points);
        let d = d.as_ref().unwrap_or(&id);
        let (c, s) = (d.angle_rad.cos() / d.scale, d.angle_rad.sin() / d.scale);
        // Normalised coordinates run over [-1, 1] across the image (align_corners = false):
        // one pixel is 2 / w in x and 2 / h in y.
        theta.extend([
            c as f32,
            (-s * h as f64 / w as f64) as f32,
            (2.0 * d.shift_px.0 / w as f64) as f32,
            (s * w as f64 / h as f64) as f32,
            c as f32,
            (2.0 * d.shift_px.1 / h as f64) as f32,
        ]);
        elastic.extend(d.elastic_px.iter().copied());
    }
    let theta = Tensor::from_slice(&theta)
        .reshape([b, 2, 3])
        .to_device(device);
    let mut grid = Tensor::affine_grid_generator(&theta, [b, 1, h, w], false);
    let field = Tensor::from_slice(&elastic)
        .reshape([b, 2, points, points])
        .to_device(device);
    if field.abs().max().double_value(&[]) > 0.0 {
        // Pixels -> normalised units, per axis; then [b, 2, h, w] -> [b, h, w, 2] like the grid.
        let to_norm = Tensor::from_slice(&[2.0 / w as f32, 2.0 / h as f32])
            .reshape([1, 2, 1, 1])
            .to_device(device);
        let dense =
            (field.upsample_bicubic2d([h, w], true, None, None) * to_norm).permute([0, 2, 3, 1]);
        grid += dense;
    }
    // interpolation 0 = bilinear, padding 0 = zeros.
    x.to_kind(Kind::Float).grid_sampler(&grid, 0, 0, false)
}

/// One image's intensity change: `x -> gain * x^gamma * exp(field)`, or `None` for none.
#[derive(Debug, Clone)]
pub struct IntensityChange {
    pub gamma: f64,
    pub gain: f64,
    /// Log bias field at 3x3 control points.
    pub log_field: Vec<f32>,
}

impl IntensityChange {
    /// Draw one from `rng` (a fixed number of draws whatever the outcome).
    pub fn draw(cfg: &AugmentConfig, rng: &mut ChaCha20Rng) -> Option<Self> {
        let apply = rng.random::<f64>() < cfg.probability;
        let gamma = log_uniform_factor(rng, cfg.gamma);
        let gain = log_uniform_factor(rng, cfg.contrast);
        let log_field = gaussians(rng, 9, cfg.bias_field);
        apply.then_some(IntensityChange {
            gamma,
            gain,
            log_field,
        })
    }
}

/// Apply each image's intensity change to `x` (`[b, 1, h, w]`, model space, `None`: unchanged).
pub fn change_intensity(x: &Tensor, changes: &[Option<IntensityChange>]) -> Tensor {
    let size = x.size();
    let (h, w) = (size[2], size[3]);
    let images: Vec<Tensor> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let xi = x.narrow(0, i as i64, 1);
            let Some(c) = c else { return xi };
            let field = Tensor::from_slice(&c.log_field)
                .reshape([1, 1, 3, 3])
                .to_device(x.device())
                .upsample_bicubic2d([h, w], true, None, None)
                .exp();
            xi.clamp_min(0.0).pow_tensor_scalar(c.gamma) * field * c.gain
        })
        .collect();
    Tensor::cat(&images, 0)
}

/// Draw a deformation (and, where asked, an intensity change) per image of `x` and apply them
/// (a no-op when augmentation is off).
pub fn augment(x: &Tensor, cfg: &AugmentConfig, rng: &mut ChaCha20Rng) -> Tensor {
    let b = x.size()[0];
    let x = if cfg.enabled() {
        let d: Vec<Option<Deformation>> = (0..b).map(|_| Deformation::draw(cfg, rng)).collect();
        deform(x, &d)
    } else {
        x.shallow_clone()
    };
    if !cfg.intensity_enabled() {
        return x;
    }
    let c: Vec<Option<IntensityChange>> = (0..b).map(|_| IntensityChange::draw(cfg, rng)).collect();
    change_intensity(&x, &c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(n: i64) -> Tensor {
        // Asymmetric content, so a wrong rotation direction or a flip shows.
        Tensor::arange(n * n, (Kind::Float, tch::Device::Cpu)).reshape([1, 1, n, n])
            * Tensor::arange(n * n, (Kind::Float, tch::Device::Cpu))
                .reshape([1, 1, n, n])
                .sqrt()
    }

    fn max_abs(a: &Tensor) -> f64 {
        a.abs().max().double_value(&[])
    }

    #[test]
    fn identity_deformation_returns_the_image() {
        let x = ramp(8);
        let y = deform(&x, &[Some(Deformation::identity(5))]);
        assert!(max_abs(&(y - &x)) < 1e-3, "identity must not move pixels");
    }

    #[test]
    fn quarter_turn_equals_rot90() {
        // Rotating a square image by 90 degrees about its centre maps pixel centres onto pixel
        // centres, so bilinear resampling is exact: compare with a plain transpose-and-flip.
        let x = ramp(6);
        let mut d = Deformation::identity(3);
        d.angle_rad = std::f64::consts::FRAC_PI_2;
        let y = deform(&x, &[Some(d)]);
        // Output pixel (r, c) samples input at R p: x_in = -y_out, y_in = x_out, i.e.
        // out[r][c] = in[c][n-1-r]: numpy's rot90(in, k=1) (counter-clockwise).
        let expect = x.rot90(1, [2, 3]);
        assert!(
            max_abs(&(&y - &expect)) < 1e-3 * max_abs(&x),
            "got {y:?} expected {expect:?}"
        );
    }

    #[test]
    fn whole_pixel_shift_moves_the_image() {
        let x = ramp(6);
        let mut d = Deformation::identity(3);
        d.shift_px = (1.0, 0.0);
        let y = deform(&x, &[Some(d)]);
        // Output column c samples input column c + 1; the last column falls outside: zero.
        let expect = x.narrow(3, 1, 5);
        assert!(max_abs(&(y.narrow(3, 0, 5) - &expect)) < 1e-3 * max_abs(&x));
        assert!(max_abs(&y.narrow(3, 5, 1)) < 1e-3 * max_abs(&x));
    }

    #[test]
    fn uniform_elastic_field_is_a_shift() {
        // A constant displacement interpolates to the same constant: a whole-pixel shift in y.
        let x = ramp(6);
        let mut d = Deformation::identity(3);
        for v in d.elastic_px[9..].iter_mut() {
            *v = 1.0; // y component
        }
        let y = deform(&x, &[Some(d)]);
        let expect = x.narrow(2, 1, 5);
        assert!(max_abs(&(y.narrow(2, 0, 5) - &expect)) < 1e-3 * max_abs(&x));
    }

    #[test]
    fn draws_are_reproducible_and_off_means_untouched() {
        let cfg = AugmentConfig {
            probability: 1.0,
            rotate_deg: 10.0,
            scale: 0.1,
            shift_px: 2.0,
            elastic_px: 1.5,
            elastic_points: 4,
            ..AugmentConfig::default()
        };
        let x = ramp(16).repeat([3, 1, 1, 1]);
        let a = augment(&x, &cfg, &mut ChaCha20Rng::seed_from_u64(7));
        let b = augment(&x, &cfg, &mut ChaCha20Rng::seed_from_u64(7));
        assert_eq!(max_abs(&(&a - &b)), 0.0);
        assert!(
            max_abs(&(&a - &x)) > 1.0,
            "a deformation must change the image"
        );
        let off = augment(
            &x,
            &AugmentConfig::default(),
            &mut ChaCha20Rng::seed_from_u64(7),
        );
        assert_eq!(max_abs(&(off - &x)), 0.0);
        assert!(cfg.validate().is_ok());
        let bad = AugmentConfig {
            scale: -0.1,
            ..cfg.clone()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn intensity_change_is_the_closed_form() {
        let x = Tensor::from_slice(&[0.0f32, 0.25, 0.5, 1.0]).reshape([1, 1, 2, 2]);
        // A flat field of log 1.1: every pixel times 1.1, after gamma 2 and gain 0.5.
        let c = IntensityChange {
            gamma: 2.0,
            gain: 0.5,
            log_field: vec![1.1f32.ln(); 9],
        };
        let y = change_intensity(&x, &[Some(c)]);
        let expect = Tensor::from_slice(&[0.0f32, 0.0625, 0.25, 1.0]).reshape([1, 1, 2, 2]) * 0.55;
        assert!(max_abs(&(&y - &expect)) < 1e-5, "got {y:?}");
        assert_eq!(max_abs(&(change_intensity(&x, &[None]) - &x)), 0.0);
        // Geometric-only configs draw no intensity parameters (their streams are unchanged).
        let geo = AugmentConfig {
            probability: 1.0,
            rotate_deg: 5.0,
            ..AugmentConfig::default()
        };
        assert!(geo.enabled() && !geo.intensity_enabled());
        let int_only = AugmentConfig {
            probability: 1.0,
            gamma: 0.3,
            ..AugmentConfig::default()
        };
        assert!(!int_only.enabled() && int_only.intensity_enabled());
        let xs = ramp(8).repeat([2, 1, 1, 1]) / 4096.0;
        let a = augment(&xs, &int_only, &mut ChaCha20Rng::seed_from_u64(3));
        assert!(max_abs(&(&a - &xs)) > 1e-3, "gamma must change the image");
    }
}
