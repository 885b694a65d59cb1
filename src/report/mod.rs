//! What a job tells its user: `metrics.json` (machine-readable) and `report.html` (a
//! self-contained page a clinician-scientist can read: the metric convention, a table, image
//! panels and plots).

pub mod html;
pub mod panels;
pub mod svg;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metric convention every report states (docs/metrics.md has the details).
pub const METRIC_CONVENTION: &str = "Metrics are computed per slice in the prior's model space (CT: the prior's \
HU window mapped to [0, 1], (HU - hu_min) / (hu_max - hu_min), for the shipped priors (HU + 1000) / 3000, so air is 0 \
and water 1/3; MR: intensity divided by the volume's 99.5th percentile), over the \
input's own extent, with data range = the reference slice's max - min (metal excluded for MAR). SSIM after Wang et \
al. 2004 (Gaussian window sigma 1.5, K1 0.01, K2 0.03, population covariance) equals scikit-image's \
structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False); SSIM is not invariant to an \
offset, so SSIM of HU values differs. NRMSE = ||x - ref|| / ||ref||; residual = ||A x - y|| / ||y||. Means over slices.";

/// Scores of one method over a job (means over slices; `None` where there is no reference).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MethodMetrics {
    pub psnr: Option<f64>,
    pub ssim: Option<f64>,
    pub nrmse: Option<f64>,
    /// Wall-clock seconds for this method over the whole job.
    pub seconds: f64,
    /// Data-consistency residual `|A x - y| / |y|`.
    pub residual: Option<f64>,
    /// Per-slice values, in slice order, for mean +- std summaries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub psnr_per_slice: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssim_per_slice: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nrmse_per_slice: Vec<f64>,
    /// Nearest-neighbour priors only: the mean over slices of the reconstruction's relative L2
    /// distance to its nearest reference image (near 0: the reference was returned, memorised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_reference_distance: Option<f64>,
    /// Whether the reconstruction looks like the prior's validation images (`prior::fit`);
    /// absent when the prior has no calibrated range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_fit: Option<crate::prior::fit::PriorFit>,
}

/// One point of a sweep (e.g. PSNR versus number of views).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepPoint {
    /// The swept parameter's value (views, acceleration, ...).
    pub x: f64,
    pub method: String,
    pub psnr: Option<f64>,
    pub ssim: Option<f64>,
}

/// A PNG panel written next to the report: one slice's tiles in a row, and each tile on its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Panel {
    pub file: String,
    pub caption: String,
    /// The tiles at full resolution, left to right (the report shows these, labelled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiles: Vec<TileFile>,
}

/// One tile of a panel, written as its own PNG.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TileFile {
    pub file: String,
    /// Method name with its PSNR/SSIM on the slice, or what the map shows.
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour_bar: Option<ColourBar>,
}

/// How a map of a magnitude (|error|, posterior std) is shown: black is 0, white is `top` (its
/// 99.5th percentile) and above; `max` is the map's largest value; all in `units`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColourBar {
    pub top: f64,
    pub max: f64,
    pub units: String,
}

/// The version of `metrics.json`'s layout (docs/user-guide.md, "metrics.json"): raised when a
/// field changes meaning or type, so readers can tell. Files without the field are version 1.
pub const SCHEMA_VERSION: u32 = 2;

fn schema_v1() -> u32 {
    1
}

/// Everything `metrics.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobReport {
    #[serde(default = "schema_v1")]
    pub schema_version: u32,
    pub title: String,
    pub task: String,
    pub input: String,
    /// Keyed by method name: "fbp", "fista_tv", "zero_filled", "tv", "li", "score", ...
    pub methods: BTreeMap<String, MethodMetrics>,
    /// Whether a reference image existed (false for measured data: metrics are then null).
    pub has_reference: bool,
    /// The input's slice numbers (0-based) the per-slice values refer to, in their order.
    #[serde(default)]
    pub slices: Vec<usize>,
    /// Each slice's data range in model space (the reference slice's `max - min`, metal
    /// excluded for MAR): what its PSNR and SSIM used. Empty without a reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_range_per_slice: Vec<f64>,
    /// Name of the swept parameter, when a sweep was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_parameter: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<SweepPoint>,
    pub settings: serde_json::Value,
    /// Version strings, and `cuda_available` as a boolean.
    pub versions: BTreeMap<String, serde_json::Value>,
    pub metric_convention: String,
    #[serde(default)]
    pub panels: Vec<Panel>,
    /// The grey-level window of the panels' images, in words ("soft tissue, level 40 / width 400 HU").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_window: Option<String>,
    /// Anything the user should know (warnings, what decided a TV weight, ...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Prior mismatch: methods whose reconstruction is unlike the prior's validation images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl JobReport {
    pub fn new(title: &str, task: &str, input: &str, settings: serde_json::Value) -> Self {
        JobReport {
            schema_version: SCHEMA_VERSION,
            title: title.into(),
            task: task.into(),
            input: input.into(),
            settings,
            versions: versions(),
            metric_convention: METRIC_CONVENTION.into(),
            ..Default::default()
        }
    }

    /// Flag a score-based reconstruction whose prior fit is out of range, in `warnings` and on
    /// stderr. (The baselines' values are reported too, for comparison, but are not the prior's
    /// doing: FBP streaks are unlike any training image.)
    pub fn flag_prior_mismatch(&mut self) {
        for (name, m) in self.methods.iter().filter(|(n, _)| n.as_str() == "score") {
            if let Some(f) = m.prior_fit.as_ref().filter(|f| !f.in_range) {
                let w = format!(
                    "prior mismatch: the {name} reconstruction is unlike the prior's validation \
                     images (prior-fit statistic {:.3} on its worst slice, validation limit {:.3}); \
                     the prior may be inventing structure: compare with the classical baselines \
                     and use a prior trained on scans like this one",
                    f.worst, f.limit
                );
                eprintln!("warning: {} ({})", w, self.input);
                self.warnings.push(w);
            }
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }
}

/// Versions of everything that can change a result.
pub fn versions() -> BTreeMap<String, serde_json::Value> {
    let mut v = BTreeMap::new();
    v.insert("scorerecon".into(), crate::version().into());
    v.insert("libtorch".into(), "2.11.0".into());
    v.insert("tch".into(), "0.24".into());
    v.insert("cuda_available".into(), tch::Cuda::is_available().into());
    v
}

/// Mean and sample standard deviation (n - 1); std is 0 for fewer than two values.
pub fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_matches_closed_form() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(m, 2.5);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[7.0]), Some((7.0, 0.0)));
        assert_eq!(mean_std(&[]), None);
    }

    #[test]
    fn metrics_json_has_methods_object_with_null_without_reference() {
        let mut r = JobReport::new("t", "ct", "in.nii", serde_json::json!({"views": 23}));
        r.methods.insert(
            "fbp".into(),
            MethodMetrics {
                seconds: 0.5,
                ..Default::default()
            },
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert!(v["versions"]["cuda_available"].is_boolean());
        assert!(v["methods"]["fbp"]["psnr"].is_null());
        assert_eq!(v["methods"]["fbp"]["seconds"], 0.5);
        assert_eq!(v["settings"]["views"], 23);
    }

    #[test]
    fn metrics_json_of_schema_1_still_reads() {
        // Written before schema_version existed (a resumed batch reads such files).
        let old = r#"{"title": "t", "task": "ct", "input": "in.nii", "methods": {},
            "has_reference": true, "settings": {}, "metric_convention": "",
            "versions": {"scorerecon": "0.1.0", "cuda_available": "false"}}"#;
        let r: JobReport = serde_json::from_str(old).unwrap();
        assert_eq!(r.schema_version, 1);
        assert_eq!(r.versions["cuda_available"], "false");
        assert!(r.slices.is_empty() && r.data_range_per_slice.is_empty());
    }
}
