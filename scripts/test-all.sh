#!/usr/bin/env bash
# Runs every test of warren on a fresh Debian machine: installs what the
# tests need, then format, lint, unit/property/interop tests and the HTTP/2
# conformance suite. This is the README's test command; .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

# The namespace tests delete their namespaces when they end, even by a
# panic; a test process killed outright cannot, so on exit this removes
# every `warren-t<pid>...` namespace whose process is gone.
cleanup_netns() {
  command -v ip >/dev/null 2>&1 || return 0
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^warren-t[0-9]+' || true); do
    pid=${ns#warren-t}
    pid=${pid%%[!0-9]*}
    kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup_netns EXIT

need_apt=()
command -v nghttp >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v iperf3 >/dev/null 2>&1 || need_apt+=(iperf3)
# cli/tests/hub_netns.rs: `ip netns` and veth pairs (skipped when not root).
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]} (Debian packages)"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v httpwg >/dev/null 2>&1; then
  say "installing httpwg-cli (HTTP/2 conformance suite)"
  cargo install httpwg-cli --locked --quiet
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

say "cargo test (unit, property and interop tests)"
cargo test --workspace

say "HTTP/2 conformance: httpwg and nghttp against h2c-server"
bash interop/conformance.sh

say "simulator: every scenario over 200 seeds, twice, trace hashes compared; regressions; bug injection (--features sim-bugs)"
bash sim/ci.sh

say "all tests passed"
