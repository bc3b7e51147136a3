//! SETTINGS (RFC 9113 §6.5): what we announce from [`Config`], and what the
//! peer announced to us.

use super::config::Config;
use super::frame::{setting, Setting, DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, MAX_WINDOW};
use super::hpack::DEFAULT_TABLE_SIZE;

/// SETTINGS_INITIAL_WINDOW_SIZE before any SETTINGS (RFC 9113 §6.5.2).
pub(super) const DEFAULT_WINDOW: u32 = 65_535;

/// `config` with every value forced into its legal range, so that nothing
/// later has to second-guess it.
pub(super) fn clamp(mut config: Config) -> Config {
    config.max_frame_size = config
        .max_frame_size
        .clamp(DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE);
    config.initial_stream_window = config.initial_stream_window.min(MAX_WINDOW);
    config.initial_connection_window = config.initial_connection_window.min(MAX_WINDOW);
    config.max_continuation_frames = config.max_continuation_frames.max(1);
    config
}

/// Our SETTINGS: every value of `config` that differs from the protocol
/// default, and push disabled.
pub(super) fn local_settings(config: &Config) -> Vec<Setting> {
    let mut list = Vec::with_capacity(6);
    let mut put = |id, value| list.push(Setting { id, value });
    if config.header_table_size as usize != DEFAULT_TABLE_SIZE {
        put(setting::HEADER_TABLE_SIZE, config.header_table_size);
    }
    put(setting::ENABLE_PUSH, 0);
    put(
        setting::MAX_CONCURRENT_STREAMS,
        config.max_concurrent_streams,
    );
    if config.initial_stream_window != DEFAULT_WINDOW {
        put(setting::INITIAL_WINDOW_SIZE, config.initial_stream_window);
    }
    if config.max_frame_size != DEFAULT_MAX_FRAME_SIZE {
        put(setting::MAX_FRAME_SIZE, config.max_frame_size);
    }
    put(setting::MAX_HEADER_LIST_SIZE, config.max_header_list_size);
    list
}

/// The peer's settings as they currently apply to what we send.
#[derive(Clone, Copy, Debug)]
pub(super) struct PeerSettings {
    /// Streams we may have open at once (`u32::MAX` = no limit announced).
    pub(super) max_concurrent_streams: u32,
    /// Initial send window of new streams.
    pub(super) initial_window_size: u32,
    /// Largest frame payload we may send.
    pub(super) max_frame_size: u32,
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            max_concurrent_streams: u32::MAX,
            initial_window_size: DEFAULT_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_announce_only_what_differs() {
        let list = local_settings(&Config::default());
        let ids: Vec<u16> = list.iter().map(|s| s.id).collect();
        assert_eq!(
            ids,
            [
                setting::ENABLE_PUSH,
                setting::MAX_CONCURRENT_STREAMS,
                setting::INITIAL_WINDOW_SIZE,
                setting::MAX_FRAME_SIZE,
                setting::MAX_HEADER_LIST_SIZE
            ]
        );
        let cfg = Config {
            initial_stream_window: DEFAULT_WINDOW,
            max_frame_size: 1,
            ..Config::default()
        };
        let cfg = clamp(cfg);
        assert_eq!(cfg.max_frame_size, DEFAULT_MAX_FRAME_SIZE);
        assert_eq!(local_settings(&cfg).len(), 3);
    }
}
