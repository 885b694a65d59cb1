use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A DICOM file, a folder of DICOM files, or a NIfTI file (.nii, .nii.gz).
    pub path: PathBuf,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("{}: info is not implemented yet", args.path.display())
}
