//! NRRD reader: any bytes as an attached-header `.nrrd`.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::file("x.nrrd", data);
    let _ = scorerecon::io::nrrd::read(&p);
});
