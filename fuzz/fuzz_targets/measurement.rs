//! Measurement reader: any bytes as the sidecar `measurement.json`, next to the data and mask of
//! a real measurement (copied once from `SCORERECON_FUZZ_MEASUREMENT`, a folder `simulate`
//! wrote), so mutations of the seed sidecars reach the data checks too.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn companions() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(src) = std::env::var("SCORERECON_FUZZ_MEASUREMENT") {
            for name in ["measurement.nii.gz", "measurement_mask.nii.gz"] {
                let _ = std::fs::copy(
                    std::path::Path::new(&src).join(name),
                    common::folder().join(name),
                );
            }
        }
    });
}

fuzz_target!(|data: &[u8]| {
    companions();
    let p = common::file("measurement.json", data);
    let _ = scorerecon::io::measurement::read_measurement(&p);
});
