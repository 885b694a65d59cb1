//! Batches past one machine: `scorerecon batch --shard`, `--status`, `--summary` and `--slurm`
//! against a real Slurm (Debian's slurm-wlm and munge, installed by scripts/setup.sh): the test
//! starts munged, slurmctld and slurmd on localhost from a generated slurm.conf in a temporary
//! folder, submits through sbatch, cancels a task with scancel and requeues one with scontrol
//! (what preemption does), and stops every daemon (and any job process left) when it ends,
//! whether it passed or failed. It takes about a minute, most of it the jobs themselves.

mod common;

use common::{bin, phantoms};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Six small CT jobs (32x32, the empirical prior, a 5-step DDS run: about a second each) and,
/// at manifest position 4 (shard 1 of 3), one that samples long enough to be cancelled mid-run.
const JOBS: [&str; 6] = ["s0", "s1", "s2", "s3", "slow", "s5"];

struct Study {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manifest: PathBuf,
}

fn study() -> Study {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    phantoms(&root.join("refs/train.nii.gz"), 8, 32, 1, "CT");
    phantoms(&root.join("scan.nii.gz"), 6, 32, 2, "CT");
    let mut m = String::from(
        "defaults: {task: ct, model: 'empirical:refs', views: 12, baselines: [fbp], device: cpu, sampler: dds, steps: 5}\njobs:\n",
    );
    for (k, name) in JOBS.iter().enumerate() {
        if *name == "slow" {
            m.push_str(&format!(
                "  - {{name: {name}, input: scan.nii.gz, slices: [{k}], sampler: pc, steps: 4000}}\n"
            ));
        } else {
            m.push_str(&format!(
                "  - {{name: {name}, input: scan.nii.gz, slices: [{k}]}}\n"
            ));
        }
    }
    let manifest = root.join("study.yaml");
    std::fs::write(&manifest, m).unwrap();
    Study {
        _dir: dir,
        root,
        manifest,
    }
}

fn out_of(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// A single-node Slurm cluster on localhost, alive as long as the value. Drop stops it: jobs
/// cancelled, daemons terminated, and every process that still carries this cluster's
/// SLURM_CONF in its environment (slurmstepd, a job's shell) killed by pid.
struct LocalSlurm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// Who runs the daemons and submits (SlurmUser): the test's own user.
    user: String,
    daemons: Vec<(&'static str, Child)>,
}

fn program(name: &str) -> PathBuf {
    for d in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed: run `bash scripts/setup.sh` (make test does; it installs Debian's slurm-wlm and munge)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    logs: impl Fn() -> String,
) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl LocalSlurm {
    fn start() -> LocalSlurm {
        let dir = tempfile::Builder::new()
            .prefix("scorerecon-slurm-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let key: Vec<u8> = (0..64)
            .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
            .collect();
        std::fs::write(d.join("munge.key"), key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.join("munge.key"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let socket = d.join("munge.socket");
        let conf = d.join("slurm.conf");
        let p = |s: &str| d.join(s).display().to_string();
        std::fs::write(
            &conf,
            format!(
                "ClusterName=scorerecontest\n\
                 SlurmctldHost=localhost(127.0.0.1)\n\
                 SlurmUser={user}\nSlurmdUser={user}\n\
                 SlurmctldPort={}\nSlurmdPort={}\n\
                 AuthType=auth/munge\nAuthInfo=socket={}\nCredType=cred/munge\n\
                 StateSaveLocation={}\nSlurmdSpoolDir={}\n\
                 SlurmctldPidFile={}\nSlurmdPidFile={}\n\
                 SlurmctldLogFile={}\nSlurmdLogFile={}\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
                 JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
                 MpiDefault=none\nSchedulerType=sched/builtin\n\
                 SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
                 ReturnToService=2\nSlurmdParameters=config_overrides\nKillWait=5\n\
                 NodeName=localhost NodeAddr=127.0.0.1 CPUs=3 State=UNKNOWN\n\
                 PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                free_port(),
                free_port(),
                socket.display(),
                p("state"),
                p("spool"),
                p("slurmctld.pid"),
                p("slurmd.pid"),
                p("log/slurmctld.log"),
                p("log/slurmd.log"),
            ),
        )
        .unwrap();
        let mut cluster = LocalSlurm {
            dir,
            conf,
            user,
            daemons: vec![],
        };
        let d = cluster.dir.path().to_path_buf();
        let log = |name: &str| std::fs::File::create(d.join("log").join(name)).unwrap();
        let munged = cluster
            .daemon(&program("munged"))
            .args(["-F", "-f"])
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", d.join("munge.key").display()))
            .arg(format!("--pid-file={}", d.join("munged.pid").display()))
            .arg(format!("--seed-file={}", d.join("munged.seed").display()))
            .arg(format!("--log-file={}", d.join("log/munged.log").display()))
            .stdout(log("munged.out"))
            .stderr(log("munged.err"))
            .spawn()
            .expect("start munged");
        cluster.daemons.push(("munged", munged));
        wait_for(
            "munged's socket",
            Duration::from_secs(20),
            || socket.exists(),
            || cluster.logs(),
        );
        let ctld = cluster
            .daemon(&program("slurmctld"))
            .arg("-D")
            .arg("-f")
            .arg(&cluster.conf)
            .stdout(log("slurmctld.out"))
            .stderr(log("slurmctld.err"))
            .spawn()
            .expect("start slurmctld");
        cluster.daemons.push(("slurmctld", ctld));
        let slurmd = cluster
            .daemon(&program("slurmd"))
            .args(["-D", "-N", "localhost", "-f"])
            .arg(&cluster.conf)
            .stdout(log("slurmd.out"))
            .stderr(log("slurmd.err"))
            .spawn()
            .expect("start slurmd");
        cluster.daemons.push(("slurmd", slurmd));
        wait_for(
            "the node to be idle in sinfo",
            Duration::from_secs(60),
            || {
                let (_, o, _) = out_of(cluster.cmd("sinfo").args(["-h", "-o", "%T"]));
                o.trim() == "idle"
            },
            || cluster.logs(),
        );
        cluster
    }

    /// A command that talks to this cluster.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn daemon(&self, path: &Path) -> Command {
        let mut c = Command::new(path);
        c.env("SLURM_CONF", &self.conf).stdin(Stdio::null());
        c
    }

    /// The cluster's logs, for a failure message.
    fn logs(&self) -> String {
        let mut s = String::new();
        for name in [
            "munged.err",
            "slurmctld.log",
            "slurmctld.err",
            "slurmd.log",
            "slurmd.err",
        ] {
            let text =
                std::fs::read_to_string(self.dir.path().join("log").join(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            s.push_str(&format!("--- {name} (last lines)\n"));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// The ids of the jobs Slurm still has pending or running.
    fn queue(&self) -> Vec<String> {
        let (ok, o, e) = out_of(self.cmd("squeue").args(["-h", "-o", "%i %T"]));
        assert!(ok, "squeue failed: {e}\n{}", self.logs());
        o.lines().map(|l| l.to_string()).collect()
    }

    fn wait_idle(&self, what: &str, timeout: Duration, task_logs: &Path) {
        wait_for(
            what,
            timeout,
            || self.queue().is_empty(),
            || {
                format!(
                    "queue: {:?}\n{}\n{}",
                    self.queue(),
                    read_logs(task_logs),
                    self.logs()
                )
            },
        );
    }

    /// Processes other than this one that carry this cluster's SLURM_CONF.
    fn our_processes(&self) -> Vec<u32> {
        let marker = format!("SLURM_CONF={}", self.conf.display());
        let me = std::process::id();
        let mut pids = vec![];
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                if let Ok(env) = std::fs::read(e.path().join("environ")) {
                    if env.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
                        pids.push(pid);
                    }
                }
            }
        }
        pids
    }
}

impl Drop for LocalSlurm {
    fn drop(&mut self) {
        // Cancel whatever is queued or running while the controller can still do it.
        let _ = self
            .cmd("scancel")
            .args(["--full", "--user", &self.user])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            match out_of(self.cmd("squeue").args(["-h", "-o", "%i"])) {
                (true, o, _) if o.trim().is_empty() => break,
                (false, _, _) => break,
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        // Daemons in reverse order of start: SIGTERM, then SIGKILL for any that linger.
        for (_, child) in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for (_, child) in self.daemons.iter_mut().rev() {
            let t0 = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if t0.elapsed() > Duration::from_secs(10) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        // slurmstepd and job processes outlive slurmd: every one of ours, by pid.
        for pid in self.our_processes() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Every task log of `dir` (`<array>_<task>.out`), for a failure message.
fn read_logs(dir: &Path) -> String {
    let mut s = String::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "out"))
        {
            s.push_str(&format!(
                "--- {}\n{}\n",
                p.display(),
                std::fs::read_to_string(&p).unwrap_or_default()
            ));
        }
    }
    s
}

/// From the task logs of array `array` in `dir`: for each task, the jobs it logged with `what`
/// ("started", "already done", ...).
fn logged(dir: &Path, array: &str, what: &str) -> BTreeMap<usize, Vec<String>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(task) = name
            .strip_prefix(&format!("{array}_"))
            .and_then(|r| r.strip_suffix(".out"))
            .and_then(|t| t.parse::<usize>().ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(e.path()).unwrap();
        let jobs: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(" job ")?;
                let (job, said) = rest.split_once(": ")?;
                said.starts_with(what).then(|| job.to_string())
            })
            .collect();
        m.insert(task, jobs);
    }
    m
}

/// Submit with `batch --slurm` and return the array's and the summary job's ids.
fn submit(cluster: &LocalSlurm, s: &Study, out: &Path) -> (String, String) {
    let (ok, stdout, stderr) = out_of(
        bin()
            .env("SLURM_CONF", &cluster.conf)
            .current_dir(&s.root)
            .args([
                "batch",
                s.manifest.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .args([
                "--slurm",
                "--array-size",
                "3",
                "--gpus-per-task",
                "0",
                "--time",
                "00:10:00",
            ]),
    );
    assert!(
        ok,
        "batch --slurm failed:\n{stdout}\n{stderr}\n{}",
        cluster.logs()
    );
    // "submitted array job 12 (3 tasks) and summary job 13 (after the array); ..."
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let after = |w: &str| {
        let i = words
            .windows(2)
            .position(|p| p[0] == w && p[1] == "job")
            .unwrap_or_else(|| panic!("{stdout}"));
        words[i + 2].to_string()
    };
    let (array, summary) = (after("array"), after("summary"));
    assert!(stdout.contains("(3 tasks)"), "{stdout}");
    (array, summary)
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .modified()
        .unwrap()
}

/// Every folder of `out` that is not ours-hidden is a whole job: its metrics.json and report.
fn assert_no_half_written(out: &Path) {
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() && !name.starts_with('.') && name != "slurm" {
            assert!(
                p.join("metrics.json").exists()
                    && p.join("report.html").exists()
                    && p.join("score.nii.gz").exists(),
                "{} is half-written",
                p.display()
            );
        }
    }
}

fn status(s: &Study, out: &Path) -> String {
    let (ok, stdout, stderr) = out_of(bin().args([
        "batch",
        s.manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--status",
    ]));
    assert!(ok, "--status failed: {stderr}");
    stdout
}

#[test]
fn a_slurm_array_runs_every_job_once_and_resumes_after_scancel_and_requeue() {
    let t0 = Instant::now();
    let s = study();
    let cluster = LocalSlurm::start();
    eprintln!("slurm up in {:.1} s", t0.elapsed().as_secs_f64());

    // 1. Six jobs over a three-task array, and the summary after it.
    let out = s.root.join("out");
    let (array, summary) = submit(&cluster, &s, &out);
    let logs = out.join("slurm");
    cluster.wait_idle(
        "the array and its summary job",
        Duration::from_secs(150),
        &logs,
    );
    let started = logged(&logs, &array, "started");
    assert_eq!(
        started.len(),
        3,
        "three task logs: {started:?}\n{}",
        read_logs(&logs)
    );
    for (task, jobs) in &started {
        // Task i ran exactly the jobs of shard i, each once.
        let expected: Vec<String> = (0..6)
            .filter(|k| k % 3 == *task)
            .map(|k| JOBS[k].to_string())
            .collect();
        assert_eq!(jobs, &expected, "task {task}\n{}", read_logs(&logs));
    }
    let done = logged(&logs, &array, "done in");
    assert_eq!(
        done.values().map(Vec::len).sum::<usize>(),
        6,
        "{}",
        read_logs(&logs)
    );
    for name in JOBS {
        assert!(
            out.join(name).join("metrics.json").exists(),
            "{name} missing\n{}",
            read_logs(&logs)
        );
        assert!(
            !out.join(format!("{name}.claim")).exists(),
            "{name}'s claim was left"
        );
    }
    assert_no_half_written(&out);
    let summary_log = std::fs::read_to_string(logs.join(format!("{summary}-summary.out")))
        .unwrap_or_else(|e| panic!("summary log: {e}\n{}", read_logs(&logs)));
    assert!(
        summary_log.contains("6 jobs: 6 done, 0 failed"),
        "{summary_log}"
    );
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    for name in JOBS {
        for method in ["fbp", "score"] {
            assert!(
                csv.contains(&format!("{name},done,{method},")),
                "{name} {method} not in the summary:\n{csv}"
            );
        }
    }
    let html = std::fs::read_to_string(out.join("summary.html")).unwrap();
    for name in JOBS {
        assert!(
            html.contains(&format!("{name}/report.html")),
            "{name} not linked from summary.html"
        );
    }
    eprintln!("first array done at {:.1} s", t0.elapsed().as_secs_f64());

    // 2. Again into a fresh folder; cancel task 1 while it samples its second job ("slow").
    let out = s.root.join("out2");
    let logs = out.join("slurm");
    let (array, _) = submit(&cluster, &s, &out);
    wait_for(
        "task 1 to start job slow",
        Duration::from_secs(120),
        || out.join("slow.claim").exists(),
        || read_logs(&logs),
    );
    assert!(
        !out.join("slow/metrics.json").exists(),
        "slow finished before it could be cancelled"
    );
    let (ok, _, e) = out_of(cluster.cmd("scancel").arg(format!("{array}_1")));
    assert!(ok, "scancel: {e}");
    cluster.wait_idle(
        "the other tasks and the summary job",
        Duration::from_secs(120),
        &logs,
    );
    assert!(
        !out.join("slow").exists(),
        "the cancelled job left a folder"
    );
    assert_no_half_written(&out);
    let st = status(&s, &out);
    assert!(
        st.starts_with("6 jobs: 5 done, 0 failed, 0 running, 1 interrupted, 0 pending"),
        "{st}"
    );
    assert!(
        st.contains("interrupted  slow: claimed by")
            && st.contains(&format!("array task {array}_1")),
        "{st}"
    );
    let before: BTreeMap<&str, SystemTime> = JOBS
        .iter()
        .filter(|j| **j != "slow")
        .map(|j| (*j, mtime(&out.join(j).join("metrics.json"))))
        .collect();

    // 3. Resubmitted: only the cancelled job runs again.
    let (array2, summary2) = submit(&cluster, &s, &out);
    cluster.wait_idle("the resubmitted array", Duration::from_secs(150), &logs);
    let started: Vec<String> = logged(&logs, &array2, "started")
        .into_values()
        .flatten()
        .collect();
    assert_eq!(started, vec!["slow"], "{}", read_logs(&logs));
    let mut skipped: Vec<String> = logged(&logs, &array2, "already done")
        .into_values()
        .flatten()
        .collect();
    skipped.sort();
    assert_eq!(skipped, vec!["s0", "s1", "s2", "s3", "s5"]);
    let took_over: Vec<String> = logged(&logs, &array2, "took over the stale claim")
        .into_values()
        .flatten()
        .collect();
    assert_eq!(took_over, vec!["slow"], "{}", read_logs(&logs));
    for (job, t) in &before {
        assert_eq!(
            mtime(&out.join(job).join("metrics.json")),
            *t,
            "{job} was redone"
        );
    }
    assert_no_half_written(&out);
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with(".claim") || n.contains("takeover"))
        .collect();
    assert!(leftovers.is_empty(), "left in the folder: {leftovers:?}");
    let summary_log =
        std::fs::read_to_string(logs.join(format!("{summary2}-summary.out"))).unwrap();
    assert!(
        summary_log.contains("6 jobs: 6 done, 0 failed"),
        "{summary_log}"
    );
    assert!(status(&s, &out).starts_with("6 jobs: 6 done"));

    // 4. Preemption: Slurm requeues task 1 while it samples "slow" (`scontrol requeue`, what
    // PreemptMode=REQUEUE does). The same task runs again, under the same job id with
    // SLURM_RESTART_COUNT 1, appending to its log: it skips s1 and redoes slow at once.
    let out = s.root.join("out3");
    let logs = out.join("slurm");
    let (array, summary) = submit(&cluster, &s, &out);
    wait_for(
        "task 1 to start job slow",
        Duration::from_secs(120),
        || out.join("slow.claim").exists(),
        || read_logs(&logs),
    );
    let task = format!("{array}_1");
    let (ok, _, e) = out_of(cluster.cmd("scontrol").args(["requeue", &task]));
    assert!(ok, "scontrol requeue: {e}");
    // A requeued job waits for a begin time Slurm sets (minutes): set it to now, again for as
    // long as a job of ours waits on it (an update made while the task was being requeued does
    // not hold).
    wait_for(
        "the requeued task to run again",
        Duration::from_secs(60),
        || {
            let (_, q, _) = out_of(cluster.cmd("squeue").args(["-h", "-o", "%i %T %r"]));
            for line in q.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() == 3 && f[1] == "PENDING" && f[2] == "BeginTime" {
                    let _ = out_of(cluster.cmd("scontrol").args([
                        "update",
                        &format!("jobid={}", f[0]),
                        "StartTime=now",
                    ]));
                }
            }
            std::thread::sleep(Duration::from_millis(300));
            // The task's second run has claimed slow (or already finished it).
            let claim = std::fs::read_to_string(out.join("slow.claim")).unwrap_or_default();
            claim.contains("\"slurm_restart\": 1") || out.join("slow/metrics.json").exists()
        },
        || {
            format!(
                "{:?}\n{}\n{}",
                cluster.queue(),
                read_logs(&logs),
                cluster.logs()
            )
        },
    );
    cluster.wait_idle(
        "the requeued array and its summary job",
        Duration::from_secs(150),
        &logs,
    );
    let text = std::fs::read_to_string(logs.join(format!("{task}.out"))).unwrap();
    let started = logged(&logs, &array, "started");
    assert_eq!(started[&1], vec!["s1", "slow", "slow"], "{text}");
    assert_eq!(
        logged(&logs, &array, "already done")[&1],
        vec!["s1"],
        "{text}"
    );
    let took = logged(&logs, &array, "took over the stale claim");
    assert_eq!(took[&1], vec!["slow"], "{text}");
    assert!(
        text.contains("Slurm requeued job") && text.contains("(restart 0 -> 1)"),
        "{text}"
    );
    assert_no_half_written(&out);
    let summary_log = std::fs::read_to_string(logs.join(format!("{summary}-summary.out"))).unwrap();
    assert!(
        summary_log.contains("6 jobs: 6 done, 0 failed"),
        "the summary ran before the requeued task ended:\n{summary_log}"
    );
    drop(cluster);
    eprintln!("slurm test took {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn the_cluster_is_gone_after_the_test_even_when_it_fails() {
    // A panic while the cluster runs (as a failed assertion would) still stops every daemon.
    let conf_and_pids = std::panic::catch_unwind(|| {
        let cluster = LocalSlurm::start();
        let pids: Vec<u32> = cluster.daemons.iter().map(|(_, c)| c.id()).collect();
        let conf = cluster.conf.clone();
        let _keep = &cluster;
        std::panic::panic_any((conf, pids));
    })
    .unwrap_err();
    let (conf, pids) = conf_and_pids
        .downcast_ref::<(PathBuf, Vec<u32>)>()
        .unwrap()
        .clone();
    assert_eq!(pids.len(), 3);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid),
            "daemon {pid} still runs"
        );
    }
    assert!(!conf.exists(), "the cluster's folder was left");
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[test]
fn two_batch_processes_on_one_folder_run_each_job_once() {
    // The same batch started twice at once by mistake (no Slurm): between them every job runs
    // once, and every folder is whole.
    let s = study();
    let out = s.root.join("twice");
    let start = || {
        bin()
            .args([
                "batch",
                s.manifest.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .env("SCORERECON_PROGRESS_SECONDS", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let mut starts: Vec<String> = vec![];
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        starts.extend(err.lines().filter_map(|l| {
            let (_, rest) = l.split_once(" job ")?;
            rest.strip_suffix(": started").map(str::to_string)
        }));
    }
    starts.sort();
    let mut expected: Vec<String> = JOBS.iter().map(|j| j.to_string()).collect();
    expected.sort();
    assert_eq!(
        starts, expected,
        "each job started once over both processes"
    );
    assert_no_half_written(&out);
    assert!(status(&s, &out).starts_with("6 jobs: 6 done"));
}

#[test]
fn bad_shards_and_a_missing_sbatch_fail_in_one_line_with_no_output() {
    let s = study();
    let out = s.root.join("o");
    for (shard, why) in [
        ("3/2", "count from 0"),
        ("0/0", "at least 1"),
        ("x", "expected I/N"),
    ] {
        let (ok, stdout, stderr) = out_of(bin().args([
            "batch",
            s.manifest.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--shard",
            shard,
        ]));
        assert!(!ok && stdout.is_empty(), "--shard {shard}: {stdout}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("--shard {shard}")) && stderr.contains(why),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A Slurm array task's own variables that do not describe a shard.
    let (ok, _, stderr) = out_of(
        bin()
            .args([
                "batch",
                s.manifest.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .env("SLURM_ARRAY_TASK_ID", "4")
            .env("SLURM_ARRAY_TASK_COUNT", "3"),
    );
    assert!(
        !ok && stderr.trim().lines().count() == 1 && stderr.contains("--shard 4/3"),
        "{stderr}"
    );
    // No sbatch on PATH.
    let empty = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = out_of(bin().env("PATH", empty.path()).args([
        "batch",
        s.manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--slurm",
    ]));
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("sbatch not found on PATH") && stderr.contains("--dry-run"),
        "{stderr}"
    );
    assert!(
        !out.exists(),
        "a refused submission wrote {}",
        out.display()
    );
    // --dry-run prints the scripts and writes nothing.
    let (ok, stdout, stderr) = out_of(bin().env("PATH", empty.path()).args([
        "batch",
        s.manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--slurm",
        "--array-size",
        "4",
        "--dry-run",
    ]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("#SBATCH --array=0-3")
            && stdout.contains("--shard \"$SLURM_ARRAY_TASK_ID/4\""),
        "{stdout}"
    );
    assert!(!out.exists());
    // Slurm options without --slurm.
    let (ok, _, stderr) =
        out_of(bin().args(["batch", s.manifest.to_str().unwrap(), "--partition", "gpu"]));
    assert!(
        !ok && stderr.trim().lines().count() == 1 && stderr.contains("--slurm"),
        "{stderr}"
    );
}
