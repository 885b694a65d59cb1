//! Progress bars (indicatif) that stay silent when asked to or when stderr is not a terminal, so
//! logs and tests stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar over `len` units named `unit` ("steps", "jobs", "slices").
pub fn bar(len: u64, unit: &str, quiet: bool) -> ProgressBar {
    styled(
        len,
        &format!("{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{msg}}"),
        None,
        quiet,
    )
}

/// A bar over `len` units drawn with indicatif's `template`, and `progress_chars` (filled,
/// current, empty) where given; hidden when `quiet` or when stderr is not a terminal.
pub fn styled(len: u64, template: &str, progress_chars: Option<&str>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let mut style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    if let Some(chars) = progress_chars {
        style = style.progress_chars(chars);
    }
    pb.set_style(style);
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_when_quiet_or_when_stderr_is_not_a_terminal() {
        let quiet = styled(10, "{msg} [{bar:40}] {pos}/{len}", Some("=> "), true);
        assert!(quiet.is_hidden());
        assert_eq!(quiet.length(), Some(10));
        let shown = bar(7, "steps", false);
        assert_eq!(shown.is_hidden(), !std::io::stderr().is_terminal());
        assert_eq!(shown.length(), Some(7));
    }
}
