#!/usr/bin/env bash
# Runs every scenario for N seeds twice and compares the trace hashes seed by
# seed, then every regression; exits non-zero on any violation or mismatch.
# Usage: sim/ci.sh [N]   (default 500: about 2 minutes on 2 idle cores)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-500}"
JOBS="${JOBS:-2}"
cargo build --release -p warren-sim --bin warren-sim -j"$JOBS" >/dev/null
BIN=target/release/warren-sim
fail=0
for scenario in sim/scenarios/*.toml; do
  start=$(date +%s)
  a=$("$BIN" sweep "$scenario" --seeds "0..$N" --jobs "$JOBS" --hashes) || fail=1
  b=$("$BIN" sweep "$scenario" --seeds "0..$N" --jobs "$JOBS" --hashes) || fail=1
  grep '^failing' <<<"$a" >&2 || true
  if [ "$(grep '^seed' <<<"$a")" != "$(grep '^seed' <<<"$b")" ]; then
    echo "HASH MISMATCH in $scenario:" >&2
    diff <(grep '^seed' <<<"$a") <(grep '^seed' <<<"$b") >&2 || true
    fail=1
  fi
  echo "$scenario: $(tail -1 <<<"$a") ($(( $(date +%s) - start )) s for two passes)"
done
for regression in sim/regressions/*.toml; do
  [ -e "$regression" ] || continue
  out=$("$BIN" sweep "$regression" --seeds 0..20 --jobs "$JOBS") || { echo "$out" >&2; fail=1; }
  echo "$regression: $(tail -1 <<<"$out")"
done
# Open bugs (sim/regressions/open/): reported, not a gate, until fixed.
for open_bug in sim/regressions/open/*.toml; do
  [ -e "$open_bug" ] || continue
  echo "$open_bug (open): $("$BIN" sweep "$open_bug" --seeds 0..20 --jobs "$JOBS" | tail -1)"
done
exit $fail
