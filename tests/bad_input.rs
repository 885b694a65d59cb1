//! Issue 16: bad input never crashes, never passes as data, and never costs the user a file.
//!
//! `tests/bad_input/corpus.py` writes the corpus (damaged NIfTI, DICOM, NRRD and measurement
//! files made with nibabel, pydicom and numpy, the measurements mutated from what
//! `scorerecon simulate` writes) and the legal oddities; this test runs `info`, `convert` and a
//! `ct`/`mri` job on each bad case and checks that every run fails cleanly, and that the legal
//! oddities read exactly as nibabel / pydicom read them. The other tests cover outputs that would
//! replace their input, `--force`, typed sizes beyond memory, settings and `--anonymise`.

mod common;

use common::{bin, phantoms, python, root, run_python, setup};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Runs `cmd` to the end and returns its output and its peak resident memory in KiB (wait4's
/// `ru_maxrss` for this child alone, which `Command::output` does not report).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std does not know about
fn output_and_peak_kib(cmd: &mut std::process::Command) -> (Output, i64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both pipes are drained while the child runs, so it never blocks on a full one.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            pipe.read_to_end(&mut v).unwrap();
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    // Reaped by polling, so a run that hangs can be killed after two minutes (it then fails as
    // killed, not as a hang of the test) while its pid is certainly still its own.
    let pid = child.id() as libc::pid_t;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    loop {
        // SAFETY: the child is ours and not yet reaped; both out-pointers are valid.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        assert_eq!(reaped, 0, "wait4 failed");
        if std::time::Instant::now() > deadline {
            // SAFETY: not reaped (wait4 just returned 0), so pid is still this child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let status = std::process::ExitStatus::from_raw(status);
    (
        Output {
            status,
            stdout,
            stderr,
        },
        usage.ru_maxrss,
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into()
}

/// Rust debug formatting that must never reach a user.
const DEBUG_TEXT: [&str; 7] = [
    "Custom {",
    "Os {",
    "kind: ",
    "Some(",
    "Err(",
    "NiftiError",
    "Io(",
];

/// A failed run, cleanly: non-zero exit that is not a panic's 101, no panic text, exactly one
/// `error:` line, naming one of `names`, holding `why` when given, free of debug text.
fn assert_clean_failure(label: &str, o: &Output, names: &[String], why: Option<&str>) {
    let err = stderr(o);
    let code = o.status.code();
    assert!(
        code.is_some_and(|c| c != 0 && c != 101),
        "{label}: exit {code:?}, stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{label}: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{label}: one error line expected: {err}");
    let line = lines[0];
    assert!(
        names.iter().any(|n| line.contains(n.as_str())),
        "{label}: the error names none of {names:?}: {line}"
    );
    if let Some(w) = why {
        assert!(line.contains(w), "{label}: expected {w:?} in: {line}");
    }
    for d in DEBUG_TEXT {
        assert!(!line.contains(d), "{label}: debug text {d:?} in: {line}");
    }
}

/// Every file under `dir` with its size: what must not change when a command fails.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = p.symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
                out.insert(p, b"<dir>".to_vec());
            } else if meta.file_type().is_symlink() {
                out.insert(
                    p.clone(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[derive(serde::Deserialize)]
struct BadCase {
    name: String,
    path: String,
    why: Option<String>,
    names: Vec<String>,
    commands: Vec<String>,
}

#[derive(serde::Deserialize)]
struct GoodCase {
    name: String,
    path: String,
    expected: String,
    dims: [usize; 3],
}

#[derive(serde::Deserialize)]
struct Cases {
    bad: Vec<BadCase>,
    good: Vec<GoodCase>,
}

/// A small sparse-view CT measurement folder (Shepp-Logan, 32x32, 4 of 16 views) at `out`.
fn simulate_small_ct(out: &Path) {
    let o = run(&[
        "simulate",
        "--phantom",
        "shepp-logan",
        "--task",
        "sparse-view",
        "--size",
        "32",
        "--views",
        "4",
        "--full-views",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The corpus in `dir/corpus`, from measurement folders `simulate` writes (so they follow the
/// current sidecar schema).
fn make_corpus(dir: &Path) -> Cases {
    let base_ct = dir.join("base_ct");
    simulate_small_ct(&base_ct);
    let mr = dir.join("mr.nii.gz");
    phantoms(&mr, 1, 32, 3, "MR");
    let base_mri = dir.join("base_mri");
    let o = run(&[
        "simulate",
        "--input",
        mr.to_str().unwrap(),
        "--task",
        "mri",
        "--out",
        base_mri.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let corpus = dir.join("corpus");
    let out = std::process::Command::new(python())
        .arg(root().join("tests/bad_input/corpus.py"))
        .args([&corpus, &base_ct, &base_mri])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(corpus.join("cases.json")).unwrap()).unwrap()
}

/// The arguments of one run of `command` on `case`, writing under `out` (which holds a user's
/// earlier output that must survive, `--force` included).
fn arguments(command: &str, case: &BadCase, out: &Path) -> Vec<String> {
    let s = |v: &str| v.to_string();
    let o = |name: &str| out.join(name).to_str().unwrap().to_string();
    match command {
        "info" => vec![s("info"), case.path.clone()],
        "convert" => vec![s("convert"), case.path.clone(), o("x.nii.gz"), s("--force")],
        "png" => vec![s("convert"), case.path.clone(), o("x.png"), s("--force")],
        task => vec![
            s(task),
            s("--input"),
            case.path.clone(),
            s("--out"),
            o("job"),
            s("--force"),
            s("--quiet"),
        ],
    }
}

#[test]
fn every_bad_input_fails_cleanly_and_legal_oddities_read_as_nibabel_and_pydicom() {
    let dir = tempfile::tempdir().unwrap();
    let cases = make_corpus(dir.path());
    assert!(cases.bad.len() >= 60, "{} bad cases", cases.bad.len());
    let corpus = dir.path().join("corpus");
    let before = snapshot(&corpus);

    // One job per (case, command), each with an output folder holding a user's earlier outputs.
    let jobs: Vec<(&BadCase, &str, PathBuf)> = cases
        .bad
        .iter()
        .flat_map(|c| c.commands.iter().map(move |cmd| (c, cmd.as_str())))
        .enumerate()
        .map(|(i, (c, cmd))| (c, cmd, dir.path().join(format!("out/{i}"))))
        .collect();
    for (_, _, out) in &jobs {
        std::fs::create_dir_all(out.join("job")).unwrap();
        for name in ["x.nii.gz", "x.png", "job/keep.txt"] {
            std::fs::write(out.join(name), b"an earlier output").unwrap();
        }
    }
    // What the binary takes to start (libtorch is linked): every bad input may cost at most
    // this plus 512 MiB, so no declared size is allocated before it is checked.
    let (o, start_kib) = output_and_peak_kib(bin().arg("--version"));
    assert!(o.status.success());
    let peak_limit_kib = start_kib + 512 * 1024;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((case, command, out)) = jobs.get(i) else {
                    break;
                };
                let args = arguments(command, case, out);
                let (o, peak_kib) = output_and_peak_kib(bin().args(&args).current_dir(dir.path()));
                let label = format!("{} ({command})", case.name);
                let checked = std::panic::catch_unwind(|| {
                    assert_clean_failure(&label, &o, &case.names, case.why.as_deref());
                    assert!(
                        peak_kib <= peak_limit_kib,
                        "{label}: peak memory {peak_kib} KiB, over the {peak_limit_kib} KiB allowed"
                    );
                    let mut left: Vec<String> = snapshot(out)
                        .into_iter()
                        .map(|(p, bytes)| {
                            let rel = p.strip_prefix(out).unwrap().display().to_string();
                            assert!(
                                bytes == b"an earlier output" || bytes == b"<dir>",
                                "{label}: {rel} was changed"
                            );
                            rel
                        })
                        .collect();
                    left.sort();
                    assert_eq!(
                        left,
                        ["job", "job/keep.txt", "x.nii.gz", "x.png"],
                        "{label}"
                    );
                });
                if let Err(e) = checked {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| "assertion failed".into());
                    failures.lock().unwrap().push(msg);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        before == snapshot(&corpus),
        "a command changed the corpus (its inputs)"
    );

    // Legal oddities: our NIfTI output of each, read by nibabel, equals what nibabel / pydicom
    // read from the original, voxel for voxel (f32).
    let good_out = dir.path().join("good");
    let mut pairs = Vec::new();
    for g in &cases.good {
        let out = good_out.join(format!("{}.nii", g.name));
        let o = run(&["convert", &g.path, out.to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", g.name, stderr(&o));
        pairs.push(format!(
            "{}|{}|{}|{}",
            g.name,
            out.display(),
            g.expected,
            g.dims.map(|d| d.to_string()).join(",")
        ));
    }
    let script = r#"
import sys, numpy as np, nibabel as nib
for item in sys.argv[1:]:
    name, ours, expected, dims = item.split("|")
    dims = [int(d) for d in dims.split(",")]
    a = np.asarray(nib.load(ours).get_fdata(), dtype=np.float32)
    while a.ndim < 3:
        a = a[..., None]
    e = np.fromfile(expected, "<f4")
    same = list(a.shape[:3]) == dims and a.size == e.size and np.array_equal(a.ravel(order="F"), e, equal_nan=True)
    print(name, "same" if same else "DIFFERENT shape %s max diff %s" % (a.shape, np.nanmax(np.abs(a.ravel(order="F") - e)) if a.size == e.size else "n/a"))
"#;
    let args: Vec<&str> = pairs.iter().map(|s| s.as_str()).collect();
    let report = run_python(script, &args);
    assert_eq!(report.lines().count(), cases.good.len(), "{report}");
    for line in report.lines() {
        assert!(line.ends_with(" same"), "{line}");
    }
}

/// A small NIfTI in `dir`.
fn small_nifti(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    phantoms(&p, 2, 16, 1, "CT");
    p
}

#[test]
fn convert_refuses_to_replace_its_own_input_even_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let x = small_nifti(dir.path(), "x.nii.gz");
    let bytes = std::fs::read(&x).unwrap();
    let link = dir.path().join("link.nii.gz");
    std::os::unix::fs::symlink(&x, &link).unwrap();
    for out in [&x, &link] {
        let o = run(&[
            "convert",
            x.to_str().unwrap(),
            out.to_str().unwrap(),
            "--force",
        ]);
        assert_clean_failure(
            "convert X X",
            &o,
            &[out.display().to_string()],
            Some("is the input"),
        );
    }
    assert_eq!(std::fs::read(&x).unwrap(), bytes);
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn a_job_may_not_write_over_or_around_its_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("D");
    simulate_small_ct(&d);
    let before = snapshot(&d);
    let m = d.join("measurement.json");
    let link = dir.path().join("L");
    std::os::unix::fs::symlink(&d, &link).unwrap();
    for out in [d.clone(), link.clone(), d.join("measurement.nii.gz")] {
        let o = run(&[
            "ct",
            "--input",
            m.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--force",
            "--quiet",
        ]);
        assert_clean_failure(
            "ct --out D",
            &o,
            &[out.display().to_string()],
            Some("input"),
        );
    }
    assert!(before == snapshot(&d), "the measurement folder changed");
}

#[test]
fn a_symlink_loop_is_not_an_absent_output() {
    let dir = tempfile::tempdir().unwrap();
    let x = small_nifti(dir.path(), "x.nii.gz");
    let lp = dir.path().join("loop");
    std::os::unix::fs::symlink(&lp, &lp).unwrap();
    let o = run(&[
        "convert",
        x.to_str().unwrap(),
        lp.to_str().unwrap(),
        "--format",
        "dicom",
    ]);
    assert_clean_failure("convert to a loop", &o, &[lp.display().to_string()], None);
    assert!(lp.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn force_replacing_a_file_with_a_folder_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let x = small_nifti(dir.path(), "x.nii.gz");
    let out_dir = dir.path().join("outs");
    std::fs::create_dir(&out_dir).unwrap();
    let series = out_dir.join("series");
    std::fs::write(&series, b"a file where the series goes").unwrap();
    let o = run(&[
        "convert",
        x.to_str().unwrap(),
        series.to_str().unwrap(),
        "--format",
        "dicom",
        "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(series.is_dir());
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["series"]);
    // And a folder replaced by a folder: the old files are gone, nothing is left beside it.
    std::fs::write(series.join("stale.dcm"), b"old").unwrap();
    let o = run(&[
        "convert",
        x.to_str().unwrap(),
        series.to_str().unwrap(),
        "--format",
        "dicom",
        "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!series.join("stale.dcm").exists());
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1);
}

#[test]
fn typed_sizes_beyond_memory_are_refused_with_the_bytes_needed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    for (flag, value) in [
        ("--size", "4000000000"),
        ("--size", "100000"),
        ("--full-views", "100000000"),
    ] {
        let o = run(&[
            "simulate",
            "--phantom",
            "shepp-logan",
            "--task",
            "sparse-view",
            flag,
            value,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_clean_failure(flag, &o, &[format!("{flag} {value}")], Some("needs"));
        assert!(!out.exists());
    }
    let x = small_nifti(dir.path(), "x.nii.gz");
    let o = run(&[
        "ct",
        "--input",
        x.to_str().unwrap(),
        "--full-views",
        "100000000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_clean_failure(
        "ct --full-views",
        &o,
        &["--full-views 100000000".into()],
        Some("needs"),
    );
}

#[test]
fn settings_files_and_flags_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let x = small_nifti(dir.path(), "x.nii.gz");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "steps: -5\n").unwrap();
    let out = dir.path().join("o");
    let o = run(&[
        "ct",
        "--input",
        x.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--steps",
        "50",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_clean_failure(
        "steps: -5",
        &o,
        &[cfg.display().to_string()],
        Some("steps: -5"),
    );
    let o = run(&[
        "ct",
        "--input",
        x.to_str().unwrap(),
        "--tv-weight=-1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_clean_failure("--tv-weight=-1", &o, &["--tv-weight -1".into()], None);
    let o = run(&[
        "mar",
        "--input",
        x.to_str().unwrap(),
        "--metal-threshold",
        "1e9",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_clean_failure(
        "--metal-threshold 1e9",
        &o,
        &["--metal-threshold 1000000000".into()],
        None,
    );
    assert!(!out.exists());
}

/// A one-slice 64x64 CT DICOM file with patient tags (pydicom), from the phantom set's slice.
fn dicom_with_patient(dir: &Path, nifti: &Path) -> PathBuf {
    let path = dir.join("patient.dcm");
    let script = r#"
import sys, numpy as np, nibabel as nib
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
src, out = sys.argv[1], sys.argv[2]
hu = np.asarray(nib.load(src).dataobj)[:, :, 10].T
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset(); ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID; ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
ds.SeriesInstanceUID = generate_uid(); ds.StudyInstanceUID = generate_uid(); ds.Modality = "CT"
ds.PatientName = "Doe^Jane"; ds.PatientID = "MRN-1616"; ds.PatientBirthDate = "19700101"
ds.PatientSex = "F"; ds.AccessionNumber = "ACC-16"
ds.Rows, ds.Columns = hu.shape; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 1
ds.RescaleSlope = "1"; ds.RescaleIntercept = "0"; ds.PixelSpacing = [1, 1]
ds.ImagePositionPatient = [0, 0, 0]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]; ds.SliceThickness = "2"
ds.PixelData = np.round(hu).astype("<i2").tobytes()
ds.save_as(out, enforce_file_format=True)
"#;
    run_python(script, &[nifti.to_str().unwrap(), path.to_str().unwrap()]);
    path
}

/// The patient tags pydicom finds in the derived DICOM files under `dir`, one line per file.
fn patient_tags(dir: &Path) -> String {
    let script = r#"
import sys, glob, pydicom
for f in sorted(glob.glob(sys.argv[1] + "/**/*.dcm", recursive=True)):
    d = pydicom.dcmread(f)
    print("|".join(str(d.get(k, "")) for k in ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"]))
"#;
    run_python(script, &[dir.to_str().unwrap()])
}

#[test]
fn anonymise_drops_patient_tags_and_input_paths() {
    let s = setup("CT");
    let dcm = dicom_with_patient(&s.root, &s.root.join("scan.nii.gz"));
    let model = format!("empirical:{}", s.root.join("refs").display());
    let steps = scorerecon::sampler::SamplerKind::Pc.min_steps().to_string();
    let job = |out: &Path, anonymise: bool| {
        let mut args = vec![
            "ct",
            "--input",
            dcm.to_str().unwrap(),
            "--views",
            "12",
            "--model",
            &model,
            "--steps",
            &steps,
            "--baselines",
            "fbp",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ];
        if anonymise {
            args.push("--anonymise");
        }
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let plain = s.root.join("plain");
    job(&plain, false);
    let anon = s.root.join("anon");
    job(&anon, true);
    // Without the flag the derived series carries the patient (so the check can fail)...
    let tags = patient_tags(&plain);
    assert!(
        !tags.is_empty()
            && tags
                .lines()
                .all(|l| l == "Doe^Jane|MRN-1616|19700101|F|ACC-16"),
        "{tags}"
    );
    let metrics = std::fs::read_to_string(plain.join("metrics.json")).unwrap();
    assert!(metrics.contains(dcm.to_str().unwrap()));
    // ... with it, pydicom finds them empty, and no text output names the input.
    let tags = patient_tags(&anon);
    assert!(
        !tags.is_empty() && tags.lines().all(|l| l == "||||"),
        "{tags}"
    );
    for e in std::fs::read_dir(&anon).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json" || x == "html") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                !text.contains("patient.dcm") && !text.contains("Doe"),
                "{}",
                p.display()
            );
        }
    }
    // convert --anonymise too.
    let out = s.root.join("converted");
    let o = run(&[
        "convert",
        dcm.to_str().unwrap(),
        out.to_str().unwrap(),
        "--format",
        "dicom",
        "--anonymise",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(patient_tags(&out).trim(), "||||");
}
