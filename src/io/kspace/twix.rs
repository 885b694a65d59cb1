use super::RawKspace;
use std::path::Path;

pub fn read_twix(path: &Path) -> anyhow::Result<RawKspace> {
    anyhow::bail!("{}: Siemens twix is not read yet", path.display())
}
