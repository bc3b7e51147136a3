//! `warren status`: asks a running agent's admin endpoint for `/status`
//! and prints it as a short summary (identity, listeners, peers, flows,
//! recent denials, hubs).

mod client;
mod render;

pub use client::{get, FetchError};
pub use render::Summary;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Fetches `/status` from the agent whose admin endpoint is `admin` and
/// returns the summary to print; the error says what to check.
pub fn summary(admin: SocketAddr) -> Result<String, String> {
    let body = get(admin, "/status").map_err(|e| e.to_string())?;
    let status: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("{admin} answered /status with something not JSON: {e}"))?;
    let now_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(Summary {
        status: &status,
        now_unix_ms,
    }
    .to_string())
}
