//! Writing the CA's output: never over an existing file unless asked, and
//! private keys (and tickets, which hold one) readable by the owner only.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CaError;

/// Who may read a file we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrecy {
    /// Certificates: anyone may read them (0644).
    Public,
    /// Keys and tickets: the owner only (0600).
    Secret,
}

impl Secrecy {
    fn mode(self) -> u32 {
        match self {
            Secrecy::Public => 0o644,
            Secrecy::Secret => 0o600,
        }
    }
}

/// One file to write.
#[derive(Debug)]
pub struct Output {
    /// Where.
    pub path: PathBuf,
    /// What.
    pub contents: String,
    /// Who may read it.
    pub secrecy: Secrecy,
}

/// Writes every output, creating parent folders; with `force` false it
/// first checks that none exists, so a refusal leaves nothing half written.
pub fn write_all(outputs: &[Output], force: bool) -> Result<(), CaError> {
    if !force {
        if let Some(existing) = outputs.iter().find(|o| o.path.exists()) {
            return Err(CaError::WouldOverwrite(existing.path.clone()));
        }
    }
    for output in outputs {
        write_one(output, force).map_err(|e| CaError::Io(output.path.clone(), e))?;
    }
    Ok(())
}

fn write_one(output: &Output, force: bool) -> io::Result<()> {
    if let Some(parent) = output.path.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent)?;
        }
    }
    let mode = output.secrecy.mode();
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .create_new(!force)
        .truncate(true)
        .mode(mode)
        .open(&output.path)?;
    // `mode` applies only to a file this call creates; an old file being
    // replaced keeps its permissions unless they are set here, before a
    // secret is written into it.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(output.contents.as_bytes())?;
    file.sync_all()
}

/// Reads a file the CA needs, naming it in the error.
pub fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|e| CaError::Io(path.to_owned(), e))
}
