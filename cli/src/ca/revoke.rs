//! `warren ca revoke`: adds an identity to a revocation list file (the
//! text format of `warren_proto::revocation`), which agents and hubs name
//! with `revocation = "FILE"` and reload when it changes.

use std::path::Path;

use warren_proto::identity::SpiffeId;
use warren_proto::revocation::RevocationList;

/// Adds `id` with `reason` to the list in `file` (created if missing) and
/// returns what happened. The file is replaced in one rename, so a node
/// reloading it never reads half a list.
pub fn revoke(file: &Path, id: &SpiffeId, reason: &str) -> Result<String, String> {
    let mut list = match std::fs::read_to_string(file) {
        Ok(text) => RevocationList::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RevocationList::default(),
        Err(e) => return Err(format!("{}: cannot read: {e}", file.display())),
    };
    let added = list
        .revoke_identity(id.clone(), reason)
        .map_err(|e| format!("{id}: {e}"))?;
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, list.to_text())
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| format!("{}: cannot write: {e}", file.display()))?;
    Ok(match added {
        true => format!("revoked {id} in {}\n", file.display()),
        false => format!("{id} was already revoked in {}\n", file.display()),
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
        assert!(revoke(&file, &a, "stolen laptop")
            .unwrap()
            .starts_with("revoked"));
        assert!(revoke(&file, &b, "").unwrap().starts_with("revoked"));
        assert!(revoke(&file, &a, "again").unwrap().contains("already"));
        let list = RevocationList::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            list.identities().cloned().collect::<Vec<_>>(),
            vec![a.clone(), b]
        );
        assert!(list.check(&a, None).is_err());
    }
}
