//! Thin entry point: parse arguments, run the library, print errors on one line.
fn main() {
    if let Err(e) = scorerecon::cli::run() {
        // `{:#}` joins the context chain on one line: "<file>: <what failed>: <why>".
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
