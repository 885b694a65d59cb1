//! Parallel-beam CT: the Joseph projector `T` (Radon transform over the full angle set of a
//! [`Geometry`], geometry.rs) with its exact transpose `T^T`; the kernels are in kernels.rs.
//!
//! Conventions (docs/operators.md), chosen to match scikit-image's `radon(image, theta,
//! circle=False)` so arrays compare directly:
//! - the image is `N x N`, pixel `(row j, column i)`, rotation centre at pixel `(N/2, N/2)`
//!   (integer division);
//! - angle `theta` in degrees; the detector coordinate of a point is
//!   `u = (i - N/2) cos theta - (j - N/2) sin theta` in pixels, and detector bin `s` sits at
//!   `u = s - n_det/2` (bins one pixel wide, `n_det` defaults to `ceil(sqrt(2) N)`);
//! - sinograms are `[B, 1, n_angles, n_det]` (scikit-image returns the transpose);
//! - line integrals are in pixel units times `pixel_size` (1 by default; the pixel spacing in
//!   mm gives mm).
//!
//! The projector and its transpose walk one shared description of the rays (`AngleParams` and
//! `AngleParams::span`): a ray steps one pixel at a time along the image axis closest to its
//! direction and interpolates linearly across the other axis (Joseph 1982), with weight
//! `1 / |cos|` of the angle between the ray and that axis. `forward` gathers with those weights,
//! `adjoint` scatters with the very same weights, so `<T x, y> = <x, T^T y>` holds up to float
//! rounding by construction.
//!
//! A fan-beam geometry (`Geometry::fan`) makes the same operator the fan-beam transform: every
//! ray has its own direction (`fan::fan_rays`, `kernels::RayParams`), stepped and interpolated
//! the same way over the same padded planes; the masked paths, the device path and FBP as
//! `T^-1` are shared. Fan-beam conventions: fan.rs.

use super::fbp::{self, Filter};
use super::geometry::{full_angles, Geometry};
use super::kernels::{
    add_assign, gather_ray, padded_lines, project_angle_dispatch, scatter_line, scatter_ray,
    transpose, unpadded_lines, AngleParams, RayParams,
};
use crate::ops::Transform;
use anyhow::{bail, Result};
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// The Radon transform over a geometry's angles (parallel beam), or the fan-beam transform
/// (a fan-beam geometry): `T` for CT.
pub struct Radon {
    geometry: Geometry,
    rays: Rays,
    /// The projector as sparse matrices on a CUDA device, built on first use there.
    on_device: std::sync::Mutex<Option<(Device, SparseRadon)>>,
}

/// `T` and `T^T` as sparse matrices (`[n_angles * n_det, N * N]` and its transpose) on a
/// device: the same entries as the host kernels (`Radon::matrix_entries`), applied with sparse
/// matrix products where the tensors live, so CUDA tensors stay on the GPU.
pub struct SparseRadon {
    a: Tensor,
    at: Tensor,
    n: i64,
    n_angles: i64,
    n_det: i64,
}

/// The rays of a geometry as the kernels walk them.
enum Rays {
    /// One description per angle (all its rays are parallel).
    Parallel(Vec<AngleParams>),
    /// One per ray, `n_angles * n_det`, angle major.
    Fan(Vec<RayParams>),
}

impl SparseRadon {
    /// `T x` for `x` `[B, 1, N, N]` on the matrices' device.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let cols = x
            .to_kind(Kind::Float)
            .reshape([b, self.n * self.n])
            .transpose(0, 1);
        self.a
            .mm(&cols)
            .transpose(0, 1)
            .reshape([b, 1, self.n_angles, self.n_det])
            .to_kind(x.kind())
    }

    /// `T^T y` for `y` `[B, 1, n_angles, n_det]` on the matrices' device.
    pub fn adjoint(&self, y: &Tensor) -> Tensor {
        let b = y.size()[0];
        let cols = y
            .to_kind(Kind::Float)
            .reshape([b, self.n_angles * self.n_det])
            .transpose(0, 1);
        self.at
            .mm(&cols)
            .transpose(0, 1)
            .reshape([b, 1, self.n, self.n])
            .to_kind(y.kind())
    }
}

impl Radon {
    pub fn new(geometry: Geometry) -> Result<Self> {
        geometry.validate()?;
        let rays = match &geometry.fan {
            None => Rays::Parallel(
                geometry
                    .angles_deg
                    .iter()
                    .map(|&a| {
                        AngleParams::new(
                            a,
                            geometry.image_size,
                            geometry.n_det,
                            geometry.pixel_size,
                        )
                    })
                    .collect(),
            ),
            Some(fan) => Rays::Fan(super::fan::fan_rays(&geometry, fan)),
        };
        Ok(Radon {
            geometry,
            rays,
            on_device: std::sync::Mutex::new(None),
        })
    }

    /// Every nonzero of the projector matrix as (sinogram index `a * n_det + s`, pixel index
    /// `j * N + i`, weight), from the same rays and weights as [`Radon::project`].
    pub fn matrix_entries(&self) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
        let n = self.geometry.image_size;
        let n_det = self.geometry.n_det;
        let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
        let params = match &self.rays {
            Rays::Parallel(p) => p,
            Rays::Fan(rays) => {
                for (ray, r) in rays.iter().enumerate() {
                    for k in r.k0 as usize..r.k1 as usize {
                        // As gather_ray: padded index i reads pixel i - 1 with 1 - f, i with f.
                        let t = r.start + k as f32 * r.shear;
                        let i = t as usize;
                        let f = t - i as f32;
                        for (pix, w) in [(i as i64 - 1, 1.0 - f), (i as i64, f)] {
                            if pix < 0 || pix >= n as i64 || w == 0.0 {
                                continue;
                            }
                            let (row, col) = if r.transposed {
                                (pix, k as i64)
                            } else {
                                (k as i64, pix)
                            };
                            rows.push(ray as i64);
                            cols.push(row * n as i64 + col);
                            vals.push(w * r.weight);
                        }
                    }
                }
                return (rows, cols, vals);
            }
        };
        for (a, p) in params.iter().enumerate() {
            for k in 0..n {
                let (start, slope, s0, s1) = p.span(n, n_det, k);
                for s in s0..s1 {
                    // As gather_line: padded index i reads pixel i - 1 with 1 - f, pixel i with f.
                    let t = start + s as f32 * slope;
                    let i = t as usize;
                    let f = t - i as f32;
                    for (pix, w) in [(i as i64 - 1, 1.0 - f), (i as i64, f)] {
                        if pix < 0 || pix >= n as i64 || w == 0.0 {
                            continue;
                        }
                        let (row, col) = if p.transposed {
                            (pix, k as i64)
                        } else {
                            (k as i64, pix)
                        };
                        rows.push((a * n_det + s) as i64);
                        cols.push(row * n as i64 + col);
                        vals.push(w * p.weight);
                    }
                }
            }
        }
        (rows, cols, vals)
    }

    /// The projector as sparse matrices on `device` (CSR on CUDA, COO on the CPU).
    pub fn sparse(&self, device: Device) -> SparseRadon {
        let (rows, cols, vals) = self.matrix_entries();
        let n = self.geometry.image_size as i64;
        let (n_angles, n_det) = (self.geometry.n_angles() as i64, self.geometry.n_det as i64);
        let m = n_angles * n_det;
        let values = Tensor::from_slice(&vals).to_device(device);
        let build = |r: &[i64], c: &[i64], size: [i64; 2]| {
            let indices =
                Tensor::stack(&[Tensor::from_slice(r), Tensor::from_slice(c)], 0).to_device(device);
            let t = Tensor::sparse_coo_tensor_indices_size(
                &indices,
                &values,
                size,
                (Kind::Float, device),
                false,
            )
            .coalesce();
            if device.is_cuda() {
                t.to_sparse_csr(None)
            } else {
                t
            }
        };
        SparseRadon {
            a: build(&rows, &cols, [m, n * n]),
            at: build(&cols, &rows, [n * n, m]),
            n,
            n_angles,
            n_det,
        }
    }

    /// `f` applied to the sparse matrices for a CUDA tensor's device (built once and kept);
    /// `None` for host tensors, which the rayon kernels take.
    fn on_device<R>(&self, device: Device, f: impl FnOnce(&SparseRadon) -> R) -> Option<R> {
        if !device.is_cuda() {
            return None;
        }
        let mut slot = self.on_device.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(slot.as_ref(), Some((d, _)) if *d == device) {
            *slot = Some((device, self.sparse(device)));
        }
        slot.as_ref().map(|(_, m)| f(m))
    }

    /// Per angle: whether `mask` (`[.., n_angles, n_det]`, broadcast over the batch) keeps any
    /// of its bins.
    fn measured_angles(&self, mask: &Tensor) -> Vec<bool> {
        let n_ang = self.geometry.n_angles() as i64;
        let per_angle = mask
            .reshape([-1, n_ang, self.geometry.n_det as i64])
            .ne(0.0)
            .any_dim(2, false)
            .any_dim(0, false);
        Vec::<bool>::try_from(per_angle.to_device(Device::Cpu)).unwrap_or_default()
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Check that `x` is a batch of images this operator takes.
    pub fn check_image(&self, x: &Tensor) -> Result<()> {
        let n = self.geometry.image_size as i64;
        let s = x.size();
        if s.len() != 4 || s[1] != 1 || s[2] != n || s[3] != n {
            bail!(
                "CT projector for {n}x{n} images: got a tensor of shape {s:?} (expected [B, 1, {n}, {n}]; \
                 the parallel-beam operator needs square images of the geometry's size)"
            );
        }
        Ok(())
    }

    /// Check that `y` is a batch of sinograms of this geometry.
    pub fn check_sinogram(&self, y: &Tensor) -> Result<()> {
        let (a, d) = (self.geometry.n_angles() as i64, self.geometry.n_det as i64);
        let s = y.size();
        if s.len() != 4 || s[1] != 1 || s[2] != a || s[3] != d {
            bail!(
                "CT sinogram: got shape {s:?}, expected [B, 1, {a}, {d}] (angles x detector bins)"
            );
        }
        Ok(())
    }

    /// Forward projection of host images (`b` images of `n * n`, row major) into sinograms.
    pub fn project(&self, images: &[f32], b: usize) -> Vec<f32> {
        self.project_with(images, b, super::fbp::avx2_available(), None)
    }

    /// [`Radon::project`] with the vector kernel on or off (tests compare the two), computing
    /// only the angles `active` marks (all when None; the others stay zero).
    fn project_with(
        &self,
        images: &[f32],
        b: usize,
        simd: bool,
        active: Option<&[bool]>,
    ) -> Vec<f32> {
        let n = self.geometry.image_size;
        let n_det = self.geometry.n_det;
        let n_ang = self.geometry.n_angles();
        assert_eq!(images.len(), b * n * n, "project: image buffer size");
        // Each image and its transpose, lines padded with a zero on each side: row-stepping
        // angles read the image, column-stepping angles its transpose, both along memory.
        let planes: Vec<(Vec<f32>, Vec<f32>)> = (0..b)
            .into_par_iter()
            .map(|bi| {
                let img = &images[bi * n * n..(bi + 1) * n * n];
                (padded_lines(img, n), padded_lines(&transpose(img, n), n))
            })
            .collect();
        let mut out = vec![0f32; b * n_ang * n_det];
        out.par_chunks_mut(n_det)
            .enumerate()
            .for_each(|(row, sino)| {
                let (bi, a) = (row / n_ang, row % n_ang);
                if active.is_some_and(|m| !m[a]) {
                    return;
                }
                let plane = |transposed: bool| {
                    if transposed {
                        &planes[bi].1
                    } else {
                        &planes[bi].0
                    }
                };
                match &self.rays {
                    Rays::Parallel(params) => {
                        let p = &params[a];
                        project_angle_dispatch(p, plane(p.transposed), n, sino, simd);
                    }
                    Rays::Fan(rays) => {
                        for (v, r) in sino.iter_mut().zip(&rays[a * n_det..(a + 1) * n_det]) {
                            *v = gather_ray(r, plane(r.transposed), n);
                        }
                    }
                }
            });
        out
    }

    /// The exact transpose of [`Radon::project`]: scatter every sinogram bin back along its
    /// ray with the same weights. Angles are split between threads, each with its own image
    /// accumulator (one for row-stepping angles, one transposed for column-stepping angles).
    pub fn backproject(&self, sinograms: &[f32], b: usize) -> Vec<f32> {
        let all: Vec<usize> = (0..self.geometry.n_angles()).collect();
        self.backproject_angles(sinograms, b, &all)
    }

    /// [`Radon::backproject`] of the angles `angles` only (the rest of the sinogram is taken
    /// as zero).
    fn backproject_angles(&self, sinograms: &[f32], b: usize, angles: &[usize]) -> Vec<f32> {
        let n = self.geometry.image_size;
        let n_det = self.geometry.n_det;
        let n_ang = self.geometry.n_angles();
        assert_eq!(
            sinograms.len(),
            b * n_ang * n_det,
            "backproject: sinogram buffer size"
        );
        let chunk = angles
            .len()
            .div_ceil(2 * rayon::current_num_threads())
            .max(1);
        let mut out = vec![0f32; b * n * n];
        for (bi, image) in out.chunks_mut(n * n).enumerate() {
            let sino = &sinograms[bi * n_ang * n_det..(bi + 1) * n_ang * n_det];
            let (rows, cols) = angles
                .par_iter()
                .with_min_len(chunk)
                .fold(
                    || (vec![0f32; n * (n + 2)], vec![0f32; n * (n + 2)]),
                    |(mut rows, mut cols), &a| {
                        let y = &sino[a * n_det..(a + 1) * n_det];
                        match &self.rays {
                            Rays::Parallel(params) => {
                                let p = &params[a];
                                let plane = if p.transposed { &mut cols } else { &mut rows };
                                let y: Vec<f32> = y.iter().map(|v| v * p.weight).collect();
                                for k in 0..n {
                                    let (start, slope, s0, s1) = p.span(n, n_det, k);
                                    let line = &mut plane[k * (n + 2)..(k + 1) * (n + 2)];
                                    scatter_line(line, &y[s0..s1], start, slope, s0);
                                }
                            }
                            Rays::Fan(rays) => {
                                for (&v, r) in y.iter().zip(&rays[a * n_det..(a + 1) * n_det]) {
                                    let plane = if r.transposed { &mut cols } else { &mut rows };
                                    scatter_ray(r, plane, n, v);
                                }
                            }
                        }
                        (rows, cols)
                    },
                )
                .reduce(
                    || (vec![0f32; n * (n + 2)], vec![0f32; n * (n + 2)]),
                    |(mut r1, mut c1), (r2, c2)| {
                        add_assign(&mut r1, &r2);
                        add_assign(&mut c1, &c2);
                        (r1, c1)
                    },
                );
            // Drop the padding (it only ever meets the zeros around the image), then
            // transpose the column-stepping part back.
            let (rows, cols) = (
                unpadded_lines(&rows, n),
                transpose(&unpadded_lines(&cols, n), n),
            );
            for ((o, r), c) in image.iter_mut().zip(&rows).zip(&cols) {
                *o = r + c;
            }
        }
        out
    }

    /// Filtered back projection of sinograms `[B, 1, n_angles, n_det]` using only the angle
    /// rows `rows` (all of them for `T^-1`; the measured ones for sparse-view or limited-angle
    /// data), scikit-image's construction (see `fbp`).
    pub fn fbp(&self, sinogram: &Tensor, filter: Filter, rows: &[usize]) -> Result<Tensor> {
        self.check_sinogram(sinogram)?;
        let (host, b, device, kind) = to_host(sinogram);
        let img = fbp::fbp(&self.geometry, &host, b, filter, rows)?;
        let n = self.geometry.image_size as i64;
        Ok(from_host(&img, [b as i64, 1, n, n], device, kind))
    }
}

impl Transform for Radon {
    /// On the CPU the rayon kernels; on CUDA the same matrix as a sparse product on the GPU.
    fn forward(&self, x: &Tensor) -> Tensor {
        if let Err(e) = self.check_image(x) {
            panic!("{e}");
        }
        if let Some(t) = self.on_device(x.device(), |m| m.forward(x)) {
            return t;
        }
        let (host, b, device, kind) = to_host(x);
        let sino = self.project(&host, b);
        let (a, d) = (self.geometry.n_angles() as i64, self.geometry.n_det as i64);
        from_host(&sino, [b as i64, 1, a, d], device, kind)
    }

    fn adjoint(&self, y: &Tensor) -> Tensor {
        if let Err(e) = self.check_sinogram(y) {
            panic!("{e}");
        }
        if let Some(t) = self.on_device(y.device(), |m| m.adjoint(y)) {
            return t;
        }
        let (host, b, device, kind) = to_host(y);
        let img = self.backproject(&host, b);
        let n = self.geometry.image_size as i64;
        from_host(&img, [b as i64, 1, n, n], device, kind)
    }

    /// Only the angles with a measured bin are projected (sparse-view CT: 23 of 180), then
    /// the mask is applied; on CUDA the full product.
    fn forward_masked(&self, x: &Tensor, mask: &Tensor) -> Tensor {
        if x.device() != Device::Cpu {
            return self.forward(x) * mask;
        }
        if let Err(e) = self.check_image(x) {
            panic!("{e}");
        }
        let active = self.measured_angles(mask);
        let (host, b, device, kind) = to_host(x);
        let sino = self.project_with(&host, b, super::fbp::avx2_available(), Some(&active));
        let (a, d) = (self.geometry.n_angles() as i64, self.geometry.n_det as i64);
        from_host(&sino, [b as i64, 1, a, d], device, kind) * mask
    }

    /// Only the angles with a measured bin are back projected.
    fn adjoint_masked(&self, y: &Tensor, mask: &Tensor) -> Tensor {
        if y.device() != Device::Cpu {
            return self.adjoint(&(y * mask));
        }
        let y = y * mask;
        if let Err(e) = self.check_sinogram(&y) {
            panic!("{e}");
        }
        let active = self.measured_angles(mask);
        let angles: Vec<usize> = (0..active.len()).filter(|&a| active[a]).collect();
        let (host, b, device, kind) = to_host(&y);
        let img = self.backproject_angles(&host, b, &angles);
        let n = self.geometry.image_size as i64;
        from_host(&img, [b as i64, 1, n, n], device, kind)
    }

    /// FBP (ramp filter) over the full angle set.
    fn inverse(&self, y: &Tensor) -> Tensor {
        let rows: Vec<usize> = (0..self.geometry.n_angles()).collect();
        self.fbp(y, Filter::Ramp, &rows)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// FBP (ramp filter) over the angles with any measured bin, at their own `pi / (2 n)` scale.
    fn inverse_masked(&self, y: &Tensor, mask: &Tensor) -> Tensor {
        let measured = mask
            .sum_dim_intlist(&[0i64, 1, 3][..], false, Kind::Float)
            .gt(0.0);
        let measured = Vec::<bool>::try_from(measured.to_device(Device::Cpu)).unwrap_or_default();
        let rows: Vec<usize> = (0..measured.len()).filter(|&i| measured[i]).collect();
        self.fbp(&(y * mask), Filter::Ramp, &rows)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn image_shape(&self) -> [i64; 2] {
        let n = self.geometry.image_size as i64;
        [n, n]
    }

    fn measurement_shape(&self) -> [i64; 2] {
        [self.geometry.n_angles() as i64, self.geometry.n_det as i64]
    }

    fn describe(&self) -> String {
        let g = &self.geometry;
        if let Some(f) = &g.fan {
            return format!(
                "fan-beam transform (Joseph), {0}x{0} image of {1} mm pixels, {2} views over {3:.1} deg ({4:?} scan), {5:?} detector of {6} bins x {7} mm (offset {8} bins), source-isocentre {9} mm, source-detector {10} mm",
                g.image_size,
                f.pixel_mm,
                g.n_angles(),
                f.scan_deg(g.n_det),
                f.scan,
                f.detector,
                g.n_det,
                f.detector_spacing_mm,
                f.detector_offset,
                f.source_to_isocentre_mm,
                f.source_to_detector_mm
            )
            .to_lowercase();
        }
        let angles = if g.angles_deg == full_angles(g.n_angles()) {
            format!("{} angles over [0, 180) deg", g.n_angles())
        } else {
            format!("{} given angles", g.n_angles())
        };
        format!(
            "parallel-beam Radon (Joseph), {0}x{0} image, {angles}, {1} detector bins",
            g.image_size, g.n_det
        )
    }
}

/// A real tensor as host f32 plus what is needed to send a result back where it came from.
fn to_host(t: &Tensor) -> (Vec<f32>, usize, Device, Kind) {
    let b = t.size()[0] as usize;
    let kind = t.kind();
    let device = t.device();
    let v = Vec::<f32>::try_from(
        t.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .flatten(0, -1),
    )
    .expect("a float tensor converts to Vec<f32>");
    (v, b, device, kind)
}

/// Host f32 back to a tensor of `shape` on `device`, in the input's floating kind.
fn from_host(v: &[f32], shape: [i64; 4], device: Device, kind: Kind) -> Tensor {
    let t = Tensor::from_slice(v).reshape(shape);
    let t = if kind == Kind::Double {
        t.to_kind(Kind::Double)
    } else {
        t
    };
    t.to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ct::{limited_angle_rows, sparse_view_rows};
    use crate::ops::inner;

    #[test]
    fn adjoint_matches_on_random_inputs() {
        tch::manual_seed(3);
        for (n, views) in [(16usize, 7usize), (33, 20), (64, 180)] {
            let r = Radon::new(Geometry::new(n, views).unwrap()).unwrap();
            let x = Tensor::randn([2, 1, n as i64, n as i64], (Kind::Float, Device::Cpu));
            let [a, d] = r.measurement_shape();
            let y = Tensor::randn([2, 1, a, d], (Kind::Float, Device::Cpu));
            let lhs = inner(&r.forward(&x), &y);
            let rhs = inner(&x, &r.adjoint(&y));
            assert!(
                (lhs - rhs).abs() / lhs.abs() < 1e-5,
                "n={n}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn vector_and_scalar_projections_agree() {
        if !crate::ops::ct::fbp::avx2_available() {
            return; // the scalar path is the only one on this CPU
        }
        let g = Geometry::new(37, 1)
            .unwrap()
            .with_angles(vec![0.0, 0.05, 1.0, 44.99, 45.0, 89.99, 90.0, 135.0, 170.0])
            .unwrap();
        let r = Radon::new(g).unwrap();
        let img: Vec<f32> = (0..37 * 37)
            .map(|k| ((k * 7919) % 101) as f32 / 101.0)
            .collect();
        let a = r.project_with(&img, 1, true, None);
        let b = r.project_with(&img, 1, false, None);
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                "bin {k}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn sparse_matrix_path_matches_the_kernels() {
        // The device path (sparse matrices, used for CUDA tensors), checked here on the CPU.
        tch::manual_seed(4);
        let g = Geometry::new(33, 1)
            .unwrap()
            .with_angles(vec![0.0, 10.0, 45.0, 60.0, 90.0, 120.0, 135.0, 170.0])
            .unwrap();
        let r = Radon::new(g.clone()).unwrap();
        let m = r.sparse(Device::Cpu);
        let x = Tensor::randn([2, 1, 33, 33], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([2, 1, 8, g.n_det as i64], (Kind::Float, Device::Cpu));
        let rel = |a: &Tensor, b: &Tensor| {
            f64::try_from((a - b).norm()).unwrap() / f64::try_from(b.norm()).unwrap()
        };
        assert!(rel(&m.forward(&x), &r.forward(&x)) < 1e-5);
        assert!(rel(&m.adjoint(&y), &r.adjoint(&y)) < 1e-5);
    }

    #[test]
    fn constant_image_projects_to_its_chord_lengths() {
        // A disc of radius R has the chord 2 sqrt(R^2 - u^2) at every angle.
        let n = 128usize;
        let g = Geometry::new(n, 12).unwrap();
        let r = Radon::new(g.clone()).unwrap();
        let c = (n / 2) as f64;
        let rad = 40.0;
        let img: Vec<f32> = (0..n * n)
            .map(|p| {
                let (j, i) = ((p / n) as f64 - c, (p % n) as f64 - c);
                if i * i + j * j <= rad * rad {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let sino = r.project(&img, 1);
        let sc = (g.n_det / 2) as f64;
        for a in 0..12 {
            for s in [sc as usize, sc as usize + 20, sc as usize - 30] {
                let u = s as f64 - sc;
                let chord = 2.0 * (rad * rad - u * u).sqrt();
                let got = sino[a * g.n_det + s] as f64;
                assert!(
                    (got - chord).abs() < 1.5,
                    "angle {a} bin {s}: {got} vs {chord}"
                );
            }
        }
    }

    #[test]
    fn subsets_and_bad_parameters() {
        assert_eq!(&sparse_view_rows(180, 23).unwrap()[..4], &[0, 7, 15, 23]);
        assert!(sparse_view_rows(180, 0).is_err());
        assert!(sparse_view_rows(180, 181).is_err());
        assert_eq!(
            limited_angle_rows(&full_angles(180), 0.0, 90.0)
                .unwrap()
                .len(),
            90
        );
        assert!(limited_angle_rows(&full_angles(180), 0.0, 0.0).is_err());
        assert!(Geometry::new(64, 0).is_err());
        assert!(Geometry::new(64, 10)
            .unwrap()
            .with_pixel_size(-1.0)
            .is_err());
        let r = Radon::new(Geometry::new(8, 4).unwrap()).unwrap();
        let e = r.check_image(&Tensor::zeros([1, 1, 8, 9], (Kind::Float, Device::Cpu)));
        assert!(e.unwrap_err().to_string().contains("square"));
    }

    /// The masked paths skip unmeasured angles: they must equal `T x * mask` and
    /// `T^T (mask y)` for a sparse-view mask and for a partial one (a metal trace inside rows).
    #[test]
    fn masked_forward_and_adjoint_equal_the_full_ones_masked() {
        use crate::ops::ct::rows_mask;
        let g = Geometry::new(40, 60).unwrap();
        let r = Radon::new(g.clone()).unwrap();
        let rows = sparse_view_rows(60, 9).unwrap();
        let sparse = rows_mask(&rows, 60, g.n_det);
        let m = sparse.size();
        tch::manual_seed(3);
        let partial = Tensor::rand(m.as_slice(), (Kind::Float, Device::Cpu))
            .gt(0.3)
            .to_kind(Kind::Float)
            * &sparse;
        let x = Tensor::rand([2, 1, 40, 40], (Kind::Float, Device::Cpu));
        let y = Tensor::rand([2, 1, 60, g.n_det as i64], (Kind::Float, Device::Cpu));
        for mask in [&sparse, &partial] {
            let mask = mask.reshape([1, 1, 60, g.n_det as i64]);
            let f = r.forward_masked(&x, &mask) - r.forward(&x) * &mask;
            let a = r.adjoint_masked(&y, &mask) - r.adjoint(&(&y * &mask));
            assert!(f64::try_from(f.abs().max()).unwrap() < 1e-5);
            assert!(f64::try_from(a.abs().max()).unwrap() < 1e-4);
        }
    }
}
