#!/usr/bin/env bash
# Runs every speed benchmark twice with the same seed, checks that both runs
# give the same trace hash, and prints each run's speed lines.
# Usage: sim/bench/run.sh [SEED]   (default 1; about 15 s of CPU in all)
set -euo pipefail
cd "$(dirname "$0")/../.."
SEED="${1:-1}"
cargo build --release -p warren-sim -j"${JOBS:-2}" >/dev/null
BIN=target/release/warren-sim
fail=0
for scenario in sim/bench/mesh-10.toml sim/bench/mesh-100.toml sim/bench/mesh-1000.toml \
  sim/bench/per-node/mesh-10.toml sim/bench/per-node/mesh-100.toml; do
  a=$("$BIN" run "$scenario" --seed "$SEED") || fail=1
  b=$("$BIN" run "$scenario" --seed "$SEED") || fail=1
  ha=$(grep '^trace-hash' <<<"$a")
  hb=$(grep '^trace-hash' <<<"$b")
  if [ "$ha" != "$hb" ]; then
    echo "HASH MISMATCH in $scenario: $ha / $hb" >&2
    fail=1
  fi
  echo "== $scenario ($ha, twice)"
  grep -E '^(steps|speed|cpu|peak-rss|violation)' <<<"$a"
  grep -E '^(speed|cpu)' <<<"$b" | sed 's/^/again /'
done
exit $fail
