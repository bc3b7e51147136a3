#!/usr/bin/env bash
# Runs something real with no setup: warren's HTTP/2 engine serving h2c on
# loopback, and the nghttp client (Debian's nghttp2-client) talking to it:
# a GET, then a POST whose body the server echoes back.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nghttp >/dev/null 2>&1; then
  echo "==> installing nghttp2-client (Debian package)"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq nghttp2-client
fi

echo "==> building h2c-server (release)"
cargo build --quiet --release -p warren-interop --bin h2c-server

log=$(mktemp)
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
target/release/h2c-server --listen 127.0.0.1:0 >"$log" 2>&1 &
server=$!
for _ in $(seq 50); do
  addr=$(sed -n 's/^h2c-server listening on //p' "$log")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "${addr:-}" ] || { echo "h2c-server did not start:"; cat "$log"; exit 1; }

echo "==> nghttp -v http://$addr/"
nghttp -v "http://$addr/"
echo
echo "==> POST to /echo: the server streams the body back"
printf 'hello from warren\n' | nghttp -d - "http://$addr/echo"
