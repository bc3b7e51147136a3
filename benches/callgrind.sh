#!/usr/bin/env bash
# Instruction counts of warren's HTTP/2 engine (and of h2 for the same
# workloads), plus bytes per idle stream. Builds the release binaries, runs
# each workload under callgrind twice (full and --setup-only) and prints the
# difference per unit of work. Ir repeat exactly from run to run; they track
# regressions and are not times (see shared/notes/rust-anchors.md, caveats).
#
# usage: benches/callgrind.sh [workload ...]
#   default: hpack-decode hpack-encode churn-1000 bulk-256MiB h2-churn-1000 h2-bulk-256MiB
#   and h2-mem idle-streams-10000 h2-idle-streams-10000 (native, no valgrind).
#   The node's layers: tls-bulk-256MiB tls-h2-bulk-256MiB node-bulk-256MiB node-churn-1000
#   (mutual TLS alone, HTTP/2 over TLS, two mesh nodes; not in the default set).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq valgrind
fi

cargo build --release -p warren-benches --bins --quiet
bin=target/release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "GLIBC_TUNABLES=${GLIBC_TUNABLES:-(unset)} (Ir do not depend on it; memcpy counts 1 Ir per byte of rep movsb)"

# Total Ir and memcpy/memmove Ir (self cost) of one callgrind run: "TOTAL MEMCPY UNITS".
measure() {
  local file="$out/cg.$RANDOM"
  local summary
  summary=$(valgrind --tool=callgrind --callgrind-out-file="$file" "$bin/h2-ir" "$@" 2>/dev/null)
  local units=${summary##*: }
  units=${units%% *}
  callgrind_annotate --inclusive=no --threshold=100 "$file" 2>/dev/null | awk -v units="$units" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    /mem(cpy|move)/ && !/PROGRAM/ { v = $1; gsub(",", "", v); memcpy += v }
    END { printf "%d %d %d\n", total, memcpy, units }'
}

report() {
  local workload=$1 unit=$2
  read -r t1 m1 units <<<"$(measure "$workload")"
  read -r t0 m0 _ <<<"$(measure --setup-only "$workload")"
  awk -v w="$workload" -v u="$unit" -v t1="$t1" -v t0="$t0" -v m1="$m1" -v m0="$m0" -v n="$units" 'BEGIN {
    ir = t1 - t0; mc = m1 - m0
    printf "%-16s %12.0f Ir total, %10.1f Ir per %s, memcpy %4.1f%%", w, ir, ir / n, u, (ir > 0 ? 100 * mc / ir : 0)
    if (u == "byte") printf ", %.2f copies per payload byte (both ends), %.0f non-memcpy Ir per MiB", mc / n, (ir - mc) / (n / 1048576)
    printf "\n"
  }'
}

workloads=("$@")
if [ ${#workloads[@]} -eq 0 ]; then
  workloads=(hpack-decode hpack-encode churn-1000 bulk-256MiB h2-churn-1000 h2-bulk-256MiB idle-streams-10000 h2-idle-streams-10000)
fi
for w in "${workloads[@]}"; do
  case "$w" in
    hpack-*) report "$w" block ;;
    h2-idle-streams-*|idle-streams-*) "$bin/h2-mem" "$w" ;;
    *churn-*) report "$w" stream ;;
    *bulk-*) report "$w" byte ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
  esac
done
