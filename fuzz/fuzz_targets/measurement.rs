//! Measurement reader: any bytes as the sidecar `measurement.json`, next to the data and mask of
//! a real measurement (copied once from `SCORERECON_FUZZ_MEASUREMENT`: a folder `simulate`
//! wrote, with NRRD and raw float32 copies of its files), so mutations of the seed sidecars
//! reach the data checks of each format too.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn companions() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Every file of the folder: the NIfTI data and mask, and their NRRD and raw float32
        // re-saves (fuzz/seed.sh), so a sidecar may name any of the formats.
        let Ok(src) = std::env::var("SCORERECON_FUZZ_MEASUREMENT") else {
            return;
        };
        for entry in std::fs::read_dir(src).into_iter().flatten().flatten() {
            let _ = std::fs::copy(entry.path(), common::folder().join(entry.file_name()));
        }
    });
}

fuzz_target!(|data: &[u8]| {
    companions();
    let p = common::file("measurement.json", data);
    let _ = scorerecon::io::measurement::read_measurement(&p);
});
