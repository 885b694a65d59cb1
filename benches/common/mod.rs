//! What the benches share (`mod common;` in each): not a bench target itself (cargo only takes
//! `benches/*.rs` and `benches/*/main.rs`).
#![allow(dead_code)]

/// The median of the timings (the mean of the middle two for an even count): machines are
/// shared and noisy, so the benches quote medians.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A disc phantom with a few inserts, `n x n`, row-major: the content does not change the
/// operators' cost.
pub fn phantom(n: usize) -> Vec<f32> {
    let c = n as f64 / 2.0;
    (0..n * n)
        .map(|p| {
            let (x, y) = (((p % n) as f64 - c) / c, ((p / n) as f64 - c) / c);
            let mut v = if x * x + y * y < 0.8 { 1.0 } else { 0.0 };
            if (x - 0.3).powi(2) + y * y < 0.02 {
                v += 0.5;
            }
            if (x + 0.2).powi(2) + (y - 0.3).powi(2) < 0.01 {
                v -= 0.3;
            }
            v as f32
        })
        .collect()
}

/// The operator benches' set-up: prints the thread count and the table header naming the
/// `reference`, and returns a one-thread pool for the single-threaded column.
pub fn table_and_single_thread_pool(reference: &str) -> rayon::ThreadPool {
    let threads = rayon::current_num_threads();
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    println!("threads: {threads}");
    println!(
        "| size | op | ours, {threads} threads (ms) | ours, 1 thread (ms) | {reference} (ms) | ratio, {threads} threads | ratio, 1 thread |"
    );
    println!("|---|---|---|---|---|---|---|");
    single
}
