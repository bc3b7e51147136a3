#!/usr/bin/env python3
"""Writes seed inputs for the server_connection target into
corpus/server_connection/: valid HTTP/2 client traffic (CONNECT requests,
DATA, CONTINUATION, WINDOW_UPDATE, RST_STREAM, PING, SETTINGS, GOAWAY)
interleaved with the target's application operations, so the fuzzer starts
past the HPACK and framing basics. Run from fuzz/."""
import os
import random
import struct

def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

def literal(index, value):
    # Literal without indexing, indexed name (RFC 7541 6.2.2), 4-bit prefix; value < 127 bytes.
    return bytes([index]) + bytes([len(value)]) + value

def connect_block(authority=b"backend.example:8080"):
    # :method is static index 2, :authority is 1.
    return literal(2, b"CONNECT") + literal(1, authority)

def headers(stream, block, end_stream=False, end_headers=True):
    return frame(1, (1 if end_stream else 0) | (4 if end_headers else 0), stream, block)

def data(stream, n, end_stream=False):
    return frame(0, 1 if end_stream else 0, stream, b"x" * n)

def feed(wire):
    """Op 0: feed the next len bytes (len < 4096)."""
    out = b""
    while wire:
        piece, wire = wire[:4000], wire[4000:]
        out += bytes([0]) + struct.pack(">H", len(piece)) + piece
    return out

def op(code, *args):
    return bytes([code]) + bytes(args)

def seeds():
    s = []
    one = headers(1, connect_block()) + data(1, 100)
    s.append(feed(one) + op(6, 0, 0, 1) + op(4, 0, 0, 100) + op(5, 0, 0, 200) + op(7, 0, 0))
    s.append(feed(one + data(1, 10, end_stream=True)) + op(6, 0, 0, 1) + op(5, 0, 0, 50) + op(7, 0, 0))
    block = connect_block(b"a" * 100)
    s.append(feed(headers(3, block[:40], end_headers=False) + frame(9, 0, 3, block[40:80]) + frame(9, 4, 3, block[80:])) + op(6, 0, 0, 0))
    s.append(feed(one + frame(8, 0, 1, struct.pack(">I", 1000)) + frame(8, 0, 0, struct.pack(">I", 70000))) + op(6, 0, 0, 1) + op(5, 0, 0xff, 0xff))
    s.append(feed(one + frame(3, 0, 1, struct.pack(">I", 8))) + op(8, 0, 100))
    s.append(feed(frame(6, 0, 0, b"12345678") + frame(4, 0, 0, struct.pack(">HI", 4, 1 << 20) + struct.pack(">HI", 1, 100))) + op(9, 1))
    s.append(feed(one + frame(7, 0, 0, struct.pack(">II", 1, 0) + b"bye")) + op(9, 2))
    many = b"".join(headers(2 * i + 1, connect_block()) for i in range(20))
    s.append(feed(many) + b"".join(op(6, i, 0) for i in range(20)) + op(9, 0) + op(8, 0, 200))
    s.append(feed(one + data(1, 16000) + data(1, 16000) + data(1, 16000) + data(1, 16000) + data(1, 2000)) + op(4, 0, 0xff, 0xff))
    s.append(feed(headers(1, connect_block(), end_stream=False) + frame(2, 0, 1, struct.pack(">IB", 3, 10))) + op(9, 3))
    return s

os.makedirs("corpus/server_connection", exist_ok=True)
for i, seed in enumerate(seeds()):
    with open(f"corpus/server_connection/seed-{i:02}", "wb") as f:
        f.write(seed)
print(f"wrote {len(seeds())} seeds")
