//! Exponential moving average of the weights (paper 004, chapter 7: 0.999 for the VE SDE); the
//! averaged weights are the ones written for sampling.
//!
//! Update after every optimiser step, as in the authors' code (`ExponentialMovingAverage` with
//! `use_num_updates`): with `n` updates done before this one,
//!
//! `d = min(decay, (1 + n) / (10 + n))`,  `shadow <- d shadow + (1 - d) theta`.
//!
//! The `(1 + n) / (10 + n)` warm-up lets the average forget the random initialisation in short
//! runs; after a few thousand updates `d` is `decay`.

use std::collections::BTreeMap;
use tch::{nn::VarStore, Tensor};

pub struct Ema {
    pub decay: f64,
    /// Updates done so far (`n`).
    pub num_updates: u64,
    /// Averaged copy of every variable, by VarStore name.
    pub shadow: BTreeMap<String, Tensor>,
}

impl Ema {
    /// Start the average at the current weights.
    pub fn new(vs: &VarStore, decay: f64) -> Self {
        let shadow = tch::no_grad(|| {
            vs.variables()
                .into_iter()
                .map(|(k, v)| (k, v.detach().copy()))
                .collect()
        });
        Ema {
            decay,
            num_updates: 0,
            shadow,
        }
    }

    /// The decay the next update uses.
    pub fn current_decay(&self) -> f64 {
        let n = self.num_updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// `shadow <- d shadow + (1 - d) theta` for every variable.
    pub fn update(&mut self, vs: &VarStore) {
        let d = self.current_decay();
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, s) in self.shadow.iter_mut() {
                let theta = &vars[name];
                // s = d s + (1 - d) theta, in place.
                let _ = s.g_mul_(&Tensor::from(d));
                let _ = s.g_add_(&(theta.detach() * (1.0 - d)));
            }
        });
        self.num_updates += 1;
    }

    /// Run `f` with the averaged weights in the VarStore, then put the trained weights back.
    pub fn with_weights<T>(&self, vs: &VarStore, f: impl FnOnce() -> T) -> T {
        let vars = vs.variables();
        let saved: BTreeMap<String, Tensor> = tch::no_grad(|| {
            vars.iter()
                .map(|(k, v)| (k.clone(), v.detach().copy()))
                .collect()
        });
        tch::no_grad(|| {
            for (k, v) in vars.iter() {
                let mut v = v.shallow_clone();
                v.copy_(&self.shadow[k]);
            }
        });
        let out = f();
        tch::no_grad(|| {
            for (k, v) in vars.iter() {
                let mut v = v.shallow_clone();
                v.copy_(&saved[k]);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn update_matches_its_formula() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0, 4.0]));
        let mut ema = Ema::new(&vs, 0.999);
        let mut expect = vec![1.0f64, -2.0, 4.0];
        let mut theta = vec![1.0f64, -2.0, 4.0];
        for n in 0..30u64 {
            // Move the weights, then average; the expected value is computed in f64 by hand.
            theta = theta.iter().map(|t| t * 0.9 + 0.5).collect();
            tch::no_grad(|| {
                let mut w = w.shallow_clone();
                w.copy_(&Tensor::from_slice(&theta).to_kind(Kind::Float));
            });
            let d = (0.999f64).min((1.0 + n as f64) / (10.0 + n as f64));
            assert_eq!(ema.current_decay(), d);
            ema.update(&vs);
            let theta32: Vec<f64> = theta.iter().map(|t| *t as f32 as f64).collect();
            expect = expect
                .iter()
                .zip(&theta32)
                .map(|(e, t)| d * e + (1.0 - d) * t)
                .collect();
        }
        let got = Vec::<f32>::try_from(&ema.shadow["w"]).unwrap();
        for (g, e) in got.iter().zip(&expect) {
            assert!((*g as f64 - e).abs() < 1e-5, "{got:?} vs {expect:?}");
        }
        // with_weights swaps the average in and the trained weights back.
        let inside = ema.with_weights(&vs, || Vec::<f32>::try_from(&w.detach()).unwrap());
        assert_eq!(inside, got);
        let after = Vec::<f32>::try_from(&w.detach()).unwrap();
        assert!((after[0] as f64 - theta[0]).abs() < 1e-6);
    }
}
