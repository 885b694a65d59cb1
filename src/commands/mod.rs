//! One module per subcommand: its arguments (clap derive) and its `run`.

pub mod convert;
pub mod info;
pub mod train;
