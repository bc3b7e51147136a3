//! Settings and protective limits of one HTTP/2 connection.
//!
//! Every limit is configurable; the defaults are safe against the known
//! HTTP/2 attacks (rapid reset CVE-2023-44487, MadeYouReset CVE-2025-8671,
//! CONTINUATION flood, HPACK bomb, PING/SETTINGS floods, zero-window hold).

use core::time::Duration;

/// A rate limit: at most `max` events in any window of length `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed per window.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

/// Configuration of one HTTP/2 connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Initial stream receive window we announce (default 4 MiB).
    pub initial_stream_window: u32,
    /// Connection receive window we keep (default 16 MiB).
    pub initial_connection_window: u32,
    /// Largest frame payload we accept (default 1 MiB).
    pub max_frame_size: u32,
    /// Largest header list we accept, in RFC 9113 §6.5.2 terms (default 64 KiB).
    pub max_header_list_size: u32,
    /// Concurrent streams the peer may open (default 1000).
    pub max_concurrent_streams: u32,
    /// Our HPACK decoder table size (default 4096).
    pub header_table_size: u32,
    /// The most HPACK table size we use for encoding even if the peer allows
    /// more (default 4096).
    pub max_encoder_table_size: u32,
    /// CONTINUATION frames allowed in one field block (default 32).
    pub max_continuation_frames: u32,
    /// Peer-opened streams waiting for the application to take them
    /// (default 1000); above it new streams are refused.
    pub max_pending_accept: u32,
    /// Bytes of queued output (frames not yet taken by `poll_transmit`)
    /// above which `send_data` accepts nothing more (default 1 MiB).
    pub max_send_buffer: u32,
    /// Queued control frames (PING/SETTINGS ACKs, RST_STREAM) the peer may
    /// cause while we cannot write; above it: ENHANCE_YOUR_CALM (default 10_000).
    pub max_pending_control_frames: u32,
    /// Streams the peer may reset (rapid reset, CVE-2023-44487).
    pub remote_reset_rate: RateLimit,
    /// Streams we reset because of the peer's misbehaviour (MadeYouReset,
    /// CVE-2025-8671).
    pub local_reset_rate: RateLimit,
    /// PING frames from the peer.
    pub ping_rate: RateLimit,
    /// SETTINGS frames from the peer.
    pub settings_rate: RateLimit,
    /// Parameters in one SETTINGS frame from the peer (default 32, as
    /// nghttp2). Each SETTINGS_INITIAL_WINDOW_SIZE shifts every open
    /// stream's window, so an uncapped 1 MiB frame of them costs
    /// 174,762 × open streams updates (CVE-2020-11080).
    pub max_settings_per_frame: u32,
    /// DATA frames with no payload and no END_STREAM, and HEADERS/
    /// CONTINUATION with empty fragments.
    pub empty_frame_rate: RateLimit,
    /// WINDOW_UPDATE frames from the peer.
    pub window_update_rate: RateLimit,
    /// GOAWAY frames from the peer (default 10 per 10 s). A graceful
    /// shutdown takes two; each one walks the streams above its last id
    /// and becomes an event, so a flood costs far more than it carries.
    pub goaway_rate: RateLimit,
    /// How long the peer has to acknowledge our SETTINGS (default 10 s).
    pub settings_timeout: Duration,
    /// Send a PING after this much silence from the peer (default 30 s;
    /// `None` disables keepalive).
    pub keepalive_interval: Option<Duration>,
    /// Close the connection if a keepalive PING is not answered in this
    /// time (default 10 s).
    pub keepalive_timeout: Duration,
    /// Between the two GOAWAYs of a graceful shutdown (default 1 s: one
    /// round trip is enough for in-flight streams to arrive).
    pub goaway_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_stream_window: 4 << 20,
            initial_connection_window: 16 << 20,
            max_frame_size: 1 << 20,
            max_header_list_size: 64 << 10,
            max_concurrent_streams: 1000,
            header_table_size: 4096,
            max_encoder_table_size: 4096,
            max_continuation_frames: 32,
            max_pending_accept: 1000,
            max_send_buffer: 1 << 20,
            max_pending_control_frames: 10_000,
            remote_reset_rate: RateLimit {
                max: 1000,
                per: Duration::from_secs(10),
            },
            local_reset_rate: RateLimit {
                max: 200,
                per: Duration::from_secs(10),
            },
            ping_rate: RateLimit {
                max: 100,
                per: Duration::from_secs(10),
            },
            settings_rate: RateLimit {
                max: 100,
                per: Duration::from_secs(10),
            },
            max_settings_per_frame: 32,
            empty_frame_rate: RateLimit {
                max: 1000,
                per: Duration::from_secs(10),
            },
            window_update_rate: RateLimit {
                max: 10_000,
                per: Duration::from_secs(1),
            },
            goaway_rate: RateLimit {
                max: 10,
                per: Duration::from_secs(10),
            },
            settings_timeout: Duration::from_secs(10),
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(10),
            goaway_grace: Duration::from_secs(1),
        }
    }
}
