//! Siemens twix reader: any bytes as a `.dat` raw-data file (VB or VD/VE multi-raid).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::file("x.dat", data);
    let _ = scorerecon::io::kspace::twix::read_twix(&p);
});
