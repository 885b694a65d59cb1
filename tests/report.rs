//! `report.html` and the batch's `summary.html` as a reader gets them: one self-contained file
//! (no external references, every image a data URI), a label on every tile, the display window
//! stated, and colour bars whose numbers numpy recomputes from the written NIfTI outputs.

mod common;

use common::{bin, min_pc, run_python, setup};
use std::path::Path;

/// Every way a page could pull something from elsewhere; and each `src=` must be a data URI.
fn assert_self_contained(html: &str, what: &str) {
    for bad in [
        "src=\"http",
        "href=\"http",
        "<link",
        "url(http",
        "src='http",
        "@import",
    ] {
        assert!(!html.contains(bad), "{what} refers outside itself: {bad}");
    }
    let srcs: Vec<&str> = html.split("src=\"").skip(1).collect();
    assert!(!srcs.is_empty(), "{what} has no images");
    for s in srcs {
        assert!(
            s.starts_with("data:image/png;base64,"),
            "{what}: an image is not a data URI: {}",
            &s[..s.len().min(60)]
        );
    }
}

/// The numbers inside `<span class="{class}">NUMBER ...</span>`, in page order.
fn spans(html: &str, class: &str) -> Vec<f64> {
    html.split(&format!("<span class=\"{class}\">"))
        .skip(1)
        .map(|s| {
            s.split([' ', '<'])
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|e| panic!("{class}: {s:.40}: {e}"))
        })
        .collect()
}

/// 99.5th percentile and maximum of |score - reference| and of the posterior std, by numpy on
/// the NIfTI outputs (HU).
fn numpy_maps(dir: &Path) -> Vec<f64> {
    let script = r#"
import sys, numpy as np, nibabel as nib
d = sys.argv[1]
load = lambda f: np.asarray(nib.load(d + "/" + f).dataobj, dtype=np.float64)[:, :, 0]
err = np.abs(load("score.nii.gz") - load("reference.nii.gz"))
std = load("score_std.nii.gz")
print(np.percentile(err, 99.5), err.max(), np.percentile(std, 99.5), std.max())
"#;
    run_python(script, &[dir.to_str().unwrap()])
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    // Four significant digits on the page.
    assert!(
        (a - b).abs() <= 1e-3 * b.abs().max(1e-3),
        "{what}: page says {a}, numpy {b}"
    );
}

#[test]
fn report_is_self_contained_with_labelled_tiles_window_and_colour_bars() {
    let case = setup("CT");
    let root = case.root.as_path();
    let out = root.join("out");
    let o = bin()
        .args([
            "ct",
            "--input",
            root.join("scan.nii.gz").to_str().unwrap(),
            "--slice",
            "10",
            "--views",
            "12",
            "--model",
            &format!("empirical:{}", root.join("refs").display()),
            "--steps",
            &min_pc(),
            "--baselines",
            "fbp",
            "--samples",
            "2",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_self_contained(&html, "report.html");

    // Reference, fbp, score, |error|, std: five tiles, each with its own label; the methods'
    // labels carry this slice's PSNR/SSIM from metrics.json.
    let tiles = html.matches("<figure class=\"tile\">").count();
    let labels: Vec<&str> = html
        .split("<figcaption class=\"label\">")
        .skip(1)
        .map(|s| s.split("</figcaption>").next().unwrap())
        .collect();
    assert_eq!(tiles, 5, "tiles");
    assert_eq!(labels.len(), tiles, "a label per tile");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for method in ["fbp", "score"] {
        let e = &m["methods"][method];
        let want = format!(
            "{method} {:.2} dB SSIM {:.4}",
            e["psnr"].as_f64().unwrap(),
            e["ssim"].as_f64().unwrap()
        );
        assert!(labels.contains(&want.as_str()), "{want} not in {labels:?}");
    }
    assert!(labels[0] == "reference" && labels[3].starts_with("|score - reference|"));
    // Every tile at full resolution (64 px shown 256 wide, a whole-pixel zoom) and enlargeable.
    assert_eq!(html.matches("width=\"256\"").count(), tiles);
    assert!(html.contains("id=\"lb\"") && html.contains("click to enlarge"));
    assert!(html.contains("Display window: soft tissue, level 40 HU / width 400 HU"));
    assert!(html.contains("docs/results.md"));

    // Colour bars of |error| then std: white at the 99.5th percentile, and the maximum, in HU.
    let (top, peak) = (spans(&html, "cbar-max"), spans(&html, "cbar-peak"));
    assert_eq!((top.len(), peak.len()), (2, 2));
    assert_eq!(html.matches("<span class=\"cbar-min\">0</span>").count(), 2);
    assert_eq!(html.matches(" HU</span>").count(), 2);
    let np = numpy_maps(&out);
    close(top[0], np[0], "|error| 99.5th percentile");
    close(peak[0], np[1], "|error| max");
    close(top[1], np[2], "std 99.5th percentile");
    close(peak[1], np[3], "std max");
}

#[test]
fn batch_summary_has_a_thumbnail_and_the_scores_of_every_job() {
    let case = setup("CT");
    let root = case.root.as_path();
    let model = format!("empirical:{}", root.join("refs").display());
    let manifest = root.join("batch.yaml");
    std::fs::write(
        &manifest,
        format!(
            "defaults: {{task: ct, model: '{model}', steps: {}, views: 12, baselines: [fbp], device: cpu}}\njobs:\n  - {{name: a, input: scan.nii.gz, slices: [4]}}\n  - {{name: b, input: scan.nii.gz, slices: [12]}}\n",
            min_pc()
        ),
    )
    .unwrap();
    let out = root.join("batch-out");
    let o = bin()
        .args([
            "batch",
            manifest.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(out.join("summary.html")).unwrap();
    assert_self_contained(&html, "summary.html");
    assert_eq!(html.matches("<img class=\"thumb\"").count(), 2);
    for job in ["a", "b"] {
        assert!(html.contains(&format!("href=\"{job}/report.html\"")));
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(job).join("metrics.json")).unwrap(),
        )
        .unwrap();
        for method in ["fbp", "score"] {
            let e = &m["methods"][method];
            let row = format!(
                "<td class=\"m\">{method}</td><td>{:.2}</td><td>{:.4}</td>",
                e["psnr"].as_f64().unwrap(),
                e["ssim"].as_f64().unwrap()
            );
            assert!(html.contains(&row), "{job}: {row} missing");
        }
    }
    assert!(html.contains("docs/results.md"));
}

#[test]
fn a_chosen_window_is_stated_and_mri_has_none_to_choose() {
    let case = setup("CT");
    let root = case.root.as_path();
    let out = root.join("out");
    let model = format!("empirical:{}", root.join("refs").display());
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "--input",
            root.join("scan.nii.gz").to_str().unwrap(),
            "--slice",
            "10",
            "--model",
            &model,
            "--steps",
            &min_pc(),
            "--baselines",
            "fbp",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let o = bin()
        .arg("ct")
        .args(args(&["--window", "brain"]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("Display window: brain, level 40 HU / width 80 HU (0 to 80 HU)"),
        "window not stated"
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["settings"]["window"], "brain");
    // MR tiles are windowed on the data (percentiles): a CT preset is refused before any work.
    let o = bin()
        .arg("mri")
        .args(args(&["--window", "brain", "--force"]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
