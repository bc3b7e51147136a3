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


# --- Front ends and control frames (seventh pass) -------------------------

def write(target, items):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    for i, item in enumerate(items):
        with open(f"corpus/{target}/seed-{i:02}", "wb") as f:
            f.write(item)
    print(f"{target}: wrote {len(items)} seeds")

# Prefix: chunking seed (4), outcome choice (1), bound address (18).
FRONT_PREFIX = struct.pack(">I", 0x9e3779b9) + bytes([1]) + bytes(range(1, 19))

def socks_request(atyp, addr, port=443, cmd=1):
    return bytes([5, cmd, 0, atyp]) + addr + struct.pack(">H", port)

def socks_seeds():
    hello = bytes([5, 1, 0])
    out = [
        hello + socks_request(1, bytes([10, 0, 0, 1]), 8080),
        hello + socks_request(4, bytes(15) + b"\x01", 22),
        hello + socks_request(3, bytes([len(b"echo.shop")]) + b"echo.shop", 80) + b"GET / HTTP/1.1\r\n\r\n",
        bytes([5, 3, 2, 1, 0]) + socks_request(3, bytes([12]) + b"example.com.", 443),
        bytes([5, 1, 2]),
        hello + socks_request(1, bytes(4), 80, cmd=2),
        hello + socks_request(3, bytes([15]) + b"::ffff:10.0.0.1", 443),
        bytes([4, 1, 0, 80, 1, 2, 3, 4, 0]),
    ]
    return [FRONT_PREFIX + s for s in out]

# Prefix: default head limit (1), default header count (1), then the front prefix.
HTTP_PREFIX = bytes([0, 0]) + FRONT_PREFIX

def http_seeds():
    out = [
        b"CONNECT echo.shop:80 HTTP/1.1\r\nHost: echo.shop:80\r\n\r\n",
        b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\nhello",
        b"\r\nCONNECT [fd00::1]:8443 HTTP/1.0\nProxy-Authorization: Basic eDp5\n\n",
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"CONNECT example.com HTTP/1.1\r\n\r\n",
        b"CONNECT a.b:1 HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(70)) + b"\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    ]
    return [HTTP_PREFIX + s for s in out]

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def pstr(s):
    return varint(len(s)) + s

def service_port(name, port):
    return pstr(name) + varint(port)

def addr_v4(ip, port):
    return varint(0) + bytes(ip) + varint(port)

def entry(name, port, ident, instance, hbone, e2e):
    return (service_port(name, port) + pstr(ident) + varint(instance)
            + (b"\x01" + hbone if hbone else b"\x00") + bytes([e2e]))

def control_frame(payload):
    return bytes([2]) + struct.pack(">I", len(payload)) + payload

def control_seeds():
    cart = service_port(b"cart.shop", 8080)
    ident = b"spiffe://example.org/ns/shop/sa/cart"
    row = entry(b"cart.shop", 8080, ident, 7, addr_v4([10, 0, 0, 1], 15008), 1)
    row2 = entry(b"pay.shop", 443, b"spiffe://example.org/ns/shop/sa/pay", 8, None, 0)
    messages = [
        varint(0) + varint(1) + cart + b"\x01" + addr_v4([10, 0, 0, 1], 15008) + varint(1) + cart,  # Announce
        varint(1),  # Withdraw
        varint(2) + varint(5) + varint(2) + row + row2,  # Registry
        varint(3) + varint(5) + varint(6) + varint(1) + row2 + varint(1) + row,  # RegistryDelta
        varint(4) + varint(0) + cart,  # Rejected(NotAllowed)
        varint(4) + varint(3) + varint(300) + varint(256),  # Rejected(TooManyServices)
        varint(5) + varint(1),  # Evict(Misbehaved)
        varint(6) + varint(2**64 - 1),  # Ping
        varint(7) + varint(42),  # Pong
        varint(8) + varint(2) + bytes([2]),  # Error
    ]
    prefix = bytes([0]) + struct.pack(">I", 0x9e3779b9)
    out = [prefix + control_frame(m) for m in messages]
    out.append(prefix + b"".join(control_frame(m) for m in messages))
    return out

def hbone_seeds():
    # split, present, then method + authority.
    out = [b"CONNECT" + a for a in (b"10.0.0.1:8080", b"[fd00::1]:443", b"echo.shop:80", b"cart.shop.svc.cluster.local:80")]
    return [bytes([7, 1]) + s for s in out]

def node_seeds():
    def w(data):
        return bytes([5]) + struct.pack(">H", len(data) - 1) + data
    def wait(secs):
        return bytes([0, secs])
    shut = bytes([1])
    socks_out = bytes([5, 1, 0, 5, 1, 0, 1, 198, 51, 100, 7, 0, 7])
    http_out = b"CONNECT 198.51.100.7:7 HTTP/1.1\r\nHost: x\r\n\r\n"
    out = [
        bytes([0]) + w(socks_out + b"hello") + w(b"more") + shut,
        bytes([0]) + b"".join(bytes([2, b]) for b in socks_out) + w(b"x") + wait(5),
        bytes([0]) + w(socks_out[:5]) + wait(11) + w(socks_out[5:]),
        bytes([0]) + w(bytes([5, 1, 0, 5, 1, 0, 3, 9]) + b"echo.shop" + bytes([0, 80])) + shut,
        bytes([1]) + w(http_out + b"hello") + w(b"world") + shut,
        bytes([1]) + w(b"CONNECT 10.0.0.1:80 HTTP/1.1\r\n\r\n"),
        bytes([1]) + w(http_out[:20]) + wait(9) + w(http_out[20:30]) + wait(3),
        bytes([1]) + w(b"GET / HTTP/1.1\r\n\r\n"),
        bytes([1]) + w(b"CONNECT a.b:1 HTTP/1.1\r\nX: " + b"y" * 4000) + w(b"y" * 4095) + w(b"y" * 100),
    ]
    return out

write("front_socks5", socks_seeds())
write("node_front", node_seeds())
write("front_http_connect", http_seeds())
write("control_codec", control_seeds())
write("hbone_connect", hbone_seeds())
