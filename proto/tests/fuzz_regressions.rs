//! Inputs the fuzz targets in `fuzz/` found, minimized, as ordinary tests:
//! each failed before the fix it names.

use warren_proto::control::{DecodeError, ErrorCode, FrameDecoder, Message, DEFAULT_MAX_FRAME_LEN};

/// Decodes one whole frame.
fn decode_control(frame: &[u8]) -> Result<Option<Message>, DecodeError> {
    let mut input = frame;
    FrameDecoder::new(DEFAULT_MAX_FRAME_LEN).decode(&mut input)
}

/// control_codec: postcard reads `90 00` as the varint 16 (an over-long
/// form of `10`), so a peer could send one message in many byte forms.
/// The decoder now refuses any payload that is not the message's own
/// encoding, and the peer is told its frame was malformed.
#[test]
fn control_overlong_varint_is_refused() {
    // Ping(16): tag 6, then 16 as `90 00` instead of `10`.
    let overlong = [2, 0, 0, 0, 3, 6, 0x90, 0x00];
    let got = decode_control(&overlong);
    assert_eq!(got, Err(DecodeError::NotCanonical));
    assert_eq!(DecodeError::NotCanonical.code(), ErrorCode::Malformed);
    // The same message in its own form still decodes.
    assert_eq!(
        decode_control(&[2, 0, 0, 0, 2, 6, 0x10]),
        Ok(Some(Message::Ping(16)))
    );
}

/// control_codec (the crash as found): an over-long port varint
/// (`90 00` for 16) inside an `Announce`'s plaintext-relay list.
#[test]
fn control_overlong_port_in_announce_is_refused() {
    let mut payload = vec![0, 1, 9];
    payload.extend_from_slice(b"cart.shop");
    payload.extend_from_slice(&[144, 63, 1, 0, 10, 0, 0, 1, 160, 117, 1, 9]);
    payload.extend_from_slice(b"cart.shop");
    payload.extend_from_slice(&[144, 0]);
    let mut frame = vec![2, 0, 0, 0, payload.len() as u8];
    frame.extend_from_slice(&payload);
    assert_eq!(decode_control(&frame), Err(DecodeError::NotCanonical));
    // With the port written `10` the announcement is accepted.
    let last = frame.len() - 2;
    frame.truncate(last);
    frame.push(16);
    frame[4] -= 1;
    assert!(matches!(
        decode_control(&frame),
        Ok(Some(Message::Announce(_)))
    ));
}
