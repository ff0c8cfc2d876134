#!/usr/bin/env bash
# scripts/hostile-scaling.sh — `make hostile-scaling`: does the analysis of the hostile-state corpus
# (S2Synth HostileState: repeated IQ ids, piggybacked requests, header-only connections, stream-id
# reuse, …) grow linearly? Each kind is generated with N and 2N steps and analysed under
# `valgrind --tool=callgrind`; instruction counts are repeatable on a shared VM where times are not
# (and `perf stat -e instructions` is not supported on every VM). The start-up cost (a capture with
# one step) is subtracted, so the ratio is that of the work the steps cause:
#
#   ratio = (I(2N) − I(1)) / (I(N) − I(1))      linear: 2.0; allowed: ≤ 2.5 (HOSTILE_MAX_RATIO)
#
# Environment (all optional):
#   S2SCOPE=…                      the binary to measure (default: a release build in .build-bench, made
#                                  here as `make bench` makes it; a debug build's per-step cost is 10–30×
#                                  higher and hides quadratic terms at these sizes)
#   HOSTILE_N="kind=N …"           overrides of the per-kind N below
#   HOSTILE_KINDS="…"              only these kinds
#   HOSTILE_MAX_RATIO=2.5
#   HOSTILE_DATA=/var/tmp/s2scope-hostile   captures, callgrind output, the table (hostile-scaling.md)
# Exit status 1 when a ratio is over the limit or a run does not end with status 0/1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S2SCOPE="${S2SCOPE:-}"
DATA="${HOSTILE_DATA:-/var/tmp/s2scope-hostile}"
MAX="${HOSTILE_MAX_RATIO:-2.5}"
SWIFT="${SWIFT:-swift}"
GEN="$ROOT/Benchmarks/.build/release/hostile-state-gen"

log() { echo "hostile-scaling: $*" >&2; }

# N per kind: large enough that anything quadratic dominates the per-step cost (the unfixed code took
# seconds to minutes at these sizes), small enough for callgrind on a release build (~10–40 s a run).
declare -A N=(
  [iq-duplicate-ids]=16000 [piggybacked-results]=10000 [header-connections]=8000 [stream-id-reuse]=2000
  [exchanges-one-pair]=2500 [unknown-verifies]=4000 [stream-errors]=2000 [spoofed-stanzas]=10000
  [fat-connections]=2000
)
for o in ${HOSTILE_N:-}; do N[${o%%=*}]=${o#*=}; done

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v objcopy >/dev/null || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -z "$S2SCOPE" ]; then
  log "building s2scope (release, --scratch-path .build-bench)"
  (cd "$ROOT" && "$SWIFT" build -c release --scratch-path .build-bench --product s2scope 2>&1 | tail -1) >&2
  S2SCOPE="$ROOT/.build-bench/release/s2scope"
fi
[ -x "$S2SCOPE" ] || { log "missing $S2SCOPE"; exit 2; }
log "building hostile-state-gen (Benchmarks/, release)"
(cd "$ROOT/Benchmarks" && "$SWIFT" build -c release --product hostile-state-gen 2>&1 | tail -1) >&2
mkdir -p "$DATA"
# Valgrind 3.19 cannot read the DWARF 5 that swift emits: measure a copy without debug info.
BIN="$DATA/s2scope-nodebug"
objcopy --strip-debug "$S2SCOPE" "$BIN"

instructions() {  # capture -> instruction count of one analysis
  local out="$DATA/callgrind.out"
  rm -f "$out"
  local rc=0
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" analyze --quiet --format json -o /dev/null "$1" \
    >/dev/null 2>"$DATA/callgrind.log" || rc=$?
  if [ "$rc" -gt 1 ]; then log "analysis of $1 ended with status $rc"; tail -5 "$DATA/callgrind.log" >&2; return 1; fi
  grep -E '^summary: ' "$out" | awk '{print $2}'
}

kinds="${HOSTILE_KINDS:-$("$GEN" --list | tr '\n' ' ')}"
table="| input | N | instructions (N) | 2N | instructions (2N) | ratio (start-up subtracted) |\n|---|---:|---:|---:|---:|---:|\n"
failed=0
for k in $kinds; do
  n=${N[$k]:-2000}
  "$GEN" "$k" 1 "$DATA/$k-1.pcap"
  "$GEN" "$k" "$n" "$DATA/$k-n.pcap"
  "$GEN" "$k" $((2 * n)) "$DATA/$k-2n.pcap"
  i0=$(instructions "$DATA/$k-1.pcap") || { failed=1; continue; }
  i1=$(instructions "$DATA/$k-n.pcap") || { failed=1; continue; }
  i2=$(instructions "$DATA/$k-2n.pcap") || { failed=1; continue; }
  ratio=$(python3 -c "print(f'{($i2-$i0)/max(1,$i1-$i0):.2f}')")
  ok=$(python3 -c "print(1 if ($i2-$i0) <= $MAX*max(1,$i1-$i0) else 0)")
  verdict="$ratio"; [ "$ok" = 1 ] || { verdict="**$ratio (over $MAX)**"; failed=1; }
  log "$k: N=$n $i1, 2N=$((2 * n)) $i2, start-up $i0: ratio $ratio"
  table+="| $k | $n | $i1 | $((2 * n)) | $i2 | $verdict |\n"
  rm -f "$DATA/$k-1.pcap" "$DATA/$k-n.pcap" "$DATA/$k-2n.pcap"
done
printf "%b" "$table" | tee "$DATA/hostile-scaling.md"
rm -f "$BIN" "$DATA/callgrind.out"
if [ "$failed" != 0 ]; then log "FAILED: an input grows faster than ×$MAX when doubled, or a run failed"; exit 1; fi
log "every input: doubling it at most ×$MAX the work"
