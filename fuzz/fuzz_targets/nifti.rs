//! NIfTI-1 reader: any bytes as a `.nii` must give a volume or an error, never a panic, a hang
//! or an allocation beyond the file's size.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::file("x.nii", data);
    let _ = scorerecon::io::nifti::read(&p);
});
