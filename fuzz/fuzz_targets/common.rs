//! The readers take paths (a format is a file, or several side by side), so each input is
//! written to a file in a private folder, on tmpfs when there is one.

use std::path::PathBuf;

/// A private folder for this fuzzing process, made once.
pub fn folder() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("scorerecon-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
    .clone()
}

/// `data` as the file `name` in the folder.
pub fn file(name: &str, data: &[u8]) -> PathBuf {
    let p = folder().join(name);
    std::fs::write(&p, data).unwrap();
    p
}
