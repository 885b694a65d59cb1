//! Progress of long loops (sampling, TV-weight tuning, training, batches): an indicatif bar when
//! stderr is a terminal; plain timestamped lines every few seconds when it is not (nohup, a batch
//! scheduler's log), so a log shows how far a run is while it runs; nothing when asked to be
//! quiet.
//!
//! A log line reads `2025-06-01 12:00:03 sampling pc, step 118: 120/800 NFE, elapsed 00:00:12,
//! eta 00:01:08`, one every [`DEFAULT_LOG_SECONDS`] (also while one unit takes longer), or every
//! as many seconds as the environment variable [`LOG_SECONDS_ENV`] says (0: one per update).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seconds between two log lines when stderr is not a terminal.
pub const DEFAULT_LOG_SECONDS: f64 = 5.0;
/// Environment variable overriding [`DEFAULT_LOG_SECONDS`] (a number of seconds >= 0).
pub const LOG_SECONDS_ENV: &str = "SCORERECON_PROGRESS_SECONDS";

/// A progress display over `len` units; every method takes `&self` (as indicatif's).
pub struct Progress {
    inner: Inner,
    /// Log mode: the thread that writes a line every interval even while one unit takes longer
    /// (a TV weight, a batch job), so a log never goes quiet for long.
    ticker: Option<JoinHandle<()>>,
}

enum Inner {
    Bar(ProgressBar),
    Log(Arc<Shared>),
    Hidden,
}

struct Shared {
    state: Mutex<LogState>,
    /// Wakes the ticker when the loop ends.
    finished: Condvar,
}

/// What the log lines need: where the loop is and when the last line went out.
struct LogState {
    message: String,
    unit: String,
    len: u64,
    pos: u64,
    start: Instant,
    last_line: Instant,
    interval: Duration,
    lines: usize,
    finished: bool,
}

/// A bar over `len` units named `unit` ("steps", "jobs", "weights").
pub fn bar(len: u64, unit: &str, quiet: bool) -> Progress {
    styled(
        len,
        unit,
        &format!("{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{msg}}"),
        None,
        quiet,
    )
}

/// A bar over `len` units named `unit`, drawn on a terminal with indicatif's `template` and
/// `progress_chars` (filled, current, empty) where given; log lines when stderr is not a
/// terminal; nothing when `quiet`.
pub fn styled(
    len: u64,
    unit: &str,
    template: &str,
    progress_chars: Option<&str>,
    quiet: bool,
) -> Progress {
    if quiet {
        return Progress::hidden();
    }
    if !std::io::stderr().is_terminal() {
        return Progress::log(len, unit, log_interval());
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let mut style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    if let Some(chars) = progress_chars {
        style = style.progress_chars(chars);
    }
    pb.set_style(style);
    Progress {
        inner: Inner::Bar(pb),
        ticker: None,
    }
}

/// The log interval: [`LOG_SECONDS_ENV`] when it holds a number >= 0, else the default (with a
/// warning for a value that is not one, so a typo does not go unnoticed).
fn log_interval() -> Duration {
    let seconds = match std::env::var(LOG_SECONDS_ENV) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => s,
            _ => {
                eprintln!(
                    "warning: {LOG_SECONDS_ENV}={v:?} is not a number of seconds >= 0; \
                     progress lines every {DEFAULT_LOG_SECONDS} s"
                );
                DEFAULT_LOG_SECONDS
            }
        },
        Err(_) => DEFAULT_LOG_SECONDS,
    };
    Duration::from_secs_f64(seconds)
}

impl Progress {
    /// Shows nothing.
    pub fn hidden() -> Self {
        Progress {
            inner: Inner::Hidden,
            ticker: None,
        }
    }

    /// Timestamped lines on stderr, whatever stderr is: one every `interval` (and at every
    /// update when `interval` is 0), and one when finished if any was written.
    pub fn log(len: u64, unit: &str, interval: Duration) -> Self {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            state: Mutex::new(LogState {
                message: String::new(),
                unit: unit.into(),
                len,
                pos: 0,
                start: now,
                last_line: now,
                interval,
                lines: 0,
                finished: false,
            }),
            finished: Condvar::new(),
        });
        // With interval 0 every update writes a line; no clock is needed.
        let ticker = (!interval.is_zero()).then(|| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || tick(&shared))
        });
        Progress {
            inner: Inner::Log(shared),
            ticker,
        }
    }

    pub fn is_hidden(&self) -> bool {
        match &self.inner {
            Inner::Bar(pb) => pb.is_hidden(),
            Inner::Log(_) => false,
            Inner::Hidden => true,
        }
    }

    /// Whether this writes log lines (stderr is not a terminal).
    pub fn is_log(&self) -> bool {
        matches!(self.inner, Inner::Log(_))
    }

    pub fn inc(&self, n: u64) {
        match &self.inner {
            Inner::Bar(pb) => pb.inc(n),
            Inner::Log(s) => {
                let mut s = lock(s);
                s.pos += n;
                s.line_if_due();
            }
            Inner::Hidden => {}
        }
    }

    pub fn set_position(&self, pos: u64) {
        match &self.inner {
            Inner::Bar(pb) => pb.set_position(pos),
            Inner::Log(s) => {
                let mut s = lock(s);
                s.pos = pos;
                s.line_if_due();
            }
            Inner::Hidden => {}
        }
    }

    pub fn set_length(&self, len: u64) {
        match &self.inner {
            Inner::Bar(pb) => pb.set_length(len),
            Inner::Log(s) => lock(s).len = len,
            Inner::Hidden => {}
        }
    }

    /// What is being done ("sampling pc, step 12", "loss 0.0123", a job's name).
    pub fn set_message(&self, message: impl Into<String>) {
        match &self.inner {
            Inner::Bar(pb) => pb.set_message(message.into()),
            Inner::Log(s) => lock(s).message = message.into(),
            Inner::Hidden => {}
        }
    }

    /// A line of its own (a failed batch job), above the bar or in the log.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.inner {
            Inner::Bar(pb) => pb.println(line.as_ref()),
            Inner::Log(_) => eprintln!("{} {}", timestamp(), line.as_ref()),
            Inner::Hidden => {}
        }
    }

    /// Remove the bar; in a log, say that the loop ended (only if it said anything before, so
    /// that short loops leave no lines).
    pub fn finish_and_clear(&self) {
        match &self.inner {
            Inner::Bar(pb) => pb.finish_and_clear(),
            Inner::Log(shared) => {
                let mut s = lock(shared);
                if !s.finished && s.lines > 0 {
                    eprintln!(
                        "{} {}: done, {} {} in {}",
                        timestamp(),
                        s.message,
                        s.pos,
                        s.unit,
                        hms(s.start.elapsed())
                    );
                }
                s.finished = true;
                shared.finished.notify_all();
            }
            Inner::Hidden => {}
        }
    }
}

impl Drop for Progress {
    /// Stop the ticker, also when the loop ended early (an error, a divergence).
    fn drop(&mut self) {
        if let Inner::Log(shared) = &self.inner {
            lock(shared).finished = true;
            shared.finished.notify_all();
        }
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// The ticker: a line whenever `interval` passed without one, until the loop finishes.
fn tick(shared: &Shared) {
    let mut s = lock(shared);
    while !s.finished {
        let due = s.last_line + s.interval;
        let now = Instant::now();
        if now >= due {
            s.line(now);
        } else {
            s = shared
                .finished
                .wait_timeout(s, due - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Lock the log state (a panic elsewhere does not stop progress reporting).
fn lock(shared: &Shared) -> MutexGuard<'_, LogState> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogState {
    fn line_if_due(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_line) >= self.interval {
            self.line(now);
        }
    }

    fn line(&mut self, now: Instant) {
        self.last_line = now;
        self.lines += 1;
        eprintln!(
            "{} {}",
            timestamp(),
            log_line(
                &self.message,
                self.pos,
                self.len,
                &self.unit,
                now.duration_since(self.start)
            )
        );
    }
}

/// `MESSAGE: POS/LEN UNIT, elapsed HH:MM:SS, eta HH:MM:SS`, the ETA at the mean rate so far.
pub fn log_line(message: &str, pos: u64, len: u64, unit: &str, elapsed: Duration) -> String {
    let eta = if pos == 0 {
        "unknown".to_string()
    } else {
        hms(elapsed.mul_f64(len.saturating_sub(pos) as f64 / pos as f64))
    };
    format!(
        "{message}: {pos}/{len} {unit}, elapsed {}, eta {eta}",
        hms(elapsed)
    )
}

fn timestamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Whole seconds as `HH:MM:SS` (hours go past 99 if they must).
fn hms(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hides_and_a_non_terminal_gets_log_lines() {
        assert!(styled(10, "NFE", "{msg} [{bar:40}] {pos}/{len}", Some("=> "), true).is_hidden());
        let shown = bar(7, "steps", false);
        // Test harnesses capture stderr, but run by hand on a terminal this is a bar.
        assert_eq!(shown.is_log(), !std::io::stderr().is_terminal());
        assert!(!shown.is_hidden());
    }

    #[test]
    fn the_log_writes_on_its_clock_while_a_unit_takes_long_and_stops_when_dropped() {
        // No update for ten intervals: the ticker still writes (generous margin for a busy
        // machine: two of the ten), and dropping the display ends its thread (drop joins it).
        let p = Progress::log(3, "weights", Duration::from_millis(30));
        p.set_message("TV weight tuning");
        std::thread::sleep(Duration::from_millis(300));
        let Inner::Log(shared) = &p.inner else {
            unreachable!()
        };
        let lines = lock(shared).lines;
        assert!(lines >= 2, "{lines} lines in 10 intervals");
        drop(p);
    }

    #[test]
    fn log_line_states_position_elapsed_and_the_eta_at_the_mean_rate() {
        // 25 of 100 in 10 s: 75 more at 2.5 per second take 30 s.
        assert_eq!(
            log_line(
                "sampling pc, step 24",
                25,
                100,
                "NFE",
                Duration::from_secs(10)
            ),
            "sampling pc, step 24: 25/100 NFE, elapsed 00:00:10, eta 00:00:30"
        );
        assert_eq!(
            log_line("x", 0, 9, "weights", Duration::from_millis(400)),
            "x: 0/9 weights, elapsed 00:00:00, eta unknown"
        );
        assert_eq!(hms(Duration::from_secs(3 * 3600 + 7 * 60 + 5)), "03:07:05");
    }
}
