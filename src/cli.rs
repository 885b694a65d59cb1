//! Arguments only: each subcommand's options live in `commands/<name>.rs`, which maps them onto
//! the library's plain types and calls it. The library does not know clap.

use crate::commands;
use crate::job::{InvalidSettings, JobSpec, Task};
use crate::names::Named;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "scorerecon",
    version,
    propagate_version = true,
    about = "Reconstruct CT and MRI from incomplete measurements with score-based generative priors"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Say what a file or folder holds: modality, size, spacing, value range, series.
    Info(commands::info::InfoArgs),
    /// Convert any supported input to NIfTI, DICOM or PNG.
    Convert(commands::convert::ConvertArgs),
    /// Sparse-view or limited-angle CT reconstruction (score-based, with FBP and FISTA-TV).
    Ct(commands::recon::CtArgs),
    /// Undersampled MRI reconstruction (score-based, with zero-filled and TV).
    Mri(commands::recon::MriArgs),
    /// Metal artifact removal (score-based, with FBP and linear interpolation).
    Mar(commands::recon::MarArgs),
    /// Run many jobs from a YAML manifest; resumable, one folder per job, summary report.
    Batch(commands::batch::BatchArgs),
    /// The built-in demo: sparse-view CT and undersampled MRI on real scans, with baselines.
    Demo(commands::demo::DemoArgs),
    /// Simulate a measurement (sparse-view, limited-angle or metal CT, or MRI k-space).
    Simulate(commands::simulate::SimulateArgs),
    /// Train a score model on your own scans (DICOM series, NIfTI or NRRD volumes).
    Train(commands::train::TrainArgs),
    /// Record a model's prior-fit range over validation scans, for the mismatch warning.
    Calibrate(commands::calibrate::CalibrateArgs),
}

/// A clap parser for a library enum: its names as the possible values (listed in `--help` and
/// in the error for a wrong one).
pub fn named<T: Named + Send + Sync + Clone>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::names())
        .map(|s| crate::names::parse::<T>(&s).expect("one of the possible values"))
}

/// The command tree, with each task's defaults (read off `JobSpec::for_task`, the one place they
/// are set) appended to the help of the options they belong to.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for task in [Task::Ct, Task::Mri, Task::Mar] {
        let defaults = JobSpec::for_task(task).settings_json();
        cmd = cmd.mut_subcommand(task.name(), |sub| {
            let ids: Vec<String> = sub
                .get_arguments()
                .map(|a| a.get_id().to_string())
                .collect();
            ids.into_iter().fold(sub, |sub, id| {
                let key = if id == "slice" { "slices" } else { id.as_str() };
                match defaults.get(key).and_then(shown) {
                    Some(d) => sub.mut_arg(&id, |a| {
                        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                        a.help(format!("{help} [default: {d}]"))
                    }),
                    None => sub,
                }
            })
        });
    }
    cmd
}

/// A default as the user would type it; None for unset options and off switches.
fn shown(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) => Some(a.iter().filter_map(shown).collect::<Vec<_>>().join(",")),
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        // 3000, not 3000.0: as a user types it.
        Value::Number(n) => Some(match n.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

/// Parse the command line and run it. Exit status: 0 done, 1 failed, 2 a usage error (a bad
/// flag or setting, reported in one line before any work).
pub fn main() -> i32 {
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return 2;
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.render().to_string().lines().next().unwrap_or(""));
            return 2;
        }
    };
    let subject = cli.command.subject();
    // Last line of defence: a panic in a dependency (or here) becomes one line naming the input
    // and exit status 1, not a backtrace and 101. Readers validate so that none should happen.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli)));
    std::panic::set_hook(default_hook);
    let outcome = match outcome {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            // Whoever read our output stopped reading (`scorerecon info DIR | head`): stop
            // quietly with the status of a process killed by SIGPIPE, as `cat` does. Rust
            // ignores SIGPIPE, so the failed write surfaces as `println!`'s panic instead.
            if what.starts_with("failed printing to stdout") && what.contains("Broken pipe") {
                return 128 + 13;
            }
            eprintln!(
                "error: {subject}: internal error ({}): this is a bug in scorerecon, not in your input alone; please report it with the file",
                what.replace('\n', " ")
            );
            return 1;
        }
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            // `{:#}` joins the context chain on one line: "<file>: <what failed>: <why>".
            eprintln!("error: {e:#}");
            if e.downcast_ref::<InvalidSettings>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// clap's error on one line: its first line, the possible values when it lists them, and where
/// to look.
fn one_line(text: &str) -> String {
    let mut line = text
        .lines()
        .next()
        .unwrap_or("error: bad arguments")
        .to_string();
    // "the following required arguments were not provided:" lists them on the lines below.
    if line.ends_with(':') {
        let listed: Vec<&str> = text
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with(char::is_whitespace) && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        line.push(' ');
        line.push_str(&listed.join(", "));
    }
    if let Some(values) = text.lines().find(|l| l.contains("[possible values:")) {
        line.push(' ');
        line.push_str(values.trim());
    }
    line + " (see --help)"
}

impl Command {
    /// What the command works on, for a message that must name it: the input path (or the
    /// manifest, the output folder).
    fn subject(&self) -> String {
        let p = |p: &std::path::Path| p.display().to_string();
        match self {
            Command::Info(a) => Some(p(&a.path)),
            Command::Convert(a) => Some(p(&a.input)),
            Command::Ct(a) => a.common.input.as_deref().map(p),
            Command::Mri(a) => a.common.input.as_deref().map(p),
            Command::Mar(a) => a.common.input.as_deref().map(p),
            Command::Batch(a) => Some(p(&a.manifest)),
            Command::Simulate(a) => a.input.as_deref().map(p),
            Command::Train(a) => a.data.first().map(|d| p(d)),
            Command::Demo(a) => Some(p(&a.out)),
            Command::Calibrate(_) => None,
        }
        .unwrap_or_else(|| "scorerecon".into())
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(a) => commands::info::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Ct(a) => commands::recon::run(a),
        Command::Mri(a) => commands::recon::run(a),
        Command::Mar(a) => commands::recon::run(a),
        Command::Batch(a) => commands::batch::run(a),
        Command::Demo(a) => commands::demo::run(a),
        Command::Simulate(a) => commands::simulate::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::Calibrate(a) => commands::calibrate::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(sub: &str) -> String {
        let mut cmd = command();
        cmd.find_subcommand_mut(sub)
            .unwrap()
            .render_long_help()
            .to_string()
    }

    #[test]
    fn task_help_shows_each_tasks_own_defaults() {
        let ct = help("ct");
        assert!(ct.contains("[default: 23]"), "{ct}");
        assert!(ct.contains("[default: 0.841]"), "{ct}");
        assert!(ct.contains("[default: fbp,fista_tv]"), "{ct}");
        assert!(!ct.contains("--acceleration"), "{ct}");
        let mri = help("mri");
        assert!(mri.contains("[default: 0.982]") && mri.contains("[default: equispaced]"));
        assert!(!mri.contains("--views"));
        let mar = help("mar");
        assert!(
            mar.contains("[default: 3000]") && mar.contains("[default: fbp,li]"),
            "{mar}"
        );
    }

    #[test]
    fn every_reconstruction_option_has_a_help_line() {
        let cmd = command();
        for task in ["ct", "mri", "mar"] {
            let sub = cmd.find_subcommand(task).unwrap();
            for a in sub.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(a.get_help().is_some(), "{task} --{id} has no help");
            }
        }
    }
}
