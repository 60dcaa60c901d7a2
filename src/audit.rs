//! TEMPORARY shim: replaced by the audit branch's module at merge (same API).

use std::path::{Path, PathBuf};

/// The audit log.
#[derive(Clone, Debug, Default)]
pub struct Audit {
    path: Option<PathBuf>,
}

impl Audit {
    /// Opens the file.
    pub fn open(path: &Path, _job: &str) -> std::io::Result<Audit> {
        Ok(Audit {
            path: Some(path.to_path_buf()),
        })
    }
    /// Writes nothing.
    pub fn disabled() -> Audit {
        Audit { path: None }
    }
    /// The file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// An operator action.
    pub fn operator(&self, _action: &str, _from: &str, _value: Option<serde_json::Value>) {}
    /// A note.
    pub fn note(&self, _what: &str, _detail: serde_json::Value) {}
}

/// The default place.
pub fn default_path() -> Option<PathBuf> {
    None
}
