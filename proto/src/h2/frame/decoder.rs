//! [`FrameDecoder`]: finds frames in a byte stream cut at arbitrary points.
//!
//! Three paths, cheapest first:
//! - a whole frame in the input (DATA included) is parsed in place (no
//!   copy, no allocation);
//! - a non-DATA frame split across inputs is copied once into a buffer of
//!   at most `max_frame_size + 9` bytes, allocated on first need and reused;
//! - a DATA frame is streamed: once its header (and pad-length byte) are
//!   known its payload is handed out in pieces straight from the input, so a
//!   1 MiB DATA frame never waits for its last byte nor costs a copy here.

use super::rules::{bad_length, padding_too_long, parse, require_stream};
use super::{flag, kind, Frame, FrameError, FrameHeader, FrameRule, HEADER_LEN};
use crate::h2::{ErrorCode, StreamId};

/// Reassembles frames from arbitrary chunks of input.
///
/// Complete frames in the input are parsed in place (no copy). A frame split
/// across chunks is copied once into an internal buffer, bounded by the max
/// frame size plus the header, except DATA, whose payload is handed out in
/// pieces as it arrives and is never buffered here.
pub struct FrameDecoder {
    /// Largest payload accepted; checked on each header before anything of
    /// the frame is buffered.
    max_frame_size: u32,
    /// Partial frame bytes (see [`State`]); empty and unallocated until a
    /// frame is first split across inputs.
    buf: Vec<u8>,
    state: State,
}

impl core::fmt::Debug for FrameDecoder {
    /// The buffer's size, not its bytes (up to a whole frame of them).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("max_frame_size", &self.max_frame_size)
            .field("buffered", &self.buffered())
            .field("state", &self.state)
            .finish()
    }
}

/// Where the decoder stands in the byte stream.
#[derive(Clone, Copy, Debug)]
enum State {
    /// At a frame boundary; `buf` holds the first bytes (fewer than
    /// [`HEADER_LEN`]) of the next header.
    Header,
    /// `buf` holds this non-DATA frame's header and part of its payload.
    Payload(FrameHeader),
    /// `buf` holds a complete frame that the previous call returned (its
    /// bytes were borrowed by the result); cleared on the next call.
    Spent,
    /// Inside a DATA frame's payload.
    Data(DataProgress),
    /// A connection error ended decoding; every call returns it again.
    Failed(FrameError),
}

/// How far a streamed DATA frame has come.
#[derive(Clone, Copy, Debug)]
struct DataProgress {
    stream_id: StreamId,
    end_stream: bool,
    /// The PADDED frame's pad-length byte has not arrived yet.
    awaiting_pad_len: bool,
    /// Payload bytes still to come (before the padding).
    data_left: u32,
    /// Padding bytes still to skip.
    pad_left: u32,
    /// Flow-controlled bytes consumed but not yet reported in a piece (the
    /// pad-length byte or padding that arrived at the end of an input).
    unreported: u32,
    /// No piece of this frame has been handed out yet.
    first: bool,
}

impl DataProgress {
    fn new(header: FrameHeader) -> Result<DataProgress, FrameError> {
        let stream_id = require_stream(header)?;
        let padded = header.has_flag(flag::PADDED);
        let data_left = if padded {
            // The pad-length byte is mandatory: no room for it is a frame
            // too small for its fields (RFC 9113 §4.2).
            header
                .length
                .checked_sub(1)
                .ok_or_else(|| bad_length(header.kind))?
        } else {
            header.length
        };
        Ok(DataProgress {
            stream_id,
            end_stream: header.has_flag(flag::END_STREAM),
            awaiting_pad_len: padded,
            data_left,
            pad_left: 0,
            unreported: 0,
            first: true,
        })
    }

    /// True once every byte of the frame has been taken.
    fn is_done(&self) -> bool {
        !self.awaiting_pad_len && self.data_left == 0 && self.pad_left == 0
    }

    /// Takes what `input` offers of this frame. Returns the piece to hand
    /// out, if any; `None` means `input` is used up and the frame is not
    /// finished.
    fn advance<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<Frame<'a>>, FrameError> {
        if self.awaiting_pad_len {
            let Some((&pad_len, rest)) = input.split_first() else {
                return Ok(None);
            };
            *input = rest;
            let pad_len = u32::from(pad_len);
            // Pad length >= payload length (RFC 9113 §6.1).
            self.data_left = self
                .data_left
                .checked_sub(pad_len)
                .ok_or_else(|| padding_too_long(kind::DATA))?;
            self.pad_left = pad_len;
            self.awaiting_pad_len = false;
            self.unreported += 1;
        }
        let (data, rest) = input.split_at(input.len().min(self.data_left as usize));
        *input = rest;
        // `data.len() <= data_left`, a u32.
        let taken = data.len() as u32;
        self.data_left -= taken;
        // `unreported`, `taken` and the pad skipped below are all bytes of one
        // frame's payload, whose length field is 24 bits: the sums stay far
        // below `u32::MAX`.
        let mut flow_len = self.unreported + taken;
        if self.data_left == 0 {
            let skipped = input.len().min(self.pad_left as usize);
            *input = input.get(skipped..).unwrap_or_default();
            // `skipped <= pad_left`, a u32.
            self.pad_left -= skipped as u32;
            flow_len += skipped as u32;
        }
        let last = self.is_done();
        if data.is_empty() && !last {
            // Nothing to hand out: `input` is used up. Keep the count of
            // pad bytes skipped for the next piece.
            self.unreported = flow_len;
            return Ok(None);
        }
        self.unreported = 0;
        let piece = Frame::Data {
            stream_id: self.stream_id,
            data,
            flow_len,
            first: self.first,
            last,
            end_stream: last && self.end_stream,
        };
        self.first = false;
        Ok(Some(piece))
    }
}

impl FrameDecoder {
    /// A decoder that accepts frames up to `max_frame_size` payload bytes.
    pub fn new(max_frame_size: u32) -> FrameDecoder {
        FrameDecoder {
            max_frame_size,
            buf: Vec::new(),
            state: State::Header,
        }
    }

    /// Changes the limit (when our SETTINGS_MAX_FRAME_SIZE is acknowledged).
    /// It applies to frames whose header has not been read yet; a lower
    /// limit also gives back buffer memory above the new bound.
    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size;
        if let State::Spent = self.state {
            self.buf.clear();
            self.state = State::Header;
        }
        if !matches!(self.state, State::Payload(_)) {
            self.buf.shrink_to(self.bound());
        }
    }

    /// The most bytes `buf` ever needs: one whole frame.
    fn bound(&self) -> usize {
        HEADER_LEN + self.max_frame_size as usize
    }

    /// Decodes the next frame or DATA piece from `input`, advancing `input`
    /// past what it consumed. `Ok(None)` means every byte of `input` has been
    /// consumed (buffered) and more are needed.
    ///
    /// After a connection error, the decoder stays failed and returns the same
    /// error again. After a stream error, the offending frame was consumed and
    /// decoding may go on.
    ///
    /// The frame borrows from `input`'s bytes or from the decoder's buffer,
    /// so it lives until the next call; `input` itself may outlive many
    /// calls (`while let Some(frame) = decoder.decode(&mut input)? { .. }`).
    pub fn decode<'a, 'i: 'a>(
        &'a mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Frame<'a>>, FrameError> {
        // Fast path: at a frame boundary with nothing buffered, and a whole
        // acceptable frame at the start of the input.
        if let (State::Header, true) = (self.state, self.buf.is_empty()) {
            let bytes: &'i [u8] = input;
            if let Some((head, rest)) = bytes.split_first_chunk::<HEADER_LEN>() {
                let header = FrameHeader::parse(head);
                if header.length <= self.max_frame_size {
                    if let Some((payload, after)) = rest.split_at_checked(header.length as usize) {
                        *input = after;
                        return self.settle(parse(header, payload));
                    }
                }
            }
        }
        self.decode_slow(input)
    }

    /// Every case but the fast one: a failed decoder, a DATA frame in
    /// progress, a frame to gather across inputs, an oversized header.
    #[inline(never)]
    fn decode_slow<'a, 'i: 'a>(
        &'a mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Frame<'a>>, FrameError> {
        match self.state {
            State::Failed(e) => {
                // A frame that failed while in `buf` could not free it then.
                self.buf = Vec::new();
                return Err(e);
            }
            State::Data(progress) => return self.next_piece(progress, input),
            State::Spent => {
                self.buf.clear();
                self.state = State::Header;
            }
            State::Header | State::Payload(_) => {}
        }
        if input.is_empty() {
            // No state completes a frame without input (a zero-length DATA
            // frame's only piece comes with its header).
            return Ok(None);
        }
        if let (State::Header, true) = (self.state, self.buf.is_empty()) {
            let bytes: &'i [u8] = input;
            if let Some((head, rest)) = bytes.split_first_chunk::<HEADER_LEN>() {
                // A whole header, but not its whole frame: check it before
                // taking anything; DATA streams, other types are gathered.
                let header = self.accept_header(FrameHeader::parse(head))?;
                if header.kind == kind::DATA {
                    *input = rest;
                    return self.start_data(header, input);
                }
            }
        }
        self.decode_buffered(input)
    }

    /// The slow path: gathers a header, and then a non-DATA payload, across
    /// inputs in `buf`.
    fn decode_buffered<'a, 'i: 'a>(
        &'a mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Frame<'a>>, FrameError> {
        let header = match self.state {
            State::Payload(header) => header,
            _ => {
                let want = HEADER_LEN - self.buf.len();
                let (taken, rest) = input.split_at(input.len().min(want));
                // Exact, so that the first split header costs 9 bytes, not 16.
                self.buf.reserve_exact(want);
                self.buf.extend_from_slice(taken);
                *input = rest;
                let Some(head) = self.buf.first_chunk::<HEADER_LEN>() else {
                    return Ok(None);
                };
                let header = FrameHeader::parse(head);
                let header = self.accept_header(header)?;
                if header.kind == kind::DATA {
                    self.buf.clear();
                    return self.start_data(header, input);
                }
                self.buf.reserve_exact(header.length as usize);
                self.state = State::Payload(header);
                header
            }
        };
        let total = HEADER_LEN + header.length as usize;
        let want = total - self.buf.len();
        let (taken, rest) = input.split_at(input.len().min(want));
        self.buf.extend_from_slice(taken);
        *input = rest;
        if self.buf.len() < total {
            return Ok(None);
        }
        // The frame's bytes stay in `buf` while the result borrows them.
        self.state = State::Spent;
        let FrameDecoder { buf, state, .. } = self;
        let payload = buf.get(HEADER_LEN..).unwrap_or_default();
        settle(state, parse(header, payload))
    }

    /// Applies the size limit to a new header (RFC 9113 §4.2), before any
    /// byte of its payload is taken.
    fn accept_header(&mut self, header: FrameHeader) -> Result<FrameHeader, FrameError> {
        if header.length > self.max_frame_size {
            return Err(self.fail(FrameError::connection(
                FrameRule::TooLarge {
                    length: header.length,
                    max: self.max_frame_size,
                },
                ErrorCode::FRAME_SIZE_ERROR,
                header.kind,
            )));
        }
        Ok(header)
    }

    fn start_data<'a>(
        &mut self,
        header: FrameHeader,
        input: &mut &'a [u8],
    ) -> Result<Option<Frame<'a>>, FrameError> {
        match DataProgress::new(header) {
            Ok(progress) => self.next_piece(progress, input),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Hands out the next piece of a DATA frame (it borrows `input` only).
    fn next_piece<'a>(
        &mut self,
        mut progress: DataProgress,
        input: &mut &'a [u8],
    ) -> Result<Option<Frame<'a>>, FrameError> {
        match progress.advance(input) {
            Ok(piece) => {
                self.state = if progress.is_done() {
                    State::Header
                } else {
                    State::Data(progress)
                };
                Ok(piece)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Turns a parse result into the decoder's answer (see [`settle`]).
    fn settle<'a>(
        &mut self,
        result: Result<Frame<'a>, FrameError>,
    ) -> Result<Option<Frame<'a>>, FrameError> {
        settle(&mut self.state, result)
    }

    /// Records a connection error for good and returns it.
    #[cold]
    fn fail(&mut self, e: FrameError) -> FrameError {
        self.state = State::Failed(e);
        // Nothing more will be decoded: give the memory back.
        self.buf = Vec::new();
        e
    }

    /// Bytes currently held in the partial-frame buffer.
    pub fn buffered(&self) -> usize {
        match self.state {
            State::Header | State::Payload(_) => self.buf.len(),
            State::Spent | State::Data(_) | State::Failed(_) => 0,
        }
    }
}

/// A connection error fails the decoder for good; a stream error only
/// reports that the (consumed) frame was dropped.
fn settle<'a>(
    state: &mut State,
    result: Result<Frame<'a>, FrameError>,
) -> Result<Option<Frame<'a>>, FrameError> {
    match result {
        Ok(frame) => Ok(Some(frame)),
        Err(e) => {
            if e.is_connection_error() {
                *state = State::Failed(e);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::{encode, Priority};

    const S1: StreamId = StreamId::new(1);

    fn ping_bytes(payload: [u8; 8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode::ping(&mut out, false, payload);
        out
    }

    fn data_bytes(stream: u32, data: &[u8], end_stream: bool, padding: Option<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        let f = Frame::Data {
            stream_id: StreamId::new(stream),
            data,
            flow_len: 0,
            first: true,
            last: true,
            end_stream,
        };
        encode::frame(&mut out, &f, padding);
        out
    }

    fn piece(data: &[u8], flow_len: u32, first: bool, last: bool, end_stream: bool) -> Frame<'_> {
        Frame::Data {
            stream_id: S1,
            data,
            flow_len,
            first,
            last,
            end_stream,
        }
    }

    #[test]
    fn whole_frame_is_parsed_in_place_without_buffering() {
        let mut bytes = ping_bytes(*b"abcdefgh");
        bytes.extend(data_bytes(1, b"xyz", true, None));
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..];
        let f = dec.decode(&mut input).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Ping {
                ack: false,
                payload: *b"abcdefgh"
            }
        );
        assert_eq!(input.len(), 12);
        let f = dec.decode(&mut input).unwrap().unwrap();
        let Frame::Data { data, .. } = f else {
            panic!("{f:?}")
        };
        // Zero copy: the piece points into the input.
        assert_eq!(data.as_ptr(), bytes[HEADER_LEN + 8 + HEADER_LEN..].as_ptr());
        assert_eq!(f, piece(b"xyz", 3, true, true, true));
        assert!(input.is_empty());
        assert_eq!(dec.decode(&mut input), Ok(None));
        assert_eq!(dec.buf.capacity(), 0, "no allocation for whole frames");
    }

    #[test]
    fn frame_split_at_every_point_is_reassembled() {
        let mut block = Vec::new();
        encode::headers(&mut block, S1, b"0123456789", true, 16_384);
        for cut in 0..block.len() {
            let mut dec = FrameDecoder::new(16_384);
            let mut first = &block[..cut];
            assert_eq!(dec.decode(&mut first), Ok(None), "cut {cut}");
            assert!(first.is_empty(), "Ok(None) consumes everything");
            assert_eq!(dec.buffered(), cut);
            let mut second = &block[cut..];
            let f = dec.decode(&mut second).unwrap();
            let f = f.unwrap_or_else(|| panic!("cut {cut}"));
            assert_eq!(
                f,
                Frame::Headers {
                    stream_id: S1,
                    end_stream: true,
                    end_headers: true,
                    priority: None,
                    fragment: b"0123456789",
                }
            );
            assert!(second.is_empty());
            assert_eq!(dec.buffered(), 0);
            assert_eq!(dec.decode(&mut second), Ok(None));
        }
    }

    #[test]
    fn one_byte_chunks() {
        let bytes = ping_bytes(*b"12345678");
        let mut dec = FrameDecoder::new(16_384);
        for (i, b) in bytes.iter().enumerate() {
            let mut input = std::slice::from_ref(b);
            let got = dec.decode(&mut input).unwrap();
            if i + 1 < bytes.len() {
                assert_eq!(got, None);
                assert_eq!(dec.buffered(), i + 1);
            } else {
                assert_eq!(
                    got,
                    Some(Frame::Ping {
                        ack: false,
                        payload: *b"12345678"
                    })
                );
            }
        }
    }

    #[test]
    fn data_is_streamed_in_pieces_and_never_buffered() {
        let bytes = data_bytes(1, b"0123456789", true, None);
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..HEADER_LEN + 3];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"012", 3, true, false, false)))
        );
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.decode(&mut input), Ok(None));
        let mut input = &bytes[HEADER_LEN + 3..HEADER_LEN + 7];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"3456", 4, false, false, false)))
        );
        let mut input = &bytes[HEADER_LEN + 7..];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"789", 3, false, true, true)))
        );
        assert_eq!(dec.buf.capacity(), 0, "DATA payload never copied");
    }

    #[test]
    fn data_header_alone_yields_nothing_until_payload() {
        let bytes = data_bytes(1, b"ab", false, None);
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..HEADER_LEN];
        assert_eq!(dec.decode(&mut input), Ok(None));
        assert_eq!(dec.buffered(), 0);
        let mut input = &bytes[HEADER_LEN..];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"ab", 2, true, true, false)))
        );
    }

    #[test]
    fn padded_data_pieces_count_pad_byte_and_padding() {
        // Header | pad len 3 | "abcd" | 3 padding bytes: 8 flow-controlled.
        let bytes = data_bytes(1, b"abcd", true, Some(3));
        let p = HEADER_LEN;
        let mut dec = FrameDecoder::new(16_384);
        // Header and pad-length byte only: nothing to hand out yet.
        let mut input = &bytes[..p + 1];
        assert_eq!(dec.decode(&mut input), Ok(None));
        assert!(input.is_empty());
        // Data: the pad-length byte is reported with the first piece.
        let mut input = &bytes[p + 1..p + 3];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"ab", 3, true, false, false)))
        );
        // Rest of data and one padding byte.
        let mut input = &bytes[p + 3..p + 6];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"cd", 3, false, false, false)))
        );
        // Last padding bytes: an empty last piece carries their count.
        let mut input = &bytes[p + 6..];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"", 2, false, true, true)))
        );
        assert!(input.is_empty());
    }

    #[test]
    fn padding_arriving_alone_is_carried_to_the_last_piece() {
        let bytes = data_bytes(1, b"ab", false, Some(4));
        let p = HEADER_LEN;
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..p + 3];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"ab", 3, true, false, false)))
        );
        for i in p + 3..bytes.len() - 1 {
            let mut input = &bytes[i..=i];
            assert_eq!(dec.decode(&mut input), Ok(None));
        }
        let mut input = &bytes[bytes.len() - 1..];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"", 4, false, true, false)))
        );
    }

    #[test]
    fn zero_length_data_is_exactly_one_piece() {
        let bytes = data_bytes(1, b"", true, None);
        for cut in 0..=bytes.len() {
            let mut dec = FrameDecoder::new(16_384);
            let mut pieces = Vec::new();
            for mut chunk in [&bytes[..cut], &bytes[cut..]] {
                while let Some(f) = dec.decode(&mut chunk).unwrap() {
                    pieces.push(format!("{f:?}"));
                }
            }
            let expected = format!("{:?}", piece(b"", 0, true, true, true));
            assert_eq!(pieces, [expected], "cut {cut}");
        }
    }

    #[test]
    fn padded_data_of_only_pad_length_byte() {
        let bytes = data_bytes(1, b"", false, Some(0));
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..];
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"", 1, true, true, false)))
        );
        assert_eq!(dec.decode(&mut input), Ok(None));
    }

    #[test]
    fn data_padding_too_long_fails_the_connection() {
        // Length 3, pad length 3.
        let bytes = b"\0\0\x03\0\x08\0\0\0\x01\x03\0\0";
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..];
        let e = dec.decode(&mut input).unwrap_err();
        assert_eq!(e.rule, FrameRule::PaddingTooLong);
        assert_eq!(e.code, ErrorCode::PROTOCOL_ERROR);
        assert!(e.is_connection_error());
        let mut more = &ping_bytes([0; 8])[..];
        assert_eq!(dec.decode(&mut more), Err(e));
    }

    #[test]
    fn padded_data_of_length_zero_is_frame_size_error() {
        let bytes = b"\0\0\0\0\x08\0\0\0\x01";
        let mut dec = FrameDecoder::new(16_384);
        let e = dec.decode(&mut &bytes[..]).unwrap_err();
        assert_eq!(
            (e.rule, e.code),
            (FrameRule::BadLength, ErrorCode::FRAME_SIZE_ERROR)
        );
        assert!(e.is_connection_error());
    }

    #[test]
    fn data_on_stream_zero_fails_on_the_header() {
        let bytes = data_bytes(0, b"abc", false, None);
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..HEADER_LEN];
        let e = dec.decode(&mut input).unwrap_err();
        assert_eq!(
            (e.rule, e.code),
            (FrameRule::StreamIdRequired, ErrorCode::PROTOCOL_ERROR)
        );
        assert!(e.is_connection_error());
    }

    fn too_large(length: u32, max: u32, kind: u8) -> FrameError {
        FrameError {
            rule: FrameRule::TooLarge { length, max },
            code: ErrorCode::FRAME_SIZE_ERROR,
            stream_id: StreamId::CONNECTION,
            frame_kind: kind,
        }
    }

    #[test]
    fn oversized_frame_fails_on_its_header_before_buffering() {
        for kind in [kind::DATA, kind::HEADERS, 0xee] {
            let mut out = Vec::new();
            FrameHeader {
                length: 101,
                kind,
                flags: 0,
                stream_id: S1,
            }
            .encode(&mut out);
            // Whole header in one input, payload not there yet.
            let mut dec = FrameDecoder::new(100);
            let mut input = &out[..];
            assert_eq!(dec.decode(&mut input), Err(too_large(101, 100, kind)));
            assert_eq!(dec.buffered(), 0);
            // Header split: the error comes with its 9th byte.
            let mut dec = FrameDecoder::new(100);
            assert_eq!(dec.decode(&mut &out[..5]), Ok(None));
            assert_eq!(dec.decode(&mut &out[5..]), Err(too_large(101, 100, kind)));
            assert_eq!(dec.buffered(), 0);
        }
    }

    #[test]
    fn frame_of_exactly_max_size_passes() {
        let mut out = Vec::new();
        encode::goaway(&mut out, S1, ErrorCode::NO_ERROR, &[7; 92]);
        let mut dec = FrameDecoder::new(100);
        let f = dec.decode(&mut &out[..]).unwrap().unwrap();
        assert!(matches!(f, Frame::GoAway { debug_data, .. } if debug_data.len() == 92));
    }

    #[test]
    fn connection_error_sticks() {
        let mut bytes = Vec::new();
        encode::ping(&mut bytes, false, [0; 8]);
        bytes[8] = 1; // PING on stream 1
        let mut dec = FrameDecoder::new(16_384);
        let e = dec.decode(&mut &bytes[..]).unwrap_err();
        assert_eq!(e.rule, FrameRule::StreamIdForbidden);
        let good = ping_bytes([1; 8]);
        let mut input = &good[..];
        assert_eq!(dec.decode(&mut input), Err(e));
        assert_eq!(input.len(), good.len(), "a failed decoder takes nothing");
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn connection_error_in_buffered_frame_sticks() {
        let mut bytes = Vec::new();
        encode::settings(&mut bytes, false, &[]);
        bytes.extend_from_slice(&[0, 0, 0, 0, 0]);
        bytes[2] = 5; // SETTINGS of length 5
        let mut dec = FrameDecoder::new(16_384);
        assert_eq!(dec.decode(&mut &bytes[..10]), Ok(None));
        let e = dec.decode(&mut &bytes[10..]).unwrap_err();
        assert_eq!(
            (e.rule, e.code),
            (FrameRule::BadLength, ErrorCode::FRAME_SIZE_ERROR)
        );
        assert_eq!(dec.decode(&mut &ping_bytes([0; 8])[..]), Err(e));
        assert_eq!(dec.buf.capacity(), 0, "memory given back");
    }

    #[test]
    fn stream_error_consumes_the_frame_and_decoding_goes_on() {
        // PRIORITY of length 4 on stream 3, then a PING.
        let mut bytes = b"\0\0\x04\x02\0\0\0\0\x03\0\0\0\x01".to_vec();
        bytes.extend(ping_bytes(*b"stillok!"));
        let expected_err = FrameError {
            rule: FrameRule::BadLength,
            code: ErrorCode::FRAME_SIZE_ERROR,
            stream_id: StreamId::new(3),
            frame_kind: kind::PRIORITY,
        };
        let ping = Frame::Ping {
            ack: false,
            payload: *b"stillok!",
        };
        // In place.
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..];
        assert_eq!(dec.decode(&mut input), Err(expected_err));
        assert_eq!(dec.decode(&mut input), Ok(Some(ping)));
        // Buffered.
        let mut dec = FrameDecoder::new(16_384);
        assert_eq!(dec.decode(&mut &bytes[..11]), Ok(None));
        let mut input = &bytes[11..];
        assert_eq!(dec.decode(&mut input), Err(expected_err));
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.decode(&mut input), Ok(Some(ping)));
    }

    #[test]
    fn self_dependent_priority_is_a_stream_error_and_decoding_goes_on() {
        let mut bytes = Vec::new();
        let p = Priority {
            dependency: StreamId::new(5),
            exclusive: false,
            weight: 0,
        };
        let f = Frame::Priority {
            stream_id: StreamId::new(5),
            priority: p,
        };
        encode::frame(&mut bytes, &f, None);
        bytes.extend(data_bytes(1, b"z", false, None));
        let mut dec = FrameDecoder::new(16_384);
        let mut input = &bytes[..];
        let e = dec.decode(&mut input).unwrap_err();
        assert_eq!(
            (e.rule, e.stream_id),
            (FrameRule::SelfDependency, StreamId::new(5))
        );
        assert_eq!(
            dec.decode(&mut input),
            Ok(Some(piece(b"z", 1, true, true, false)))
        );
    }

    #[test]
    fn buffer_is_lazy_bounded_and_reused() {
        let max = 1000;
        let mut dec = FrameDecoder::new(max);
        assert_eq!(dec.buf.capacity(), 0);
        let mut big = Vec::new();
        encode::goaway(&mut big, S1, ErrorCode::NO_ERROR, &[1; 992]);
        for chunk in big.chunks(7) {
            let mut chunk = chunk;
            while dec.decode(&mut chunk).unwrap().is_some() {}
            assert!(dec.buffered() <= HEADER_LEN + max as usize);
        }
        let cap = dec.buf.capacity();
        assert!(cap <= HEADER_LEN + max as usize, "capacity {cap}");
        let ptr = dec.buf.as_ptr();
        for chunk in big.chunks(100) {
            let mut chunk = chunk;
            while dec.decode(&mut chunk).unwrap().is_some() {}
        }
        assert_eq!(dec.buf.as_ptr(), ptr, "the buffer is reused");
        // A lower limit gives memory back and applies to the next header.
        dec.set_max_frame_size(100);
        assert!(dec.buf.capacity() <= HEADER_LEN + 100);
        assert_eq!(
            dec.decode(&mut &big[..]),
            Err(too_large(1000, 100, kind::GOAWAY))
        );
    }

    #[test]
    fn raising_the_limit_admits_larger_frames() {
        let mut big = Vec::new();
        encode::goaway(&mut big, S1, ErrorCode::NO_ERROR, &[1; 20_000]);
        let mut dec = FrameDecoder::new(DEFAULT_MAX);
        dec.set_max_frame_size(20_008);
        let f = dec.decode(&mut &big[..]).unwrap().unwrap();
        assert!(matches!(f, Frame::GoAway { .. }));
    }

    const DEFAULT_MAX: u32 = crate::h2::frame::DEFAULT_MAX_FRAME_SIZE;
}
