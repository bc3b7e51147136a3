//! `warren ca revoke`: adds an identity or a certificate serial to a
//! revocation list file (the text format of `warren_proto::revocation`),
//! which agents and hubs name with `revocation = "FILE"` and reload when it
//! changes.

use core::fmt;
use std::path::Path;

use warren_proto::identity::SpiffeId;
use warren_proto::revocation::{RevocationList, Serial};

/// What to revoke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// Every certificate of an identity.
    Identity(SpiffeId),
    /// One certificate, by serial number.
    Serial(Serial),
}

impl fmt::Display for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revocation::Identity(id) => write!(f, "{id}"),
            Revocation::Serial(serial) => write!(f, "certificate serial {serial}"),
        }
    }
}

/// Adds `what` with `reason` to the list in `file` (created if missing)
/// and returns what happened. The file is replaced in one rename, so a
/// node reloading it never reads half a list.
pub fn revoke(file: &Path, what: &Revocation, reason: &str) -> Result<String, String> {
    let mut list = match std::fs::read_to_string(file) {
        Ok(text) => RevocationList::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RevocationList::default(),
        Err(e) => return Err(format!("{}: cannot read: {e}", file.display())),
    };
    let added = match what {
        Revocation::Identity(id) => list.revoke_identity(id.clone(), reason),
        Revocation::Serial(serial) => list.revoke_serial(serial.clone(), reason),
    }
    .map_err(|e| format!("{what}: {e}"))?;
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, list.to_text())
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| format!("{}: cannot write: {e}", file.display()))?;
    Ok(match added {
        true => format!("revoked {what} in {}\n", file.display()),
        false => format!("{what} was already revoked in {}\n", file.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_creates_then_extends_the_list() {
        let dir = std::env::temp_dir().join(format!("warren-revoke-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("revoked.txt");
        let a = SpiffeId::parse("spiffe://t.org/ns/a/sa/one").unwrap();
        let b = SpiffeId::parse("spiffe://t.org/ns/b/sa/two").unwrap();
        let (ra, rb) = (
            Revocation::Identity(a.clone()),
            Revocation::Identity(b.clone()),
        );
        assert!(revoke(&file, &ra, "stolen laptop")
            .unwrap()
            .starts_with("revoked"));
        assert!(revoke(&file, &rb, "").unwrap().starts_with("revoked"));
        assert!(revoke(&file, &ra, "again").unwrap().contains("already"));
        let serial = Revocation::Serial(Serial::parse_hex("3F:9a:01").unwrap());
        assert_eq!(
            revoke(&file, &serial, "key leaked").unwrap(),
            format!("revoked certificate serial 3f9a01 in {}\n", file.display())
        );
        assert!(revoke(&file, &serial, "").unwrap().contains("already"));
        let list = RevocationList::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            list.identities().cloned().collect::<Vec<_>>(),
            vec![a.clone(), b]
        );
        assert!(list.check(&a, None).is_err());
        let other = SpiffeId::parse("spiffe://t.org/ns/c/sa/three").unwrap();
        assert!(list.check(&other, Some(&[0x00, 0x3f, 0x9a, 0x01])).is_err());
        assert!(list.check(&other, Some(&[0x3f, 0x9a])).is_ok());
    }
}
