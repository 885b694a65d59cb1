use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ConvertArgs {
    pub input: PathBuf,
    pub output: PathBuf,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    anyhow::bail!("{}: convert is not implemented yet", args.input.display())
}
