//! Small, dependency-free SVG line plots for reports (PSNR versus views, loss curves). SVG keeps
//! the HTML report self-contained and the plots sharp at any zoom.

use std::fmt::Write;

/// One named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A line plot with axes, ticks, axis labels and a legend. Non-finite points are skipped.
pub fn line_plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> String {
    let (w, h) = (560.0, 340.0);
    let (left, right, top, bottom) = (64.0, 150.0, 30.0, 48.0);
    let ty = |y: f64| if log_y { y.max(1e-300).log10() } else { y };
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
        .map(|(x, y)| (x, ty(y)))
        .collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
        (left + w - right) / 2.0,
        escape(title)
    );
    if pts.is_empty() {
        svg.push_str(r#"<text x="20" y="60">no data</text></svg>"#);
        return svg;
    }
    let (mut x0, mut x1) = bounds(pts.iter().map(|p| p.0));
    let (mut y0, mut y1) = bounds(pts.iter().map(|p| p.1));
    if x1 - x0 < 1e-12 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    if y1 - y0 < 1e-12 {
        y0 -= 1.0;
        y1 += 1.0;
    }
    let pad = 0.05 * (y1 - y0);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
    // Axes.
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        w - left - right,
        h - top - bottom
    );
    for i in 0..=4 {
        let fx = x0 + (x1 - x0) * i as f64 / 4.0;
        let fy = y0 + (y1 - y0) * i as f64 / 4.0;
        let ylab = if log_y {
            format!("{:.1e}", 10f64.powf(fy))
        } else {
            round_sig(fy).to_string()
        };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle">{}</text>"##,
            px(fx),
            h - bottom + 16.0,
            round_sig(fx)
        );
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left - 4.0,
            py(fy) + 4.0,
            ylab
        );
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#ddd"/>"##,
            w - right,
            py(fy),
            py(fy)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (left + w - right) / 2.0,
        h - 8.0,
        escape(x_label)
    );
    let _ = write!(
        svg,
        r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let p: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(ty(y))))
            .collect();
        if p.is_empty() {
            continue;
        }
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            p.join(" ")
        );
        if p.len() < 40 {
            for q in &p {
                let (a, b) = q.split_once(',').unwrap();
                let _ = write!(svg, r#"<circle cx="{a}" cy="{b}" r="3" fill="{c}"/>"#);
            }
        }
        let ly = top + 14.0 + 18.0 * i as f64;
        let _ = write!(
            svg,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="3"/>"#,
            w - right + 10.0,
            w - right + 30.0
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}">{}</text>"#,
            w - right + 36.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn bounds(it: impl Iterator<Item = f64>) -> (f64, f64) {
    it.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    })
}

fn round_sig(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (2 - mag).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// Escape text for XML/HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_places_points_inside_the_frame() {
        let s = Series {
            name: "score".into(),
            points: vec![(10.0, 20.0), (90.0, 35.0)],
        };
        let svg = line_plot("PSNR", "views", "dB", &[s], false);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The first point sits on the left edge of the frame (x = 64), the last on the right (560 - 150).
        assert!(svg.contains("points=\"64.0,"));
        assert!(svg.contains(" 410.0,"));
    }
}
