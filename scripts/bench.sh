#!/usr/bin/env bash
# scripts/bench.sh — `make bench`: s2scope against tshark and a plain libpcap read loop on the same
# generated s2s captures, plus a check of s2scope's verdicts against the generator's ground truth
# ("fast and wrong does not count"). Writes a Markdown table to stdout and to docs/BENCH.md.
#
# Environment (all optional):
#   BENCH_SIZES="100M 1G"      capture sizes (K/M/G suffix, binary), generated once per size and seed
#   BENCH_SEED=1               generator seed
#   BENCH_RUNS=3               timed runs per tool and capture (the median is reported)
#   BENCH_S2SCOPE_RUNS=5       runs of s2scope with one and with two threads, alternating
#   BENCH_DATA=/var/tmp/s2scope-bench   where captures, truth files, reports and the C read loop live
#   BENCH_TSHARK_FULL=200M     tshark gets BENCH_RUNS runs on captures up to this size ...
#   BENCH_TSHARK_BIG_RUNS=1    ... and this many on bigger ones (0 skips tshark there; it needs ~2.5 GiB RSS per GB)
#   BENCH_PROFILE=0            1: also profile s2scope (callgrind on a 10M capture; perf if hardware counters work)
#   BENCH_MD=docs/BENCH.md     Markdown output ('' for stdout only)
#   BENCH_SKIP_BUILD=0         1: use the binaries already built
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${BENCH_DATA:-/var/tmp/s2scope-bench}"
SIZES="${BENCH_SIZES:-100M 1G}"
SEED="${BENCH_SEED:-1}"
RUNS="${BENCH_RUNS:-3}"
S2_RUNS="${BENCH_S2SCOPE_RUNS:-5}"
TSHARK_FULL="${BENCH_TSHARK_FULL:-200M}"
TSHARK_BIG_RUNS="${BENCH_TSHARK_BIG_RUNS:-1}"
PROFILE="${BENCH_PROFILE:-0}"
MD="${BENCH_MD-$ROOT/docs/BENCH.md}"
SKIP_BUILD="${BENCH_SKIP_BUILD:-0}"
SWIFT="${SWIFT:-swift}"

GEN="$ROOT/Benchmarks/.build/release/s2scope-gen"
S2SCOPE="$ROOT/.build-bench/release/s2scope"
READLOOP="$DATA/readloop"
CHECK="$ROOT/Benchmarks/Scripts/check_truth.py"

log() { echo "bench: $*" >&2; }

bytes_of() {  # 100M -> bytes (binary suffixes, like s2scope-gen)
  python3 -c 'import sys
s=sys.argv[1].upper(); m={"K":1<<10,"M":1<<20,"G":1<<30}
print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))' "$1"
}

# --- dependencies ---------------------------------------------------------------------------------
"$ROOT/scripts/install-deps.sh" build
need=()
command -v tshark >/dev/null || need+=(tshark)
[ -x /usr/bin/time ] || need+=(time)
command -v gcc >/dev/null || need+=(gcc)
command -v python3 >/dev/null || need+=(python3)
if [ "$PROFILE" = 1 ]; then command -v valgrind >/dev/null || need+=(valgrind); fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$DATA"

# --- builds (one at a time: the machine has 2 cores) ---------------------------------------------
if [ "$SKIP_BUILD" != 1 ]; then
  log "building s2scope-gen (Benchmarks/, release)"
  (cd "$ROOT/Benchmarks" && "$SWIFT" build -c release --product s2scope-gen 2>&1 | tail -1) >&2
  log "building s2scope (release, --scratch-path .build-bench)"
  (cd "$ROOT" && "$SWIFT" build -c release --scratch-path .build-bench --product s2scope 2>&1 | tail -1) >&2
  log "building the C read loop"
  gcc -O2 -Wall -o "$READLOOP" "$ROOT/scripts/readloop.c" -lpcap
fi
for b in "$GEN" "$S2SCOPE" "$READLOOP"; do [ -x "$b" ] || { log "missing $b"; exit 2; }; done
"$GEN" --selftest >&2

# --- captures ------------------------------------------------------------------------------------
declare -A GEN_NOTE
for size in $SIZES; do
  f="$DATA/s2s-$size-seed$SEED.pcap"
  if [ ! -s "$f" ] || [ ! -s "${f%.pcap}.truth.json" ]; then
    log "generating $f"
    /usr/bin/time -f '%e %M' -o "$DATA/.gen-time" "$GEN" --size "$size" --seed "$SEED" --out "$f" --truth "${f%.pcap}.truth.json"
    read -r gs grss < <(tail -1 "$DATA/.gen-time")
    echo "$gs $grss" > "${f%.pcap}.gen-time"
  fi
  if [ -s "${f%.pcap}.gen-time" ]; then
    read -r gs grss < "${f%.pcap}.gen-time"
    GEN_NOTE[$size]="$gs $grss"
  fi
done

# --- measurements --------------------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run_timed NAME RUNS CMD... ; sets MED (median wall s) and RSS (max KB over runs)
run_timed() {
  local name="$1" n="$2"; shift 2
  local walls=() rss=0 i out w r
  for ((i = 1; i <= n; i++)); do
    out="$DATA/.time.$$"
    set +e
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null 2>"$DATA/.stderr.$$"
    local rc=$?
    t1=$(date +%s.%N)
    set -e
    # s2scope exits 1 when it found HIGH violations (the injected ones): that is success here.
    if [ $rc -ne 0 ] && ! { [[ "$name" == s2scope* ]] && [ $rc -eq 1 ]; }; then
      log "$name failed (exit $rc):"; tail -5 "$DATA/.stderr.$$" >&2; exit 1
    fi
    read -r w r < <(tail -1 "$out")
    w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')  # /usr/bin/time's %e has 10 ms steps
    walls+=("$w")
    [ "$r" -gt "$rss" ] && rss=$r
    log "  $name run $i/$n: ${w}s, ${r} KB"
  done
  rm -f "$DATA/.time.$$" "$DATA/.stderr.$$"
  MED=$(median "${walls[@]}")
  RSS=$rss
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
VERDICTS=()
OVERALL=PASS
row() {  # size file tool runs wall rss note
  local bytes packets
  bytes=$(stat -c %s "$2")
  packets=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "${2%.pcap}.truth.json")
  ROWS+=("$(python3 - "$1" "$bytes" "$packets" "$3" "$4" "$5" "$6" "$7" <<'PY'
import sys
size, nbytes, packets, tool, runs, wall, rss, note = sys.argv[1:]
nbytes, packets, wall, rss = int(nbytes), int(packets), float(wall), int(rss)
mbs = nbytes / 1e6 / wall if wall > 0 else float("inf")
pps = packets / wall if wall > 0 else float("inf")
print(f"| {size} ({nbytes/1e6:,.0f} MB, {packets:,} pkts) | {tool} | {runs} | {wall:.3f} | {mbs:,.1f} | {pps:,.0f} | {rss/1024:,.0f} | {note} |")
PY
)")
}

for size in $SIZES; do
  f="$DATA/s2s-$size-seed$SEED.pcap"
  log "capture $f"
  cat "$f" > /dev/null  # warm the page cache: every tool then reads from memory
  run_timed readloop "$RUNS" "$READLOOP" "$f"
  row "$size" "$f" "libpcap read loop (C)" "$RUNS" "$MED" "$RSS" "floor: read only"
  # One thread and two alternate run by run: this machine's speed drifts by ±20 % over minutes,
  # and alternating spreads the drift over both instead of favouring whichever ran second.
  w1=(); w2=(); r1=0; r2=0
  for ((k = 1; k <= S2_RUNS; k++)); do
    run_timed s2scope 1 "$S2SCOPE" analyze --format json -o /dev/null "$f"
    w1+=("$MED"); [ "$RSS" -gt "$r1" ] && r1=$RSS
    run_timed s2scope-t2 1 "$S2SCOPE" analyze --threads 2 --format json -o /dev/null "$f"
    w2+=("$MED"); [ "$RSS" -gt "$r2" ] && r2=$RSS
  done
  row "$size" "$f" "s2scope analyze --format json" "$S2_RUNS" "$(median "${w1[@]}")" "$r1" "full analysis, one thread"
  row "$size" "$f" "s2scope analyze --threads 2 --format json" "$S2_RUNS" "$(median "${w2[@]}")" "$r2" "XML parsing on a second thread; same report"
  tr=$RUNS
  if [ "$(bytes_of "$size")" -gt "$(bytes_of "$TSHARK_FULL")" ]; then tr=$TSHARK_BIG_RUNS; fi
  if [ "$tr" -gt 0 ]; then
    run_timed tshark "$tr" tshark -n -r "$f" -d tcp.port==5269,xmpp -2 -Y xmpp -T fields -e frame.number
    note="XMPP dissection only, no dialback logic"
    [ "$tr" -lt "$RUNS" ] && note="$note; **$tr run only** (slow)"
    row "$size" "$f" "tshark -2 -Y xmpp" "$tr" "$MED" "$RSS" "$note"
  fi
  if [ -n "${GEN_NOTE[$size]:-}" ]; then
    read -r gs grss <<<"${GEN_NOTE[$size]}"
    row "$size" "$f" "s2scope-gen (writing it)" 1 "$gs" "$grss" "generation, for reference"
  fi

  # Verdicts against the truth.
  log "checking s2scope's verdicts on $f against the truth"
  rep="$DATA/s2s-$size-seed$SEED.report.json"
  set +e
  "$S2SCOPE" analyze --format json -o "$rep" "$f"
  rc=$?
  set -e
  if [ $rc -gt 1 ]; then
    VERDICTS+=("### $size: FAIL (s2scope exit $rc)")
    OVERALL=FAIL
    continue
  fi
  set +e
  out=$(python3 "$CHECK" "$rep" "${f%.pcap}.truth.json")
  rc=$?
  # --threads 2 must give the very same report, byte for byte.
  "$S2SCOPE" analyze --threads 2 --format json -o "$rep.t2" "$f"
  if cmp -s "$rep" "$rep.t2"; then
    out+=$'\n'"--threads 2: identical report"
  else
    out+=$'\n'"--threads 2: REPORT DIFFERS"$'\n'"FAIL"
    rc=1
  fi
  rm -f "$rep.t2"
  set -e
  verdict=$(echo "$out" | grep -E '^(PASS|FAIL)$' | awk 'NR<=1')
  [ "$rc" -eq 0 ] || { OVERALL=FAIL; verdict=FAIL; }
  VERDICTS+=("### $size: ${verdict:-FAIL}"$'\n\n```\n'"$out"$'\n```')
done

# --- profile (optional) --------------------------------------------------------------------------
# Callgrind counts instructions (deterministic, but blind to cache misses); perf with the software
# cpu-clock event samples wall time on the first capture size (hardware counters are not available in
# every VM: `perf stat -e instructions true` says "not supported" there).
PROFILE_MD=""
demangle() { if command -v swift-demangle >/dev/null; then swift-demangle --simplified; else "$SWIFT" demangle --simplified; fi; }
if [ "$PROFILE" = 1 ]; then
  pf="$DATA/s2s-10M-seed$SEED.pcap"
  [ -s "$pf" ] || "$GEN" --size 10M --seed "$SEED" --out "$pf" --truth "${pf%.pcap}.truth.json" --quiet
  # valgrind 3.19 cannot read the DWARF 5 of Swift 6.3 binaries: profile a copy without debug info
  # (the symbol table stays, so functions keep their names).
  objcopy --strip-debug "$S2SCOPE" "$DATA/s2scope-nodebug"
  log "profiling s2scope with callgrind on $pf (about 50x slower than native)"
  valgrind --tool=callgrind --callgrind-out-file="$DATA/callgrind.out.s2scope" \
    "$DATA/s2scope-nodebug" analyze --format json -o /dev/null "$pf" 2>"$DATA/callgrind.log" || true
  top=$(callgrind_annotate --inclusive=no "$DATA/callgrind.out.s2scope" 2>/dev/null \
        | grep -E '^ *[0-9,]+ \( *[0-9.]+%\) ' | grep -v 'PROGRAM TOTALS' | awk 'NR<=15' | demangle \
        | sed -E 's/^ *([0-9,]+) \( *([0-9.]+)%\) +(\?\?\?:)?/| \2 % | \1 | /; s#\[[^]]*/([^/]+)\]$#| \1 |#' | cut -c1-600)
  incl=$(callgrind_annotate --inclusive=yes "$DATA/callgrind.out.s2scope" 2>/dev/null \
        | grep -E '^ *[0-9,]+ \( *[0-9.]+%\) ' | grep 's2scope-nodebug\]$' | demangle \
        | grep -vE 'protocol witness|partial apply|\(below main\)|s2scope_main|ParsableCommand|S2ScopeCommand|Analyze\.run|thunk' \
        | awk 'NR<=25' | sed -E 's/^ *([0-9,]+) \( *([0-9.]+)%\) +(\?\?\?:)?/| \2 % | \1 | /; s# \[[^]]*\]$# |#' | cut -c1-600)
  PROFILE_MD=$'## Profile: s2scope, callgrind on the 10M capture (instructions, self cost, top 15)\n\n| share | instructions | function | object |\n|---:|---:|---|---|\n'"$top"$'\n\n'
  PROFILE_MD+=$'Where that time comes from — s2scope\'s own functions by inclusive cost (callers included, top 25):\n\n| share | instructions | function |\n|---:|---:|---|\n'"$incl"$'\n\n'
  first=${SIZES%% *}
  ff="$DATA/s2s-$first-seed$SEED.pcap"
  if command -v perf >/dev/null && perf record -e cpu-clock -o "$DATA/perf.probe" true >/dev/null 2>&1; then
    log "profiling s2scope with perf (cpu-clock) on $ff"
    perf record -e cpu-clock -F 2000 -g -o "$DATA/perf.data" "$S2SCOPE" analyze --format json -o /dev/null "$ff" >/dev/null 2>&1 || true
    ptop=$(perf report -i "$DATA/perf.data" --no-children --stdio --sort dso,symbol -g none 2>/dev/null \
           | grep -E '^ +[0-9.]+%' | awk 'NR<=15' | demangle | sed -E 's/[[:space:]]+(-[[:space:]]+)*$//' \
           | sed -E 's/^ +([0-9.]+)% +([^ ]+) +\[.\] +/| \1 % | \2 | /; s/$/ |/' | cut -c1-600)
    PROFILE_MD+=$'## Profile: s2scope, perf cpu-clock samples on the '"$first"$' capture (self time, top 15)\n\n| share | object | function |\n|---:|---|---|\n'"$ptop"$'\n'
  fi
  rm -f "$DATA/perf.probe"
fi

# --- report --------------------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
ram=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
swiftv=$("$SWIFT" --version 2>/dev/null | awk 'NR<=1')
tsharkv=$(tshark --version 2>/dev/null | awk 'NR<=1')
pcapv=$(pkg-config --modversion libpcap 2>/dev/null || echo '?')
commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(cd "$ROOT" && git status --porcelain 2>/dev/null | grep -vc '^??' || true)

md=$(cat <<EOF
# S2Scope benchmark

Generated by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d) — do not edit by hand.

**Machine:** $(nproc) cores, $cpu, $ram RAM, Linux $(uname -r); $swiftv; $tsharkv; libpcap $pcapv.
**Load average when the measurements started:** $LOAD (the machine is shared; other builds may have been running).
**Code:** commit $commit$( [ "${dirty:-0}" != 0 ] && echo " + $dirty modified tracked files (work in progress)")$( [ "$SKIP_BUILD" = 1 ] && echo "; binaries not rebuilt for this run (BENCH_SKIP_BUILD=1): s2scope built $(date -u -r "$S2SCOPE" '+%Y-%m-%d %H:%M UTC')").

Captures: \`s2scope-gen --size SIZE --seed $SEED\` (Benchmarks/): ~200 domains on IPv4 and IPv6, many concurrent
dialback exchanges over two connections each (db:result on A, db:verify on a verify-only connection B, reply,
verdict on A), then message/presence/iq stanzas of 50 B–8 KB with UTF-8 text and XML entities cut at MSS 1448
and interleaved across connections, ~1 % of segments retransmitted and some reordered, ~10 % of bytes
non-s2s noise (HTTPS, HTTP, IMAPS, DNS, QUIC, ARP), graceful closes, and injected violations at known counts
(truth file next to each capture). All tools read the same file from the page cache (warmed first).
Wall time is the median of the runs; MB = 10^6 bytes of capture file; peak RSS is the maximum over the runs.

| capture | tool | runs | wall s (median) | MB/s | packets/s | peak RSS MiB | note |
|---|---|---:|---:|---:|---:|---:|---|
$(printf '%s\n' "${ROWS[@]}")

## Verdicts against the generator's truth: $OVERALL

Each injected rule must fire at least as often as injected (violations + suppressed_violations), no HIGH or
CRITICAL finding of any other rule may appear, and the dialback exchanges (total, per outcome, each matched to
its db:verify) and XMPP stream count must equal the truth.

$(printf '%s\n\n' "${VERDICTS[@]}")
$PROFILE_MD
EOF
)
echo "$md"
if [ -n "$MD" ]; then
  mkdir -p "$(dirname "$MD")"
  printf '%s\n' "$md" > "$MD"
  log "wrote $MD"
fi
echo "bench: verdict check $OVERALL" >&2
[ "$OVERALL" = PASS ]
