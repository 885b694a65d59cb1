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
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}\
.slice{margin:16px 0}.tiles{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}\
.tile{margin:0}.tile img{image-rendering:pixelated;cursor:zoom-in;display:block}\
.tile figcaption{font-size:13px;color:#222;max-width:none}\
.cbar{display:flex;align-items:center;gap:4px;font-size:12px;color:#444}\
.cbar .grad{display:inline-block;width:120px;height:10px;border:1px solid #888;background:linear-gradient(to right,#000,#fff)}\
#lb{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);z-index:9;flex-direction:column;align-items:center;justify-content:center;cursor:zoom-out}\
#lb img{height:85vh;image-rendering:pixelated}#lb div{color:#fff;margin-top:8px}\
img.thumb{image-rendering:pixelated;width:128px}td.m,td.job{text-align:left}";

/// Click a tile to see it filling the window; click again (or Escape) to close. Inline, so the
/// report stays one file.
const LIGHTBOX: &str = "<div id=\"lb\" onclick=\"this.style.display='none'\"><img id=\"lbi\" alt=\"enlarged tile\"><div id=\"lbc\"></div></div>\
<script>for(const i of document.querySelectorAll('.tile img')){i.onclick=()=>{lbi.src=i.src;lbc.textContent=i.alt;lb.style.display='flex'}}\
document.onkeydown=e=>{if(e.key==='Escape')lb.style.display='none'}</script>";

/// `docs/results.md` of this version (means over unseen subjects), so every report and index can
/// show it without the source tree at hand.
const RESULTS_MD: &str = include_str!("../../docs/results.md");

fn results_section() -> String {
    format!(
        "<details id=\"results\"><summary>Results over unseen subjects (docs/results.md of scorerecon {})</summary><pre>{}</pre></details>",
        escape(crate::version()),
        escape(RESULTS_MD)
    )
}

/// `v` with four significant digits, the precision the colour bars and windows state.
pub fn sig(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (3 - mag).clamp(0, 8) as usize;
    format!("{v:.decimals$}")
}

/// A PNG as a data URI, or `None` when the file cannot be read.
fn data_uri(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The width (CSS pixels) a tile `w` pixels wide is shown at: an integer zoom up to about 256
/// px, never smaller than the image, so no pixel is lost.
fn shown_width(w: usize) -> usize {
    w * (256 / w.max(1)).max(1)
}

/// One slice's tiles, each labelled, at full resolution (enlarged by whole pixels).
fn tiles_html(p: &super::Panel, dir: &Path) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<div class=\"slice\"><h3>{}</h3><div class=\"tiles\">",
        escape(p.caption.split(':').next().unwrap_or(""))
    );
    for t in &p.tiles {
        let Some(uri) = data_uri(&dir.join(&t.file)) else {
            let _ = write!(
                h,
                "<p class=\"note\">tile {} is missing</p>",
                escape(&t.file)
            );
            continue;
        };
        let width = image_width(&dir.join(&t.file)).map(shown_width);
        let wattr = width.map(|w| format!(" width=\"{w}\"")).unwrap_or_default();
        let _ = write!(
            h,
            "<figure class=\"tile\"><img src=\"{uri}\"{wattr} alt=\"{0}\" title=\"{0} (click to enlarge)\"><figcaption class=\"label\">{0}</figcaption>",
            escape(&t.label)
        );
        if let Some(b) = &t.colour_bar {
            let _ = write!(
                h,
                "<div class=\"cbar\"><span class=\"cbar-min\">0</span><span class=\"grad\"></span><span class=\"cbar-max\">{} {}</span></div><div class=\"cbar\">white: &ge; 99.5th percentile; max <span class=\"cbar-peak\">{}</span> {}</div>",
                sig(b.top),
                escape(&b.units),
                sig(b.max),
                escape(&b.units)
            );
        }
        h.push_str("</figure>");
    }
    let _ = write!(
        h,
        "</div><p><small>{}</small></p></div>",
        escape(&p.caption)
    );
    h
}

/// Width of a PNG from its IHDR chunk.
fn image_width(path: &Path) -> Option<usize> {
    let b = std::fs::read(path).ok()?;
    let w: [u8; 4] = b.get(16..20)?.try_into().ok()?;
    Some(u32::from_be_bytes(w) as usize)
}

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
    if let Some(w) = &r.display_window {
        let _ = write!(
            h,
            "<p class=\"window\">Display window: {}. Click a tile to enlarge it.</p>",
            escape(w)
        );
    }
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
        if !p.tiles.is_empty() {
            h.push_str(&tiles_html(p, dir));
            continue;
        }
        // Reports of earlier versions: the panel as one image.
        match data_uri(&dir.join(&p.file)) {
            Some(uri) => {
                let _ = write!(h, "<figure class=\"tile\"><img src=\"{uri}\" alt=\"{}\"><figcaption>{}</figcaption></figure>", escape(&p.file), escape(&p.caption));
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
    h.push_str(&results_section());
    h.push_str(LIGHTBOX);
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

/// The table of every job: a thumbnail (its score-based tile of the first slice), a link to its
/// report, and each method's PSNR/SSIM; `dir` holds the jobs' folders.
fn jobs_table(dir: &Path, jobs: &[(String, String, Result<&JobReport, &str>)]) -> String {
    let mut h = String::from("<table><tr><th>job</th><th>thumbnail</th><th>method</th><th>PSNR (dB)</th><th>SSIM</th><th>seconds</th></tr>");
    for (name, title, r) in jobs {
        let link = format!(
            "<a href=\"{0}/report.html\">{0}</a><br><small>{1}</small>",
            escape(name),
            escape(title)
        );
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                // A job a killed batch never reached has not failed.
                let status = if *e == crate::batch::NOT_RUN {
                    "not run yet"
                } else {
                    "failed: "
                };
                let e = if *e == crate::batch::NOT_RUN { "" } else { e };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td></td><td colspan=\"4\">{status}{}</td></tr>",
                    escape(name),
                    escape(e)
                );
                continue;
            }
        };
        let thumb = r
            .panels
            .first()
            .and_then(|p| {
                p.tiles
                    .iter()
                    .find(|t| t.label.starts_with("score"))
                    .or(p.tiles.first())
            })
            .and_then(|t| data_uri(&dir.join(name).join(&t.file)))
            .map(|uri| format!("<a href=\"{}/report.html\"><img class=\"thumb\" src=\"{uri}\" alt=\"{} thumbnail\"></a>", escape(name), escape(name)))
            .unwrap_or_default();
        let n = r.methods.len().max(1);
        let mut first = true;
        for (m, v) in &r.methods {
            h.push_str("<tr>");
            if first {
                let _ = write!(
                    h,
                    "<td class=\"job\" rowspan=\"{n}\">{link}</td><td rowspan=\"{n}\">{thumb}</td>"
                );
                first = false;
            }
            let _ = write!(
                h,
                "<td class=\"m\">{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                escape(m),
                fmt_opt(v.psnr, 2),
                fmt_opt(v.ssim, 4),
                v.seconds
            );
        }
        if first {
            let _ = write!(
                h,
                "<tr><td>{link}</td><td>{thumb}</td><td colspan=\"4\">no methods</td></tr>"
            );
        }
    }
    h.push_str("</table>");
    h
}

/// A summary page over many jobs (a batch, its jobs' folders in `out`): mean +- std per
/// method, then every job with a thumbnail and its methods' scores.
pub fn render_summary(
    title: &str,
    out: &Path,
    rows: &[(String, Result<JobReport, String>)],
) -> String {
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
    h.push_str("</table><h2>Jobs</h2>");
    let jobs: Vec<(String, String, Result<&JobReport, &str>)> = rows
        .iter()
        .map(|(n, r)| {
            let title = r.as_ref().map(|r| r.title.clone()).unwrap_or_default();
            (n.clone(), title, r.as_ref().map_err(|e| e.as_str()))
        })
        .collect();
    h.push_str(&jobs_table(out, &jobs));
    let _ = write!(
        h,
        "<p><small>{}</small></p>",
        escape(super::METRIC_CONVENTION)
    );
    h.push_str(&results_section());
    h.push_str("</body></html>");
    h
}

/// The demo's index page (written in `dir`, the cases' folders under it): every case with a
/// thumbnail and its methods' scores, what the demo shows, and docs/results.md.
pub fn render_demo_index(dir: &Path, reports: &[(String, String, JobReport)]) -> String {
    let mut h = format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>scorerecon demo</title><style>{STYLE}</style></head><body><h1>scorerecon demo</h1>");
    let jobs: Vec<(String, String, Result<&JobReport, &str>)> = reports
        .iter()
        .map(|(d, t, r)| (d.clone(), t.clone(), Ok(r)))
        .collect();
    h.push_str(&jobs_table(dir, &jobs));
    h.push_str("<p>Priors: the shipped NCSN++ models ct_body_128 and mri_head_128 (model cards in models/), \
trained across subjects; each reconstructed scan is of a person the prior never trained on (its validation subject). \
The scans are put on the priors' grids (RAS+ axis order, 2.5 mm and 2 mm pixels, 128x128). TV weights of the baselines \
are tuned on a validation slice (maximum SSIM). Means over slices of unseen subjects: docs/results.md, below.</p>");
    let _ = write!(
        h,
        "<p><small>{}</small></p>",
        escape(super::METRIC_CONVENTION)
    );
    h.push_str(&results_section());
    h.push_str("</body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{MethodMetrics, Panel, TileFile};

    #[test]
    fn tiles_are_never_shown_smaller_than_they_are() {
        for w in 1..700 {
            let s = shown_width(w);
            assert!(s >= w && s.is_multiple_of(w), "{w} shown {s}");
        }
        assert_eq!(
            (shown_width(64), shown_width(128), shown_width(512)),
            (256, 256, 512)
        );
    }

    #[test]
    fn sig_keeps_four_significant_digits() {
        assert_eq!(sig(339.6123), "339.6");
        assert_eq!(sig(0.012345), "0.01235");
        assert_eq!(sig(-160.0), "-160.0");
        assert_eq!(sig(12345.6), "12346");
    }

    #[test]
    fn demo_index_shows_each_case_with_its_thumbnail_and_scores() {
        let dir = tempfile::tempdir().unwrap();
        let case = dir.path().join("ct");
        std::fs::create_dir_all(case.join("tiles")).unwrap();
        crate::io::png::write_png_gray(&case.join("tiles/s_0.png"), 2, 1, &[0, 255], true).unwrap();
        let mut r = JobReport::new("t", "ct", "in.nii", serde_json::json!({}));
        r.methods.insert(
            "score".into(),
            MethodMetrics {
                psnr: Some(31.234),
                ssim: Some(0.81234),
                ..Default::default()
            },
        );
        r.panels.push(Panel {
            file: "panel.png".into(),
            caption: "Slice 3: score".into(),
            tiles: vec![TileFile {
                file: "tiles/s_0.png".into(),
                label: "score 31.23 dB SSIM 0.8123".into(),
                colour_bar: None,
            }],
        });
        let h = render_demo_index(dir.path(), &[("ct".into(), "CT case".into(), r)]);
        assert!(h.contains("<img class=\"thumb\" src=\"data:image/png;base64,"));
        assert!(h.contains("href=\"ct/report.html\""));
        assert!(h.contains("<td class=\"m\">score</td><td>31.23</td><td>0.8123</td>"));
        assert!(h.contains("docs/results.md") && !h.contains("src=\"http"));
    }
}
