//! Hub ↔ agent control messages: values, framing and the hub's check of
//! what an agent may announce.
//!
//! Rooms:
//! - `message`: [`Message`] and its parts (serde, encoded with postcard).
//! - `codec`: length-prefixed, versioned frames; [`encode`] and the
//!   streaming [`FrameDecoder`].
//! - `announce_policy`: [`AnnouncePolicy`], identity glob → services it may
//!   export.
//! - `split`: [`encode_split`], registry messages over the frame limit as
//!   several frames.
//!
//! Control messages travel on the agent's forward connection to a hub (one
//! HBONE stream set aside for control); see `crate::registry` for what the
//! hub does with announcements.

mod announce_policy;
mod codec;
mod message;
mod split;
#[cfg(test)]
mod tests;

pub use announce_policy::{
    AnnouncePolicy, ExportRule, ServiceAllowance, DEFAULT_MAX_SERVICES_PER_AGENT,
};
pub use codec::{
    encode, DecodeError, EncodeError, FrameDecoder, DEFAULT_MAX_FRAME_LEN, HEADER_LEN,
    PROTOCOL_VERSION,
};
pub use message::{
    Announce, ControlError, DeltaError, Endpoint, ErrorCode, Evict, EvictReason, Message,
    RegistryDelta, RegistryEntry, RegistrySnapshot, Rejection, Sender, ServicePort,
};
pub use split::encode_split;
