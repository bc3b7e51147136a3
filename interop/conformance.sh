#!/usr/bin/env bash
# HTTP/2 conformance of warren's engine, through the h2c-server binary
# (cleartext HTTP/2 with prior knowledge):
#   1. the httpwg suite (RFC 9113 cases; `cargo install httpwg-cli --locked`),
#      every case must pass;
#   2. nghttp2's `nghttp` client (Debian package nghttp2-client) and curl
#      (--http2-prior-knowledge): a GET and a POST whose body must come back
#      byte for byte.
# Installs nothing: scripts/test-all.sh does that. Exits non-zero on any
# failure, with the failing httpwg cases listed by name.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "conformance.sh: $*" >&2
  exit 1
}

command -v httpwg >/dev/null 2>&1 ||
  die "httpwg not found (install it with: cargo install httpwg-cli --locked)"
command -v nghttp >/dev/null 2>&1 ||
  die "nghttp not found (install it with: apt-get install -y nghttp2-client)"
command -v curl >/dev/null 2>&1 ||
  die "curl not found (install it with: apt-get install -y curl)"

cargo build --release --quiet -p warren-interop --bin h2c-server
server_bin="${CARGO_TARGET_DIR:-target}/release/h2c-server"
[ -x "$server_bin" ] || die "built h2c-server not found at $server_bin"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the server picks a free port and prints the address it bound, so
# nothing can take the port between choosing and binding it.
"$server_bin" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
addr=""
for _ in $(seq 100); do
  addr="$(sed -n 's/^h2c-server listening on //p' "$work/server.out")"
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || die "h2c-server exited: $(cat "$work/server.err")"
  sleep 0.1
done
[ -n "$addr" ] || die "h2c-server did not report its address within 10 s"
echo "h2c-server listening on $addr"

# --- httpwg -----------------------------------------------------------------
# SEQUENTIAL=1 runs one case at a time and -v names each case before it
# runs, so a case that panics inside httpwg (it reports those without a
# name) is still attributed: every case that started and did not pass failed.
# Fewer buffers than its 256 MiB default are plenty for one case at a time.
httpwg_rc=0
SEQUENTIAL=1 BUFFET_NUM_BUFS="${BUFFET_NUM_BUFS:-4096}" \
  httpwg -v -a "$addr" >"$work/httpwg.log" 2>&1 || httpwg_rc=$?
sed 's/\x1b\[[0-9;]*m//g' "$work/httpwg.log" >"$work/httpwg.txt"

# One line per case: "pass NAME" or "fail NAME: first line of why".
awk '
  function close_case() {
    if (name != "" && !passed) print "fail " name ": " (why == "" ? "no verdict" : why)
    name = ""; why = ""; passed = 0
  }
  /Running test: / { close_case(); sub(/.*Running test: /, ""); name = $0; next }
  /Test passed: / { sub(/.*Test passed: /, ""); print "pass " $0; if ($0 == name) passed = 1; next }
  /Test failed: / { if (why == "") { getline detail; why = detail } next }
  /^Message: / { if (why == "") { why = $0; sub(/^Message: +/, "", why) } next }
  END { close_case() }
' "$work/httpwg.txt" >"$work/verdicts"

passed="$(grep -c '^pass ' "$work/verdicts" || true)"
failed="$(grep -c '^fail ' "$work/verdicts" || true)"
if [ "$failed" -gt 0 ]; then
  echo "httpwg: failing cases:"
  sed -n 's/^fail /  /p' "$work/verdicts"
fi
total="$(sed -n 's/.*Passed \([0-9]*\)\/\([0-9]*\) tests.*/\2/p' "$work/httpwg.txt")"
echo "httpwg: $passed passed, $failed failed"
if [ -z "$total" ]; then
  tail -n 20 "$work/httpwg.txt" >&2
  die "httpwg did not finish (exit code $httpwg_rc)"
fi
[ "$((passed + failed))" -eq "$total" ] ||
  die "httpwg ran $total cases but $((passed + failed)) were attributed"
[ "$failed" -eq 0 ] && [ "$httpwg_rc" -eq 0 ] || die "httpwg: not every case passed"

# --- nghttp -----------------------------------------------------------------
nghttp -nv "http://$addr/" >"$work/get.log" 2>&1 ||
  die "nghttp GET failed: $(tail -n 5 "$work/get.log")"
grep -q ':status: 200' "$work/get.log" || die "nghttp GET: no :status 200 in $(cat "$work/get.log")"
nghttp "http://$addr/" >"$work/get.body" 2>"$work/get.err" ||
  die "nghttp GET body failed: $(cat "$work/get.err")"
printf 'warren h2c-server\n' | cmp -s - "$work/get.body" ||
  die "nghttp GET: unexpected body: $(head -c 200 "$work/get.body")"
echo "nghttp: GET / answered 200 with the expected body"

# Larger than the 64 KiB initial window nghttp announces, so the echo must
# wait for WINDOW_UPDATE and release capacity as it goes.
head -c 300000 /dev/urandom >"$work/post.bin"
nghttp -d "$work/post.bin" "http://$addr/echo" >"$work/post.body" 2>"$work/post.err" ||
  die "nghttp POST failed: $(cat "$work/post.err")"
cmp -s "$work/post.bin" "$work/post.body" ||
  die "nghttp POST: the echoed body differs ($(wc -c <"$work/post.body") bytes back, 300000 sent)"
nghttp -v -d "$work/post.bin" "http://$addr/echo" 2>&1 | grep -q ':status: 200' ||
  die "nghttp POST: no :status 200"
echo "nghttp: POST /echo answered 200 and echoed 300000 bytes exactly"

# --- curl -------------------------------------------------------------------
curl_h2() { curl --silent --show-error --max-time 30 --http2-prior-knowledge "$@"; }
answer="$(curl_h2 -o "$work/curl-get.body" -w '%{http_version} %{http_code}' "http://$addr/")" ||
  die "curl GET failed"
[ "$answer" = "2 200" ] || die "curl GET: expected HTTP/2 200, got '$answer'"
printf 'warren h2c-server\n' | cmp -s - "$work/curl-get.body" ||
  die "curl GET: unexpected body: $(head -c 200 "$work/curl-get.body")"
answer="$(curl_h2 --data-binary "@$work/post.bin" -o "$work/curl-post.body" \
  -w '%{http_version} %{http_code}' "http://$addr/echo")" || die "curl POST failed"
[ "$answer" = "2 200" ] || die "curl POST: expected HTTP/2 200, got '$answer'"
cmp -s "$work/post.bin" "$work/curl-post.body" ||
  die "curl POST: the echoed body differs ($(wc -c <"$work/curl-post.body") bytes back, 300000 sent)"
echo "curl: GET / and POST /echo answered 200 over HTTP/2, bodies exact"

if [ -s "$work/server.err" ]; then
  echo "h2c-server stderr (one line per connection error):"
  sed 's/^/  /' "$work/server.err"
fi
echo "conformance: all checks passed"
