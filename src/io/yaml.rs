//! YAML settings files (task configs, training configs, batch manifests): the one reader, so
//! every file gets the same messages (`FILE: cannot read the config`, `FILE: not valid YAML`).

use anyhow::{bail, Context, Result};
use serde_yaml_ng::{Mapping, Value};
use std::path::Path;

/// A YAML document as a mapping; `what` names it in messages ("config", "manifest"). An empty
/// document is an empty mapping.
pub fn parse_mapping(text: &str, what: &str) -> Result<Mapping> {
    match serde_yaml_ng::from_str::<Value>(text).context("not valid YAML")? {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        _ => bail!("a {what} is a mapping of settings"),
    }
}

/// [`parse_mapping`] of a file; errors name the file.
pub fn read_mapping(path: &Path, what: &str) -> Result<Mapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the {what}", path.display()))?;
    parse_mapping(&text, what).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_empty_documents_and_refusals() {
        assert_eq!(parse_mapping("a: 1\n", "config").unwrap().len(), 1);
        assert!(parse_mapping("", "config").unwrap().is_empty());
        let e = parse_mapping("- 1\n", "manifest").unwrap_err().to_string();
        assert_eq!(e, "a manifest is a mapping of settings");
        let e = read_mapping(Path::new("/no/such.yaml"), "config").unwrap_err();
        assert!(format!("{e:#}").starts_with("/no/such.yaml: cannot read the config"));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.yaml");
        std::fs::write(&p, "a: [1\n").unwrap();
        let e = format!("{:#}", read_mapping(&p, "config").unwrap_err());
        assert!(e.contains("bad.yaml: not valid YAML"), "{e}");
    }
}
