use scorerecon::ops::fbp::{self, Filter};
use scorerecon::ops::radon::{Geometry, Radon};
fn main() {
    let what = std::env::args().nth(1).unwrap();
    let n: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let r = Radon::new(Geometry::new(n, 180).unwrap()).unwrap();
    let img: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32).collect();
    let s = r.project(&img, 1);
    let all: Vec<usize> = (0..180).collect();
    let t = std::time::Instant::now();
    for _ in 0..20 {
        match what.as_str() {
            "proj" => {
                std::hint::black_box(r.project(&img, 1));
            }
            "fbp" => {
                std::hint::black_box(fbp::fbp(r.geometry(), &s, 1, Filter::Ramp, &all).unwrap());
            }
            "filter" => {
                let mut f = s.clone();
                fbp::filter_rows(&mut f, r.geometry().n_det, Filter::Ramp);
                std::hint::black_box(f);
            }
            _ => {
                std::hint::black_box(r.backproject(&s, 1));
            }
        }
    }
    println!("{what}: {:?} per call (wall)", t.elapsed() / 20);
}
