//! Upper bounds on the sizes users type (image size, views, detector bins, samples, batch) and
//! the sizes files declare: each is turned into the memory it needs and refused, with that
//! number, before anything is allocated, instead of aborting in the allocator.

use anyhow::{bail, Result};

/// Physical memory of this machine (`MemTotal` of /proc/meminfo), or 16 GiB where that cannot
/// be read.
pub fn memory_bytes() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib * 1024.0)
        .unwrap_or(16.0 * (1u64 << 30) as f64)
}

/// Refuse `what` (the flag or field and its value, e.g. "--size 100000") when the `bytes` it
/// needs exceed this machine's memory. f64 so that no product of typed sizes can overflow.
pub fn check_memory(what: &str, bytes: f64) -> Result<()> {
    let have = memory_bytes();
    // NaN counts as too much.
    if bytes.is_nan() || bytes > have {
        bail!(
            "{what}: needs {} of memory, more than this machine's {}: choose a smaller value",
            human_bytes(bytes),
            human_bytes(have)
        );
    }
    Ok(())
}

/// A byte count for a message: "3.2 GiB".
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b:.0} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_beyond_memory_are_refused_with_the_number() {
        let e = check_memory("--size 4000000000", 4e9 * 4e9 * 4.0).unwrap_err();
        assert!(
            e.to_string().contains("--size 4000000000: needs 55.5 EiB"),
            "{e}"
        );
        assert!(check_memory("--size 64", 64.0 * 64.0 * 4.0).is_ok());
        assert!(check_memory("NaN", f64::NAN).is_err());
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
    }
}
