//! One module per subcommand: its arguments (clap derive) and its `run`.

pub mod batch;
pub mod calibrate;
pub mod convert;
pub mod demo;
pub mod info;
pub mod recon;
pub mod simulate;
pub mod train;
