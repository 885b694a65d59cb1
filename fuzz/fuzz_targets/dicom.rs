//! DICOM reader (dicom-rs underneath): any bytes as one DICOM file.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::file("x.dcm", data);
    let _ = scorerecon::io::dicom::read(&p, None);
});
