//! Quality against score evaluations: turns the CSV of `scripts/nfe_sweep.sh` into the
//! Markdown tables of docs/sampling.md ("Quality against NFE") and one SVG plot of PSNR against
//! NFE per task (`src/report/svg.rs`).
//!
//! `cargo run --release --example nfe_table -- SWEEP.csv OUT_PREFIX`
//! writes `OUT_PREFIX_<task>.svg` and prints the tables.

use scorerecon::report::svg::{line_plot, Series};
use std::collections::BTreeMap;

/// PSNR and SSIM of one run (None: it stopped with an error).
type Scores = (Option<f64>, Option<f64>);

struct Row {
    task: String,
    sampler: String,
    nfe: usize,
    psnr: Option<f64>,
    ssim: Option<f64>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, csv, prefix] = args.as_slice() else {
        eprintln!("usage: nfe_table SWEEP.csv OUT_PREFIX");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(csv).expect("read the sweep CSV");
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 10 || f[4] == "header" {
            continue;
        }
        rows.push(Row {
            task: f[0].into(),
            sampler: f[2].into(),
            nfe: f[4].parse().unwrap_or(0),
            psnr: f[5].parse().ok(),
            ssim: f[6].parse().ok(),
        });
    }
    let mut tasks: Vec<String> = rows.iter().map(|r| r.task.clone()).collect();
    tasks.dedup();
    tasks.sort();
    tasks.dedup();
    for task in tasks {
        // sampler -> NFE -> (psnr, ssim); a repeated run keeps the first.
        let mut by: BTreeMap<&str, BTreeMap<usize, Scores>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.task == task) {
            by.entry(&r.sampler)
                .or_default()
                .entry(r.nfe)
                .or_insert((r.psnr, r.ssim));
        }
        let mut nfes: Vec<usize> = by.values().flat_map(|m| m.keys().copied()).collect();
        nfes.sort();
        nfes.dedup();
        println!("{task}: PSNR (dB) / SSIM by NFE; `div.` = stopped by the divergence guard");
        println!();
        let head: Vec<String> = nfes.iter().map(|n| n.to_string()).collect();
        println!("| sampler | {} |", head.join(" | "));
        println!("|---|{}", "---|".repeat(nfes.len()));
        for (sampler, m) in &by {
            let cells: Vec<String> = nfes
                .iter()
                .map(|n| match m.get(n) {
                    None => String::new(),
                    Some((Some(p), Some(s))) => format!("{p:.2} / {s:.3}"),
                    Some(_) => "div.".into(),
                })
                .collect();
            println!("| {sampler} | {} |", cells.join(" | "));
        }
        println!();
        let series: Vec<Series> = by
            .iter()
            .map(|(sampler, m)| Series {
                name: sampler.to_string(),
                points: m
                    .iter()
                    .filter_map(|(n, (p, _))| p.map(|p| ((*n as f64).log10(), p)))
                    .collect(),
            })
            .collect();
        let svg = line_plot(
            &format!("{task}: PSNR against score evaluations (held-out subject)"),
            "log10 NFE",
            "PSNR (dB)",
            &series,
            false,
        );
        let path = format!("{prefix}_{task}.svg");
        std::fs::write(&path, svg).expect("write the SVG");
        println!("wrote {path}");
        println!();
    }
}
