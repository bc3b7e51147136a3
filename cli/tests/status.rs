//! `warren status` when no agent answers: one line that says where it
//! looked and what to check, exit code 1.

mod support;

use support::{free_port, warren};

#[test]
fn status_without_an_agent_says_where_it_looked() {
    let admin = format!("127.0.0.1:{}", free_port());
    let out = warren()
        .args(["status", "--admin", &admin])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "warren: no agent answering at {admin}: connection refused; \
             is `warren agent` running with admin = \"{admin}\"?"
        )
    );
}
