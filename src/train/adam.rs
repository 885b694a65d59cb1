//! Adam with linear warm-up and global gradient-norm clipping, written on the VarStore's tensors
//! because tch's `nn::Optimizer` keeps its moments inside libtorch where they cannot be saved,
//! and a resumed run must continue with the same moments (checkpoint.rs).
//!
//! Same arithmetic as `torch.optim.Adam` (Kingma & Ba, Algorithm 1, bias-corrected) and
//! `torch.nn.utils.clip_grad_norm_`; tests/train.rs compares the two step by step.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use tch::{nn::VarStore, Kind, Tensor};

pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken (`t` of the bias correction).
    pub t: u64,
    /// First and second moments by VarStore name.
    pub m: BTreeMap<String, Tensor>,
    pub v: BTreeMap<String, Tensor>,
}

impl Adam {
    pub fn new(vs: &VarStore, beta1: f64, beta2: f64, eps: f64) -> Self {
        let zeros = || -> BTreeMap<String, Tensor> {
            vs.trainable_variables_named()
                .into_iter()
                .map(|(k, v)| (k, v.zeros_like().detach()))
                .collect()
        };
        Adam {
            beta1,
            beta2,
            eps,
            t: 0,
            m: zeros(),
            v: zeros(),
        }
    }

    /// The learning rate of step `step` (1-based): linear warm-up over `warmup` steps, as the
    /// authors' `optimization_manager` (`lr * min(step / warmup, 1)`).
    pub fn scheduled_lr(lr: f64, warmup: u64, step: u64) -> f64 {
        if warmup == 0 {
            lr
        } else {
            lr * (step as f64 / warmup as f64).min(1.0)
        }
    }

    /// Scale the gradients so their global L2 norm is at most `max_norm` (0: no clipping).
    /// Returns the norm before clipping. Non-finite norms are an error: the step is refused.
    pub fn clip_grad_norm(vs: &VarStore, max_norm: f64) -> Result<f64> {
        let grads: Vec<Tensor> = vs
            .trainable_variables()
            .iter()
            .map(|v| v.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return Ok(0.0);
        }
        let total = tch::no_grad(|| {
            Tensor::stack(
                &grads
                    .iter()
                    .map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double))
                    .collect::<Vec<_>>(),
                0,
            )
            .sum(Kind::Double)
            .sqrt()
            .double_value(&[])
        });
        if !total.is_finite() {
            bail!("the gradient norm is {total}: the loss diverged (lower lr or check the data)");
        }
        if max_norm > 0.0 {
            // torch.nn.utils.clip_grad_norm_: coef = max / (norm + 1e-6), applied when < 1.
            let coef = max_norm / (total + 1e-6);
            if coef < 1.0 {
                tch::no_grad(|| {
                    for g in grads.iter() {
                        let mut g = g.shallow_clone();
                        let _ = g.g_mul_(&Tensor::from(coef));
                    }
                });
            }
        }
        Ok(total)
    }

    /// One Adam step with learning rate `lr` on every trainable variable with a gradient.
    pub fn step(&mut self, vs: &VarStore, lr: f64) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        tch::no_grad(|| {
            for (name, p) in vs.trainable_variables_named() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let m = self.m.get_mut(&name).expect("moment for every variable");
                let v = self.v.get_mut(&name).expect("moment for every variable");
                // m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
                *m = &*m * self.beta1 + &g * (1.0 - self.beta1);
                *v = &*v * self.beta2 + g.square() * (1.0 - self.beta2);
                // p <- p - lr (m / bc1) / (sqrt(v / bc2) + eps)
                let denom = (&*v / bc2).sqrt() + self.eps;
                let update = (&*m / bc1) / denom * lr;
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&update);
            }
        });
    }

    /// Forget the gradients of every trainable variable.
    pub fn zero_grad(vs: &VarStore) {
        for mut v in vs.trainable_variables() {
            v.zero_grad();
        }
    }
}

/// Named trainable variables in a stable order.
pub trait NamedVariables {
    fn trainable_variables_named(&self) -> Vec<(String, Tensor)>;
}

impl NamedVariables for VarStore {
    fn trainable_variables_named(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
