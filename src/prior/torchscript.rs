//! A score model trained in PyTorch and saved with `torch.jit.script` / `torch.jit.trace`.
//!
//! Convention (docs/models.md): `forward(x: float32[B, C, H, W], sigma: float32[B]) -> score
//! float32[B, C, H, W]`, all in model space, the output already divided by sigma where the
//! network is built that way, i.e. the module returns `grad_x log p_sigma(x)` itself. The
//! sidecar `model.json` (same stem) gives the SDE, image size, channels and normalisation with
//! `"architecture": {"kind": "torchscript"}`.

use super::metadata::{Architecture, PriorMetadata};
use super::{Normalisation, ScoreModel};
use crate::sde::VeSde;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{CModule, Device, Kind, Tensor};

pub struct TorchScriptPrior {
    module: CModule,
    meta: PriorMetadata,
    device: Device,
    source: String,
}

impl TorchScriptPrior {
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let meta = PriorMetadata::read(&PriorMetadata::sidecar_path(path))?;
        if meta.architecture != Architecture::Torchscript {
            bail!(
                "{}: its sidecar describes a {} model, expected {{\"kind\": \"torchscript\"}}: a .pt file needs a torchscript sidecar (docs/models.md)",
                path.display(),
                meta.architecture.kind()
            );
        }
        let mut module = CModule::load_on_device(path, device).with_context(|| {
            format!(
                "{}: not a TorchScript module (save it with torch.jit.script(model).save(path))",
                path.display()
            )
        })?;
        module.set_eval();
        let prior = TorchScriptPrior {
            module,
            meta,
            device,
            source: path.display().to_string(),
        };
        // One probe evaluation, so a module that breaks the convention fails here with its
        // name, not half-way through sampling.
        let [h, w] = prior.meta.image_size;
        let x = Tensor::zeros([1, prior.meta.channels, h, w], (Kind::Float, device));
        let sigma = Tensor::full([1], prior.meta.sde.sigma_max, (Kind::Float, device));
        let _probe = prior
            .score(&x, &sigma)
            .with_context(|| format!("{}: probe evaluation failed", path.display()))?;
        Ok(prior)
    }
}

impl ScoreModel for TorchScriptPrior {
    fn score(&self, x: &Tensor, sigma: &Tensor) -> Result<Tensor> {
        let x = x.to_kind(Kind::Float);
        let sigma = sigma.to_kind(Kind::Float).reshape([-1]);
        let out = tch::no_grad(|| self.module.forward_ts(&[&x, &sigma])).with_context(|| {
            format!(
                "{}: forward(x {:?}, sigma {:?}) failed; the convention is \
                 forward(x: float[B,C,H,W], sigma: float[B]) -> float[B,C,H,W]",
                self.source,
                x.size(),
                sigma.size()
            )
        })?;
        if out.size() != x.size() {
            bail!(
                "{}: returned a {:?} tensor for input {:?}; a score model must return the \
                 input's shape",
                self.source,
                out.size(),
                x.size()
            );
        }
        Ok(out.to_kind(Kind::Float))
    }
    fn image_size(&self) -> [i64; 2] {
        self.meta.image_size
    }
    fn channels(&self) -> i64 {
        self.meta.channels
    }
    fn sde(&self) -> VeSde {
        self.meta.sde
    }
    fn normalisation(&self) -> &Normalisation {
        &self.meta.normalisation
    }
    fn device(&self) -> Device {
        self.device
    }
    fn fit_range(&self) -> Option<&super::fit::FitRange> {
        self.meta.prior_fit.as_ref()
    }
    fn pixel_mm(&self) -> Option<f64> {
        self.meta.pixel_mm
    }
    fn describe(&self) -> String {
        format!("TorchScript score model {}", self.source)
    }
}
