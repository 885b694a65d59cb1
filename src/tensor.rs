//! The bridge between `Volume` slices (host f32) and batched tch tensors `[B, 1, H, W]`.
//! Data crosses through plain slices (tch and nifti use different ndarray versions).

use crate::volume::Volume;
use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

/// Slices `ks` of frame 0 as a `[len(ks), 1, ny, nx]` f32 tensor on `device`.
pub fn slices_to_tensor(vol: &Volume, ks: &[usize], device: Device) -> Result<Tensor> {
    let (nx, ny) = (vol.nx(), vol.ny());
    let mut buf = Vec::with_capacity(ks.len() * nx * ny);
    for &k in ks {
        if k >= vol.nz() {
            bail!(
                "slice {k} is out of range: the volume has {} slices (0..{})",
                vol.nz(),
                vol.nz().saturating_sub(1)
            );
        }
        buf.extend_from_slice(vol.slice(k, 0));
    }
    Ok(Tensor::from_slice(&buf)
        .reshape([ks.len() as i64, 1, ny as i64, nx as i64])
        .to_device(device))
}

/// A real `[B, 1, H, W]` (or `[H, W]`) tensor back to host f32, row major.
pub fn tensor_to_vec(t: &Tensor) -> Vec<f32> {
    let t = if t.is_complex() {
        t.real()
    } else {
        t.shallow_clone()
    };
    Vec::<f32>::try_from(
        t.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .flatten(0, -1),
    )
    .expect("a float tensor converts to Vec<f32>")
}

/// Centred zero-padding of `h x w` images to `mh x mw` (a prior's grid: `--fit pad`, the
/// averaging down of `--fit resample`, `simulate --pad-to`), and the crop back; the identity
/// when the sizes agree.
#[derive(Clone, Copy, Debug)]
pub struct Padding {
    /// The images' size.
    pub h: usize,
    pub w: usize,
    /// The padded size (at least the images').
    pub mh: usize,
    pub mw: usize,
}

impl Padding {
    /// No padding: the slices are the model's size.
    pub fn none(h: usize, w: usize) -> Self {
        Padding { h, w, mh: h, mw: w }
    }

    pub fn is_identity(&self) -> bool {
        (self.h, self.w) == (self.mh, self.mw)
    }

    fn offsets(&self) -> (i64, i64) {
        (
            ((self.mh - self.h) / 2) as i64,
            ((self.mw - self.w) / 2) as i64,
        )
    }

    /// `[B, 1, h, w]` -> `[B, 1, mh, mw]`.
    pub fn pad(&self, x: &Tensor) -> Tensor {
        let (top, left) = self.offsets();
        let (bottom, right) = (
            self.mh as i64 - self.h as i64 - top,
            self.mw as i64 - self.w as i64 - left,
        );
        if top == 0 && left == 0 && bottom == 0 && right == 0 {
            return x.shallow_clone();
        }
        x.constant_pad_nd([left, right, top, bottom])
    }

    /// `[B, 1, mh, mw]` -> `[B, 1, h, w]`.
    pub fn crop(&self, x: &Tensor) -> Tensor {
        let (top, left) = self.offsets();
        x.narrow(2, top, self.h as i64)
            .narrow(3, left, self.w as i64)
    }
}

/// Where tensors live: `cpu`, `cuda` (an error when absent) or `auto` (CUDA when present).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

crate::names::named!(DeviceChoice, "--device", { Auto => "auto", Cpu => "cpu", Cuda => "cuda" });

impl DeviceChoice {
    /// The device on this machine.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => bail!("--device cuda: no CUDA device is available on this machine (use --device cpu or auto)"),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        }
    }
}

/// Pick the device by name (`cpu`, `cuda`, `auto`).
pub fn parse_device(name: &str) -> Result<Device> {
    name.parse::<DeviceChoice>()?.resolve()
}
