//! Checkpoints: everything a run needs to continue as if it had never stopped.
//!
//! A checkpoint is a folder `NAME.ckpt/` holding `state.safetensors` (the weights as `model.*`,
//! their moving average as `ema.*`, Adam's moments as `adam_m.*` / `adam_v.*`) and `state.json`
//! (step, Adam's step count, EMA update count, the random stream's seed, sigma_max and the
//! whole config). The folder is replaced atomically (`io::atomic::write_dir`), so a kill during a
//! save leaves the previous checkpoint whole.
//!
//! RNG state: every random draw of step `k` (batch, crops, flips, `t`, `z`) comes from a ChaCha20
//! stream seeded with `(seed, k)` (`mod.rs`, `step_rng`), and libtorch's own generator (dropout)
//! is reseeded from it at each step. The state to save is therefore `(seed, step)`.

use super::adam::Adam;
use super::config::TrainConfig;
use super::ema::Ema;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn::VarStore, Tensor};

/// Bumped when the layout changes; older checkpoints are refused with a clear message.
pub const CHECKPOINT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    pub version: u32,
    /// Steps completed.
    pub step: u64,
    pub adam_t: u64,
    pub ema_updates: u64,
    /// The seed of the per-step random streams.
    pub seed: u64,
    /// The noise range the run trains for (estimated once, then fixed).
    pub sigma_max: f64,
    pub config: TrainConfig,
}

/// Write the checkpoint folder `dir` (replacing the previous one).
pub fn save(
    dir: &Path,
    vs: &VarStore,
    ema: &Ema,
    adam: &Adam,
    state: &CheckpointState,
) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = Vec::new();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in vars {
        named.push((format!("model.{k}"), v.detach()));
    }
    for (k, v) in &ema.shadow {
        named.push((format!("ema.{k}"), v.shallow_clone()));
    }
    for (k, v) in &adam.m {
        named.push((format!("adam_m.{k}"), v.shallow_clone()));
    }
    for (k, v) in &adam.v {
        named.push((format!("adam_v.{k}"), v.shallow_clone()));
    }
    let json = serde_json::to_string_pretty(state)?;
    crate::io::atomic::write_dir(dir, true, |tmp| {
        let named: Vec<(String, Tensor)> = named
            .iter()
            .map(|(k, v)| (k.clone(), v.to_device(tch::Device::Cpu)))
            .collect();
        Tensor::write_safetensors(&named, tmp.join("state.safetensors"))
            .with_context(|| format!("{}: cannot write the checkpoint tensors", dir.display()))?;
        std::fs::write(tmp.join("state.json"), json.as_bytes())
            .with_context(|| format!("{}: cannot write the checkpoint state", dir.display()))
    })
}

/// Read the checkpoint in `dir` into `vs`, `ema` and `adam` (already built for the same model)
/// and return its state.
pub fn load(dir: &Path, vs: &VarStore, ema: &mut Ema, adam: &mut Adam) -> Result<CheckpointState> {
    let json_path = dir.join("state.json");
    let text = std::fs::read_to_string(&json_path).with_context(|| {
        format!(
            "{}: no checkpoint to resume from (run without --resume to start a new run)",
            dir.display()
        )
    })?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid checkpoint state", json_path.display()))?;
    if state.version != CHECKPOINT_VERSION {
        bail!(
            "{}: checkpoint version {} is not supported (expected {CHECKPOINT_VERSION})",
            dir.display(),
            state.version
        );
    }
    let tensors = Tensor::read_safetensors(dir.join("state.safetensors"))
        .with_context(|| format!("{}: cannot read the checkpoint tensors", dir.display()))?;
    let mut by_name: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    let mut take = |key: String, shape: Vec<i64>| -> Result<Tensor> {
        let t = by_name.remove(&key).with_context(|| {
            format!(
                "{}: `{key}` is missing: the checkpoint is of another model",
                dir.display()
            )
        })?;
        if t.size() != shape {
            bail!(
                "{}: `{key}` has shape {:?}, the model needs {:?}: the checkpoint is of another model",
                dir.display(),
                t.size(),
                shape
            );
        }
        Ok(t)
    };
    let device = vs.device();
    tch::no_grad(|| -> Result<()> {
        for (k, v) in vs.variables() {
            let t = take(format!("model.{k}"), v.size())?;
            let mut v = v.shallow_clone();
            v.copy_(&t);
        }
        for (k, s) in ema.shadow.iter_mut() {
            *s = take(format!("ema.{k}"), s.size())?.to_device(device);
        }
        for (k, m) in adam.m.iter_mut() {
            *m = take(format!("adam_m.{k}"), m.size())?.to_device(device);
        }
        for (k, v) in adam.v.iter_mut() {
            *v = take(format!("adam_v.{k}"), v.size())?.to_device(device);
        }
        Ok(())
    })?;
    adam.t = state.adam_t;
    ema.num_updates = state.ema_updates;
    Ok(state)
}
