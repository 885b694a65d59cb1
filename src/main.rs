//! Thin entry point: parse arguments, run the library, print errors on one line
//! (exit 1: the work failed; exit 2: a bad argument or setting, found before any work).
fn main() {
    std::process::exit(scorerecon::cli::main());
}
