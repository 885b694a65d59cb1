//! `report.html`: one self-contained page per job (images embedded as data URIs, plots as inline
//! SVG), so it can be mailed or archived without the folder around it.

use super::svg::{escape, line_plot, Series};
use super::{mean_std, JobReport};
use base64::Engine;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:24px auto;padding:0 16px;color:#222}\
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\
th{background:#f3f3f3}.warning{background:#fdecea;border-left:6px solid #c62828;padding:8px 12px}td:first-child,th:first-child{text-align:left}.best{font-weight:bold}\
figure{display:inline-block;margin:8px}figcaption{font-size:13px;color:#555;max-width:900px}\
.note{background:#fff8e0;border-left:4px solid #e0b000;padding:6px 10px;margin:6px 0}\
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}";

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "n/a".into())
}

/// Render a job's report; `dir` is where the job's panels were written (they are embedded).
pub fn render_job(r: &JobReport, dir: &Path) -> String {
    let mut h = String::new();
    let _ = write!(h, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>", escape(&r.title));
    let _ = write!(
        h,
        "<h1>{}</h1><p>Task <b>{}</b> on <code>{}</code>.</p>",
        escape(&r.title),
        escape(&r.task),
        escape(&r.input)
    );
    for w in &r.warnings {
        let _ = write!(h, "<p class=\"warning\"><b>Warning:</b> {}</p>", escape(w));
    }
    if !r.has_reference {
        h.push_str("<p class=\"note\">No reference image: the input was a measurement, so PSNR/SSIM/NRMSE are not defined; only the data-consistency residual is reported.</p>");
    }
    for n in &r.notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", escape(n));
    }
    h.push_str(&methods_table(r));
    let _ = write!(h, "<p><small>{}</small></p>", escape(&r.metric_convention));
    if !r.sweep.is_empty() {
        let param = r
            .sweep_parameter
            .clone()
            .unwrap_or_else(|| "parameter".into());
        for (metric, pick) in [("PSNR (dB)", 0usize), ("SSIM", 1)] {
            let mut by: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
            for p in &r.sweep {
                let v = if pick == 0 { p.psnr } else { p.ssim };
                if let Some(v) = v {
                    by.entry(p.method.as_str()).or_default().push((p.x, v));
                }
            }
            let series: Vec<Series> = by
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series {
                        name: k.to_string(),
                        points: v,
                    }
                })
                .collect();
            h.push_str(&line_plot(
                &format!("{metric} versus {param}"),
                &param,
                metric,
                &series,
                false,
            ));
        }
    }
    for p in &r.panels {
        let data = std::fs::read(dir.join(&p.file)).ok();
        match data {
            Some(bytes) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                let _ = write!(h, "<figure><img src=\"data:image/png;base64,{b64}\" alt=\"{}\"><figcaption>{}</figcaption></figure>", escape(&p.file), escape(&p.caption));
            }
            None => {
                let _ = write!(
                    h,
                    "<p class=\"note\">panel {} is missing</p>",
                    escape(&p.file)
                );
            }
        }
    }
    let _ = write!(
        h,
        "<h2>Settings</h2><pre>{}</pre>",
        escape(&serde_json::to_string_pretty(&r.settings).unwrap_or_default())
    );
    let _ = write!(
        h,
        "<h2>Versions</h2><pre>{}</pre>",
        escape(&serde_json::to_string_pretty(&r.versions).unwrap_or_default())
    );
    h.push_str("</body></html>");
    h
}

fn methods_table(r: &JobReport) -> String {
    let best_psnr = r
        .methods
        .values()
        .filter_map(|m| m.psnr)
        .fold(f64::NEG_INFINITY, f64::max);
    let best_ssim = r
        .methods
        .values()
        .filter_map(|m| m.ssim)
        .fold(f64::NEG_INFINITY, f64::max);
    let fit_col = r.methods.values().any(|m| m.prior_fit.is_some());
    let mut t = String::from("<table><tr><th>method</th><th>PSNR (dB)</th><th>SSIM</th><th>NRMSE</th><th>residual |Ax-y|/|y|</th><th>seconds</th>");
    if fit_col {
        t.push_str("<th>prior fit (limit)</th>");
    }
    t.push_str("</tr>");
    for (name, m) in &r.methods {
        let cls = |v: Option<f64>, best: f64| {
            if v == Some(best) {
                " class=\"best\""
            } else {
                ""
            }
        };
        let ps = match mean_std(&m.psnr_per_slice) {
            Some((mu, sd)) if m.psnr_per_slice.len() > 1 => format!("{mu:.2} &plusmn; {sd:.2}"),
            _ => fmt_opt(m.psnr, 2),
        };
        let ss = match mean_std(&m.ssim_per_slice) {
            Some((mu, sd)) if m.ssim_per_slice.len() > 1 => format!("{mu:.4} &plusmn; {sd:.4}"),
            _ => fmt_opt(m.ssim, 4),
        };
        let _ = write!(
            t,
            "<tr><td>{}</td><td{}>{ps}</td><td{}>{ss}</td><td>{}</td><td>{}</td><td>{:.2}</td>",
            escape(name),
            cls(m.psnr, best_psnr),
            cls(m.ssim, best_ssim),
            fmt_opt(m.nrmse, 4),
            m.residual
                .map(|x| format!("{x:.2e}"))
                .unwrap_or_else(|| "n/a".into()),
            m.seconds
        );
        if fit_col {
            let cell = match &m.prior_fit {
                Some(f) => format!(
                    "{:.3} ({:.3}){}",
                    f.worst,
                    f.limit,
                    if f.in_range { "" } else { " out of range" }
                ),
                None => "n/a".into(),
            };
            let _ = write!(t, "<td>{cell}</td>");
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

/// A summary page over many jobs (a batch): mean +- std per method, and one row per job.
pub fn render_summary(title: &str, rows: &[(String, Result<JobReport, String>)]) -> String {
    let mut h = String::new();
    let _ = write!(h, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>", escape(title), escape(title));
    let ok = rows.iter().filter(|r| r.1.is_ok()).count();
    let _ = write!(h, "<p>{ok} of {} jobs finished.</p>", rows.len());
    // Per method: PSNR, SSIM and seconds over the finished jobs.
    type Columns = (Vec<f64>, Vec<f64>, Vec<f64>);
    let mut per: BTreeMap<String, Columns> = BTreeMap::new();
    for (_, r) in rows {
        if let Ok(r) = r {
            for (m, v) in &r.methods {
                let e = per.entry(m.clone()).or_default();
                if let Some(p) = v.psnr {
                    e.0.push(p);
                }
                if let Some(s) = v.ssim {
                    e.1.push(s);
                }
                e.2.push(v.seconds);
            }
        }
    }
    h.push_str("<h2>Mean &plusmn; std over jobs</h2><table><tr><th>method</th><th>jobs</th><th>PSNR (dB)</th><th>SSIM</th><th>seconds</th></tr>");
    for (m, (p, s, sec)) in &per {
        let f = |v: &[f64], d: usize| {
            mean_std(v)
                .map(|(a, b)| format!("{a:.d$} &plusmn; {b:.d$}"))
                .unwrap_or_else(|| "n/a".into())
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(m),
            sec.len(),
            f(p, 2),
            f(s, 4),
            f(sec, 2)
        );
    }
    h.push_str("</table><h2>Jobs</h2><table><tr><th>job</th><th>status</th><th>methods</th></tr>");
    for (name, r) in rows {
        match r {
            Ok(r) => {
                let ms: Vec<String> = r
                    .methods
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}: {} dB / {}", fmt_opt(v.psnr, 2), fmt_opt(v.ssim, 4))
                    })
                    .collect();
                let _ = write!(h, "<tr><td><a href=\"{0}/report.html\">{0}</a></td><td>done</td><td>{1}</td></tr>", escape(name), escape(&ms.join("; ")));
            }
            Err(e) => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>failed</td><td>{}</td></tr>",
                    escape(name),
                    escape(e)
                );
            }
        }
    }
    h.push_str(&format!(
        "</table><p><small>{}</small></p></body></html>",
        escape(super::METRIC_CONVENTION)
    ));
    h
}

/// The demo's index page: a link per case with its PSNRs, and what the demo shows.
pub fn render_demo_index(reports: &[(String, String, JobReport)]) -> String {
    let mut h = String::from("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>scorerecon demo</title></head><body style=\"font-family:sans-serif;max-width:900px;margin:24px auto\"><h1>scorerecon demo</h1><ul>");
    for (dir, title, r) in reports {
        let best: Vec<String> = r
            .methods
            .iter()
            .map(|(k, m)| {
                format!(
                    "{k}: {} dB",
                    m.psnr
                        .map(|p| format!("{p:.2}"))
                        .unwrap_or_else(|| "n/a".into())
                )
            })
            .collect();
        h.push_str(&format!(
            "<li><a href=\"{dir}/report.html\">{}</a> &mdash; {}</li>",
            escape(title),
            escape(&best.join(", "))
        ));
    }
    h.push_str("</ul><p>Priors: the shipped NCSN++ models ct_body_128 and mri_head_128 (model cards in models/), \
trained across subjects; each reconstructed scan is of a person the prior never trained on (its validation subject). \
The scans are put on the priors' grids (RAS+ axis order, 2.5 mm and 2 mm pixels, 128x128). TV weights of the baselines \
are tuned on a validation slice (maximum SSIM). Means over slices of unseen subjects: docs/results.md.</p></body></html>");
    h
}
