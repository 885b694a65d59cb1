//! Outputs appear whole or not at all: every writer writes to a temporary name in the target's
//! folder and renames it into place, so a crash, a kill or an error never leaves a partial file,
//! and an existing output is never replaced unless the user asked for it (`--force`).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Whether anything sits at `path`, a dangling symlink or a symlink loop included (which
/// `Path::exists` reports as absent, so they were replaced without `--force`).
pub fn occupied(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Refuse to touch an existing `path` unless `force`.
pub fn check_overwrite(path: &Path, force: bool) -> Result<()> {
    if occupied(path) && !force {
        bail!(
            "{}: already exists; pass --force to overwrite it",
            path.display()
        );
    }
    Ok(())
}

/// Write a file atomically: `write` fills a temporary file in the same folder, which is renamed
/// onto `path` only when `write` succeeded.
pub fn write_file<F>(path: &Path, force: bool, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    check_overwrite(path, force)?;
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let suffix = temp_suffix(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".scorerecon-").suffix(&suffix);
    // A temporary file is private (0600) by default; the finished output gets the mode any
    // newly created file would (0666 less the umask), so colleagues can read a lab's results.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder
        .tempfile_in(&dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    write(tmp.path())?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| {
        format!(
            "{}: cannot move the finished file into place",
            path.display()
        )
    })?;
    Ok(())
}

/// Write a whole folder atomically (a DICOM series, a job's outputs): `write` fills a temporary
/// sibling folder, which replaces `path` only when `write` succeeded. With `force`, an existing
/// folder is moved aside first and deleted only after the new one is in place.
pub fn write_dir<F>(path: &Path, force: bool, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    check_overwrite(path, force)?;
    let parent = parent_dir(path);
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("{}: cannot create folder", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(&staging_prefix(path))
        .rand_bytes(STAGING_RANDOM_CHARS)
        .tempdir_in(&parent)
        .with_context(|| format!("{}: cannot create a temporary folder", parent.display()))?;
    write(tmp.path())?;
    let staged = tmp.keep();
    // Without `force`, a folder that appeared meanwhile (another process finished the same
    // job) is never replaced: the rename below fails on it, since it is not empty.
    let old = if force && occupied(path) {
        let aside = parent.join(format!(".scorerecon-old-{}", uuid::Uuid::new_v4()));
        std::fs::rename(path, &aside).with_context(|| {
            format!(
                "{}: cannot move the old output aside (check the folder's permissions)",
                path.display()
            )
        })?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&staged, path) {
        if let Some(aside) = &old {
            let _ = std::fs::rename(aside, path);
        }
        let _ = std::fs::remove_dir_all(&staged);
        if !force && path.exists() {
            bail!(
                "{}: appeared while this was being written, and is kept as it is",
                path.display()
            );
        }
        return Err(e).with_context(|| {
            format!(
                "{}: cannot move the finished folder into place",
                path.display()
            )
        });
    }
    if let Some(aside) = old {
        remove_any(&aside).with_context(|| {
            format!(
                "{}: the new output is in place, but the old one could not be removed from {}; delete it by hand",
                path.display(),
                aside.display()
            )
        })?;
    }
    Ok(())
}

/// Remove a file, a symlink (not what it points to) or a whole folder: what `--force` replaced.
fn remove_any(path: &Path) -> std::io::Result<()> {
    if path.symlink_metadata()?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// `path` made absolute with every symlink resolved, also when `path` (or the end of it) does not
/// exist yet: the longest existing prefix is canonicalised and the rest appended. A symlink loop
/// is an error.
fn resolved(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current folder")?
            .join(path)
    };
    let mut tail = Vec::new();
    let mut head = abs.as_path();
    loop {
        match head.canonicalize() {
            Ok(c) => {
                return Ok(tail.iter().rev().fold(c, |p: PathBuf, t| p.join(t)));
            }
            Err(e) if occupied(head) => {
                // It exists but cannot be resolved: a symlink loop or a link into nowhere.
                bail!(
                    "{}: cannot resolve this path ({e}); a symbolic link loop or a dangling link? Remove it or choose another name",
                    head.display()
                );
            }
            Err(_) => match (head.parent(), head.file_name()) {
                (Some(parent), Some(name)) => {
                    tail.push(name.to_os_string());
                    head = parent;
                }
                _ => return Ok(abs),
            },
        }
    }
}

/// Refuse an output that is an input, lies inside one (a folder input), or holds one (replacing
/// it would delete the input): `convert X X --force`, `ct --input D/m.json --out D --force`.
/// Paths are compared after resolving symlinks, so a link to the input is the input.
pub fn check_not_input(output: &Path, inputs: &[&Path]) -> Result<()> {
    let out = resolved(output)?;
    for input in inputs {
        let Ok(inp) = resolved(input) else { continue };
        let why = if out == inp {
            "is the input"
        } else if out.starts_with(&inp) {
            "lies inside the input folder"
        } else if inp.starts_with(&out) {
            "holds the input, which writing it would delete"
        } else {
            continue;
        };
        bail!(
            "{}: the output {why} {}; choose an output outside the input (--force never replaces an input)",
            output.display(),
            input.display()
        );
    }
    Ok(())
}

/// A staging folder is named `.scorerecon-<final name>.` and this many random characters, so a
/// killed writer's leftovers can be told apart per target ([`leftover_staging`]).
const STAGING_RANDOM_CHARS: usize = 6;

fn staging_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    format!(".scorerecon-{name}.")
}

/// The staging folders [`write_dir`] left for `path` when it was killed before renaming. Only
/// for a caller that knows no writer of `path` is alive (a batch that holds the job's claim):
/// a live writer's staging folder looks the same.
pub fn leftover_staging(path: &Path) -> Vec<PathBuf> {
    let prefix = staging_prefix(path);
    let Ok(entries) = std::fs::read_dir(parent_dir(path)) else {
        return vec![];
    };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            // Exactly the prefix and the random part: job `a`'s pattern does not match `a.b`'s.
            n.len() == prefix.len() + STAGING_RANDOM_CHARS
                && n.starts_with(&prefix)
                && !n[prefix.len()..].contains('.')
                && e.file_type().map(|t| t.is_dir()).unwrap_or(false)
        })
        .map(|e| e.path())
        .collect()
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Keep the real extension on the temporary name (".nii.gz" included) so writers that look at
/// the extension choose the same encoding they would for the final name.
fn temp_suffix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    match name.find('.') {
        Some(i) => name[i..].to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_mode_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let ours = dir.path().join("ours");
        write_file(&ours, false, |p| Ok(std::fs::write(p, b"x")?)).unwrap();
        let mode = |p: &Path| p.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
    }

    #[test]
    fn failed_write_leaves_nothing_and_existing_file_survives() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.nii.gz");
        let r = write_file(&p, false, |t| {
            std::fs::write(t, b"half")?;
            bail!("boom")
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_file(&p, false, |t| Ok(std::fs::write(t, b"one")?)).unwrap();
        assert!(write_file(&p, false, |t| Ok(std::fs::write(t, b"two")?)).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_file(&p, true, |t| Ok(std::fs::write(t, b"two")?)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
    }

    #[test]
    fn leftovers_are_found_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        // What a writer killed before its rename leaves, beside other targets' leftovers.
        let left = dir.path().join(".scorerecon-a.Xy12Z9");
        std::fs::create_dir(&left).unwrap();
        std::fs::create_dir(dir.path().join(".scorerecon-a.b.Xy12Z9")).unwrap();
        std::fs::create_dir(dir.path().join(".scorerecon-ab.Xy12Z9")).unwrap();
        assert_eq!(leftover_staging(&a), vec![left]);
        // A real staging folder matches the pattern while it exists.
        write_dir(&dir.path().join("b"), false, |t| {
            assert_eq!(
                leftover_staging(&dir.path().join("b")),
                vec![t.to_path_buf()]
            );
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_folder_that_appears_meanwhile_is_not_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("job");
        let r = write_dir(&p, false, |t| {
            std::fs::create_dir(&p)?;
            std::fs::write(p.join("theirs"), b"x")?;
            Ok(std::fs::write(t.join("ours"), b"y")?)
        });
        assert!(r.unwrap_err().to_string().contains("appeared"));
        assert!(p.join("theirs").exists() && !p.join("ours").exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "staging left"
        );
    }

    #[test]
    fn force_replacing_a_file_with_a_folder_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        std::fs::write(&p, b"old file").unwrap();
        write_dir(&p, true, |t| Ok(std::fs::write(t.join("a"), b"x")?)).unwrap();
        assert!(p.join("a").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_not_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("loop");
        std::os::unix::fs::symlink(&p, &p).unwrap();
        assert!(write_dir(&p, false, |_| Ok(())).is_err());
        assert!(p.symlink_metadata().unwrap().file_type().is_symlink());
        assert!(check_not_input(&p, &[]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn outputs_at_in_or_around_an_input_are_refused_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("D");
        std::fs::create_dir(&d).unwrap();
        let m = d.join("m.json");
        std::fs::write(&m, b"{}").unwrap();
        let link = dir.path().join("L");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(check_not_input(&d, &[&m]).is_err());
        assert!(check_not_input(&link, &[&m]).is_err());
        assert!(check_not_input(&link.join("m.json"), &[&m]).is_err());
        assert!(check_not_input(&d.join("sub/out"), &[&d]).is_err());
        assert!(check_not_input(&dir.path().join("E"), &[&m]).is_ok());
        assert!(check_not_input(&dir.path().join("D2"), &[&d]).is_ok());
    }

    #[test]
    fn dir_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("series");
        write_dir(&p, false, |t| Ok(std::fs::write(t.join("1.dcm"), b"x")?)).unwrap();
        assert!(write_dir(&p, true, |_| bail!("boom")).is_err());
        assert!(p.join("1.dcm").exists());
        write_dir(&p, true, |t| Ok(std::fs::write(t.join("2.dcm"), b"y")?)).unwrap();
        assert!(!p.join("1.dcm").exists() && p.join("2.dcm").exists());
    }
}
