#!/usr/bin/env bash
# scripts/bench.sh — `make bench`: s2scope against the C yardstick of issue #17 (libpcap read, decode,
# flow table, reassembly, an expat parser per direction, no rules), a plain libpcap read loop and
# tshark on the same generated s2s captures, with every s2scope figure given as a ratio to the C
# yardstick measured in the same run (this shared machine's absolute speed swings by 2x). Also:
# allocations and instructions per MB of capture, peak RSS against the memory budget, byte-identical
# reports for every thread count, the verdicts against the generator's truth, and `live` on a veth
# pair. Writes Markdown to stdout and to docs/BENCH.md.
#
# Environment (all optional):
#   BENCH_SIZES="100M 1G"    capture sizes (K/M/G suffix, binary), generated once per size and seed
#   BENCH_SEED=1             generator seed
#   BENCH_THREADS="1 2 4"    s2scope --threads values timed (the first is the reference for speedups)
#   BENCH_RUNS=5             rounds per capture; each round runs the C yardstick, the read loop and
#                            s2scope with every thread count once, in rotating order, so that drift
#                            hits all alike; medians (and medians of per-round ratios) are reported
#   BENCH_TSHARK_RUNS=3      tshark runs on captures up to BENCH_TSHARK_FULL=200M ...
#   BENCH_TSHARK_BIG_RUNS=1  ... and on bigger ones (0 skips tshark there; it needs ~2.5 GiB RSS per GB)
#   BENCH_CEILING=DIR        the C yardstick's source (pcap_xml.c and its Makefile); default: the
#                            project's shared folder, ../shared/perf/ceiling next to the clone (or
#                            next to the folder holding a worktree). Built with gcc into BENCH_DATA;
#                            without it the table says so and the "x C" column stays empty.
#                            A second C row, the same program with expat set up as S2Scope sets it
#                            up (scripts/yardstick-s2-expat.py), shows the parse S2Scope cannot avoid.
#   BENCH_FLOOR=1            three more tools in every round: S2Scope's own layers without any analysis
#                            (Benchmarks/Sources/floor-bench): read + decode + reassembly; + expat set up
#                            as the C yardstick sets it up; + the least per-element work of an analyzer
#                            (names interned, events as values): the floor under the one-thread figure
#   BENCH_ENGINE=1           package-benchmark suite (Benchmarks/Benchmarks/EngineBenchmarks): mallocs,
#                            bytes allocated, wall time (and instructions where the CPU counter is
#                            readable) per MB, on a capture of BENCH_ENGINE_SIZE=8M, with
#                            BENCH_ENGINE_THREADS="1 2" and BENCH_ENGINE_ITERATIONS=5; 0 skips it
#                            (its first build takes minutes)
#   BENCH_VALGRIND=1         instructions per MB (callgrind: exact, whatever the load) and heap
#                            allocations per MB (memcheck) of the C yardstick and of s2scope on the
#                            BENCH_ENGINE_SIZE capture; 0 skips
#   BENCH_FIXTURES=1         byte-identical reports for every thread count on every capture in fixtures/
#   BENCH_LIVE=auto          `live --threads 2` replaying the BENCH_LIVE_SIZE=100M capture at
#                            BENCH_LIVE_RATE=1000 Mbit/s on a veth pair (scripts/lab/live-replay-bench.sh)
#                            with a BENCH_LIVE_BUFFER=134217728-byte kernel ring (--buffer-size: what holds
#                            the burst while the analysis catches up);
#                            auto: when root with network namespaces; 0 skips; 1 demands it
#   BENCH_PROFILE=0          1: also profile s2scope (callgrind on a 10M capture; perf if it can sample)
#   BENCH_DATA=/var/tmp/s2scope-bench   captures, truth files, reports, the C programs' binaries
#   BENCH_MD=docs/BENCH.md   Markdown output ('' for stdout only)
#   BENCH_SKIP_BUILD=0       1: use the Swift binaries already built (the C programs are always built)
# Quick check: BENCH_SIZES=10M BENCH_RUNS=1 BENCH_TSHARK_RUNS=1 BENCH_ENGINE_ITERATIONS=1 BENCH_LIVE=0 BENCH_MD= make bench
#
# Exit status: 0 when every report is right (verdicts PASS, identical for every thread count);
# the performance targets of issue #17 are reported (met / NOT MET), not enforced.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${BENCH_DATA:-/var/tmp/s2scope-bench}"
SIZES="${BENCH_SIZES:-100M 1G}"
SEED="${BENCH_SEED:-1}"
THREADS="${BENCH_THREADS:-1 2 4}"
RUNS="${BENCH_RUNS:-5}"
TSHARK_RUNS="${BENCH_TSHARK_RUNS:-3}"
TSHARK_FULL="${BENCH_TSHARK_FULL:-200M}"
TSHARK_BIG_RUNS="${BENCH_TSHARK_BIG_RUNS:-1}"
ENGINE="${BENCH_ENGINE:-1}"
ENGINE_SIZE="${BENCH_ENGINE_SIZE:-8M}"
ENGINE_THREADS="${BENCH_ENGINE_THREADS:-1 2}"
ENGINE_ITERATIONS="${BENCH_ENGINE_ITERATIONS:-5}"
VALGRIND="${BENCH_VALGRIND:-1}"
FLOOR="${BENCH_FLOOR:-1}"
FIXTURES="${BENCH_FIXTURES:-1}"
LIVE="${BENCH_LIVE:-auto}"
LIVE_SIZE="${BENCH_LIVE_SIZE:-100M}"
LIVE_RATE="${BENCH_LIVE_RATE:-1000}"
LIVE_BUFFER="${BENCH_LIVE_BUFFER:-134217728}"
PROFILE="${BENCH_PROFILE:-0}"
MD="${BENCH_MD-$ROOT/docs/BENCH.md}"
SKIP_BUILD="${BENCH_SKIP_BUILD:-0}"
SWIFT="${SWIFT:-swift}"

GEN="$ROOT/Benchmarks/.build/release/s2scope-gen"
S2SCOPE="$ROOT/.build-bench/release/s2scope"
READLOOP="$DATA/readloop"
FLOOR_BENCH="$ROOT/Benchmarks/.build/release/floor-bench"
YARDSTICK="$DATA/pcap_xml"
YARDSTICK_S2EXPAT="$DATA/pcap_xml_s2expat"
CHECK="$ROOT/Benchmarks/Scripts/check_truth.py"
RENDER="$ROOT/Benchmarks/Scripts/render_bench.py"

log() { echo "bench: $*" >&2; }

bytes_of() {  # 100M -> bytes (binary suffixes, like s2scope-gen)
  python3 -c 'import sys
s=sys.argv[1].upper(); m={"K":1<<10,"M":1<<20,"G":1<<30}
print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))' "$1"
}

first_threads=${THREADS%% *}

# The C yardstick's source: BENCH_CEILING, else the shared folder beside the clone. A worktree lives
# one level deeper (wt/NAME), hence the second candidate.
CEILING="${BENCH_CEILING:-}"
if [ -z "$CEILING" ]; then
  for d in "$ROOT/../shared/perf/ceiling" "$ROOT/../../shared/perf/ceiling"; do
    if [ -f "$d/pcap_xml.c" ]; then CEILING="$(cd "$d" && pwd)"; break; fi
  done
fi
if [ -n "$CEILING" ] && [ ! -f "$CEILING/pcap_xml.c" ]; then
  log "BENCH_CEILING=$CEILING has no pcap_xml.c"; exit 2
fi

# --- dependencies ---------------------------------------------------------------------------------
"$ROOT/scripts/install-deps.sh" build
need=()
command -v tshark >/dev/null || need+=(tshark)
[ -x /usr/bin/time ] || need+=(time)
command -v gcc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
if [ "$PROFILE" = 1 ] || [ "$VALGRIND" = 1 ]; then command -v valgrind >/dev/null || need+=(valgrind); fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$DATA"
# The measurements, kept after the run: Benchmarks/Scripts/render_bench.py renders them again.
RESULTS="$DATA/bench-results.tsv"
: > "$RESULTS"
trap 'rm -f "$DATA/.time.$$" "$DATA/.stderr.$$"' EXIT
# One line per fact for the renderer: KIND<TAB>fields... (see Benchmarks/Scripts/render_bench.py)
emit() { local IFS=$'\t'; echo "$*" >> "$RESULTS"; }

# --- builds (one at a time: the machine has 2 cores) ---------------------------------------------
BUILD_NOTE=""
if [ "$SKIP_BUILD" != 1 ]; then
  log "building s2scope-gen (Benchmarks/, release)"
  (cd "$ROOT/Benchmarks" && "$SWIFT" build -c release --product s2scope-gen 2>&1 | tail -1) >&2
  if [ "$FLOOR" = 1 ]; then
    log "building floor-bench (Benchmarks/, release)"
    (cd "$ROOT/Benchmarks" && "$SWIFT" build -c release --product floor-bench 2>&1 | tail -1) >&2
  fi
  log "building s2scope (release, --scratch-path .build-bench)"
  (cd "$ROOT" && "$SWIFT" build -c release --scratch-path .build-bench --product s2scope 2>&1 | tail -1) >&2
fi
# The C programs take a second: always built.
log "building the C read loop"
gcc -O2 -Wall -o "$READLOOP" "$ROOT/scripts/readloop.c" -lpcap
if [ -n "$CEILING" ]; then
  # Built by its own Makefile and flags from a copy in the bench folder, never in the shared folder.
  log "building the C yardstick from $CEILING in $DATA/ceiling"
  rm -rf "$DATA/ceiling"
  mkdir -p "$DATA/ceiling"
  cp "$CEILING/Makefile" "$CEILING"/*.c "$CEILING"/*.h "$DATA/ceiling/"
  chmod u+w "$DATA/ceiling"/*
  make -s -C "$DATA/ceiling" CC=gcc pcap_xml >&2
  cp "$DATA/ceiling/pcap_xml" "$YARDSTICK"
  # The same program with expat set up as S2Scope sets it up: the parse S2Scope cannot avoid.
  rm -f "$YARDSTICK_S2EXPAT"
  if python3 "$ROOT/scripts/yardstick-s2-expat.py" "$DATA/ceiling/pcap_xml.c" "$DATA/ceiling/pcap_xml_s2expat.c"; then
    gcc -O2 -Wall -Wextra -I"$ROOT/Sources/CExpat" -o "$YARDSTICK_S2EXPAT" "$DATA/ceiling/pcap_xml_s2expat.c" -lpcap -lexpat
  fi
fi
for b in "$GEN" "$S2SCOPE" "$READLOOP"; do [ -x "$b" ] || { log "missing $b"; exit 2; }; done
"$GEN" --selftest >&2

# --- captures ------------------------------------------------------------------------------------
capture_of() { echo "$DATA/s2s-$1-seed$SEED.pcap"; }
make_capture() {  # size
  local f gs grss
  f=$(capture_of "$1")
  if [ ! -s "$f" ] || [ ! -s "${f%.pcap}.truth.json" ]; then
    log "generating $f"
    /usr/bin/time -f '%e %M' -o "$DATA/.gen-time" "$GEN" --size "$1" --seed "$SEED" --out "$f" --truth "${f%.pcap}.truth.json" --quiet
    tail -1 "$DATA/.gen-time" > "${f%.pcap}.gen-time"
  fi
}
for size in $SIZES; do make_capture "$size"; done

packets_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "${1%.pcap}.truth.json"; }

# --- timing --------------------------------------------------------------------------------------
# What a parsing run counted (C yardstick, floor-bench): the fields both print.
counts() { tr ' ' '\n' < "$1" | grep -E '^(bytes_parsed|elements|stanzas|dialback)=' | sort | tr '\n' ' '; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run_once NAME CMD... : one run under GNU time; sets WALL (s, from the shell's clock: time's %e has
# 10 ms steps) and RSS_KB (peak resident set).
run_once() {
  local name="$1" rc t0 t1 w r
  shift
  set +e
  t0=$(date +%s.%N)
  /usr/bin/time -f '%e %M' -o "$DATA/.time.$$" "$@" >"$DATA/.stdout.$name" 2>"$DATA/.stderr.$$"
  rc=$?
  t1=$(date +%s.%N)
  set -e
  # s2scope exits 1 when it found HIGH violations (the injected ones): that is success here.
  if [ $rc -ne 0 ] && ! { [[ "$name" == s2scope* ]] && [ $rc -eq 1 ]; }; then
    log "$name failed (exit $rc):"; tail -5 "$DATA/.stderr.$$" >&2; exit 1
  fi
  read -r w r < <(tail -1 "$DATA/.time.$$")
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  RSS_KB=$r
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
REPORTS_OK=1

for size in $SIZES; do
  f=$(capture_of "$size")
  bytes=$(stat -c %s "$f")
  packets=$(packets_of "$f")
  log "capture $f ($bytes bytes, $packets packets)"
  cat "$f" > /dev/null  # warm the page cache: every tool then reads from memory

  # The tools of one round; each round starts one further along, so none always runs first.
  tools=()
  [ -n "$CEILING" ] && tools+=(c)
  [ -x "$YARDSTICK_S2EXPAT" ] && tools+=(cx)
  tools+=(readloop)
  # The floor: S2Scope's layers without analysis (fr: read, decode, reassembly; fx: + expat as C
  # sets it up; fe: + interned names and event values).
  if [ "$FLOOR" = 1 ] && [ -x "$FLOOR_BENCH" ]; then tools+=(fr fx fe); fi
  for n in $THREADS; do tools+=("t$n"); done
  declare -A walls=() rss=()
  for ((k = 0; k < RUNS; k++)); do
    for ((j = 0; j < ${#tools[@]}; j++)); do
      t=${tools[$(((j + k) % ${#tools[@]}))]}
      case $t in
        c) run_once yardstick "$YARDSTICK" "$f" ;;
        cx) run_once yardstick-s2expat "$YARDSTICK_S2EXPAT" "$f" ;;
        readloop) run_once readloop "$READLOOP" "$f" ;;
        fr) run_once floor-reassemble "$FLOOR_BENCH" reassemble "$f" ;;
        fx) run_once floor-expat "$FLOOR_BENCH" expat "$f" ;;
        fe) run_once floor-events "$FLOOR_BENCH" events "$f" ;;
        t*) run_once "s2scope-$t" "$S2SCOPE" analyze --threads "${t#t}" --format json -o "$DATA/s2s-$size-seed$SEED.report.$t.json" "$f" ;;
      esac
      walls[$t]="${walls[$t]:-} $WALL"
      if [ "$RSS_KB" -gt "${rss[$t]:-0}" ]; then rss[$t]=$RSS_KB; fi
      log "  round $((k + 1))/$RUNS $t: ${WALL}s, $RSS_KB KB"
    done
  done
  for t in "${tools[@]}"; do
    # time SIZE BYTES PACKETS KEY RUNS RSS_KB WALLS(comma-separated, in round order) NOTE
    note=""
    [ "$t" = c ] && note=$(tr -d '\n' < "$DATA/.stdout.yardstick")
    if [ "$t" = fx ] || [ "$t" = fe ]; then
      # A floor that parsed something else than the yardstick would be no floor: same bytes,
      # elements, depth-1 elements and dialback elements, or the row says it differs.
      stage=expat; [ "$t" = fe ] && stage=events
      if [ "$(counts "$DATA/.stdout.floor-$stage")" = "$(counts "$DATA/.stdout.yardstick")" ]; then
        note="parsed what the yardstick parsed"
      else
        note="DIFFERS from the yardstick: $(counts "$DATA/.stdout.floor-$stage")"
      fi
    fi
    # shellcheck disable=SC2086
    emit time "$size" "$bytes" "$packets" "$t" "$RUNS" "${rss[$t]}" "$(echo ${walls[$t]} | tr ' ' ,)" "$note"
  done
  [ -z "$CEILING" ] && emit time "$size" "$bytes" "$packets" c 0 0 "" "absent"

  tr=$TSHARK_RUNS
  if [ "$(bytes_of "$size")" -gt "$(bytes_of "$TSHARK_FULL")" ]; then tr=$TSHARK_BIG_RUNS; fi
  if [ "$tr" -gt 0 ]; then
    tw=(); trss=0
    for ((k = 1; k <= tr; k++)); do
      run_once tshark tshark -n -r "$f" -d tcp.port==5269,xmpp -2 -Y xmpp -T fields -e frame.number
      tw+=("$WALL"); [ "$RSS_KB" -gt "$trss" ] && trss=$RSS_KB
      log "  tshark run $k/$tr: ${WALL}s, $RSS_KB KB"
    done
    emit time "$size" "$bytes" "$packets" tshark "$tr" "$trss" "$(IFS=,; echo "${tw[*]}")" ""
  fi
  if [ -s "${f%.pcap}.gen-time" ]; then
    read -r gs grss < "${f%.pcap}.gen-time"
    emit time "$size" "$bytes" "$packets" gen 1 "$grss" "$gs" ""
  fi

  # Verdicts against the truth, on the first thread count's report; every other thread count's
  # report must be the very same bytes.
  log "checking the reports on $f"
  ref="$DATA/s2s-$size-seed$SEED.report.t$first_threads.json"
  set +e
  out=$(python3 "$CHECK" "$ref" "${f%.pcap}.truth.json")
  rc=$?
  set -e
  verdict=PASS
  [ $rc -eq 0 ] || verdict=FAIL
  same=""
  for n in $THREADS; do
    [ "$n" = "$first_threads" ] && continue
    if cmp -s "$ref" "$DATA/s2s-$size-seed$SEED.report.t$n.json"; then
      same+=" $n:identical"
    else
      same+=" $n:DIFFERS"; verdict=FAIL
    fi
  done
  [ "$verdict" = PASS ] || REPORTS_OK=0
  printf '%s\n' "$out" > "$DATA/check-$size.txt"
  emit verdict "$size" "$verdict" "$first_threads" "${same# }" "$DATA/check-$size.txt"
  rm -f "$DATA"/s2s-"$size"-seed"$SEED".report.t*.json
done

# --- fixtures: the same report whatever the thread count -----------------------------------------
if [ "$FIXTURES" = 1 ]; then
  log "fixtures: one report per thread count ($THREADS) for every capture in fixtures/"
  fx_total=0; fx_diff=()
  tmp="$DATA/.fixture-reports"
  mkdir -p "$tmp"
  while IFS= read -r fx; do
    fx_total=$((fx_total + 1))
    refrc=""
    for n in $THREADS; do
      set +e
      "$S2SCOPE" analyze --quiet --threads "$n" --format json -o "$tmp/t$n.json" "$fx" >/dev/null 2>&1
      rc=$?
      set -e
      [ -f "$tmp/t$n.json" ] || : > "$tmp/t$n.json"  # a capture it refuses: no report, compare the exit codes
      if [ -z "$refrc" ]; then
        refrc=$rc
        cp "$tmp/t$n.json" "$tmp/ref.json"
      elif [ "$rc" != "$refrc" ] || ! cmp -s "$tmp/ref.json" "$tmp/t$n.json"; then
        fx_diff+=("${fx#"$ROOT"/} (--threads $n)")
      fi
      rm -f "$tmp/t$n.json"
    done
  done < <(find "$ROOT/fixtures" -type f \( -name '*.pcap' -o -name '*.pcapng' \) | sort)
  rm -rf "$tmp"
  [ ${#fx_diff[@]} -eq 0 ] || REPORTS_OK=0
  emit fixtures "$fx_total" "$THREADS" "$(IFS=';'; echo "${fx_diff[*]:-}")"
fi

# --- allocations and instructions per MB ---------------------------------------------------------
if [ "$ENGINE" = 1 ] || [ "$VALGRIND" = 1 ]; then make_capture "$ENGINE_SIZE"; fi
ef=$(capture_of "$ENGINE_SIZE")

if [ "$ENGINE" = 1 ]; then
  # package-benchmark builds its suite itself (release); its first cold build takes minutes.
  log "package-benchmark: EngineBenchmarks on $ef (threads $ENGINE_THREADS, $ENGINE_ITERATIONS iterations)"
  pbdir="$DATA/.package-benchmark"
  rm -rf "$pbdir"; mkdir -p "$pbdir"
  set +e
  (cd "$ROOT/Benchmarks" && S2SCOPE_BENCH_CAPTURE="$ef" S2SCOPE_BENCH_THREADS="$ENGINE_THREADS" \
     S2SCOPE_BENCH_ITERATIONS="$ENGINE_ITERATIONS" \
     "$SWIFT" package --disable-sandbox --allow-writing-to-directory "$pbdir" benchmark run \
       --target EngineBenchmarks --no-progress --format influx --path "$pbdir") > "$DATA/package-benchmark.log" 2>&1
  rc=$?
  set -e
  csv=$(find "$pbdir" -name '*.csv' | head -1)
  if [ $rc -eq 0 ] && [ -n "$csv" ]; then
    emit engine "$(stat -c %s "$ef")" "$ENGINE_SIZE" "$csv"
  else
    log "package-benchmark failed (exit $rc); see $DATA/package-benchmark.log"; tail -20 "$DATA/package-benchmark.log" >&2
    emit engine_failed "$rc" "$DATA/package-benchmark.log"
  fi
fi

if [ "$VALGRIND" = 1 ]; then
  # valgrind 3.19 cannot read the DWARF 5 of Swift 6.3 binaries: run a copy without debug info.
  objcopy --strip-debug "$S2SCOPE" "$DATA/s2scope-nodebug"
  eb=$(stat -c %s "$ef")
  vg() {  # KEY CMD... : instructions (callgrind), those inside libexpat, and heap allocations (memcheck) of one run
    local key=$1 ir allocs abytes xir
    shift
    log "valgrind: $key on $ef"
    valgrind --tool=callgrind --callgrind-out-file="$DATA/.callgrind.$key" "$@" >/dev/null 2>"$DATA/.vg.$key" || true
    ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$DATA/.callgrind.$key" | head -1)
    # The same expat library does the XML parse in both programs: its share is the part of the
    # yardstick S2Scope cannot do with fewer instructions.
    xir=$(callgrind_annotate --inclusive=no --threshold=100 "$DATA/.callgrind.$key" 2>/dev/null \
      | awk '/libexpat/ { gsub(",", "", $1); s += $1 } END { if (s) print s }')
    valgrind --tool=memcheck --leak-check=no "$@" >/dev/null 2>"$DATA/.vg.$key" || true
    read -r allocs abytes < <(sed -n 's/.*total heap usage: \([0-9,]*\) allocs, [0-9,]* frees, \([0-9,]*\) bytes allocated.*/\1 \2/p' "$DATA/.vg.$key" | tr -d , | tail -1) || true
    emit work "$key" "$eb" "${ir:-}" "${allocs:-}" "${abytes:-}" "${xir:-}"
    rm -f "$DATA/.callgrind.$key" "$DATA/.vg.$key"
  }
  [ -n "$CEILING" ] && vg c "$YARDSTICK" "$ef"
  for n in $ENGINE_THREADS; do
    vg "t$n" "$DATA/s2scope-nodebug" analyze --quiet --threads "$n" --format json -o /dev/null "$ef"
  done
fi

# --- live ----------------------------------------------------------------------------------------
live_ok=0
if [ "$LIVE" != 0 ]; then
  if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then live_ok=1; fi
  if [ $live_ok = 0 ]; then
    [ "$LIVE" = 1 ] && { log "BENCH_LIVE=1 needs root and network namespaces"; exit 2; }
    emit live skipped "needs root and network namespaces"
  else
    make_capture "$LIVE_SIZE"
    lf=$(capture_of "$LIVE_SIZE")
    largs=""
    if "$S2SCOPE" live --help 2>&1 | grep -q -- '--threads'; then
      largs="--threads 2"
    fi
    log "live: replaying $lf at $LIVE_RATE Mbit/s on a veth pair (s2scope live ${largs:-without --threads: it has no such option})"
    set +e
    S2SCOPE="$S2SCOPE" LIVE_ARGS="$largs" BUFFER="$LIVE_BUFFER" bash "$ROOT/scripts/lab/live-replay-bench.sh" "$lf" "$LIVE_RATE" > "$DATA/live.log" 2>"$DATA/live.stderr"
    rc=$?
    set -e
    if [ $rc -eq 0 ]; then
      emit live ran "$LIVE_SIZE" "$LIVE_RATE" "${largs:-none}" "$DATA/live.log" "$LIVE_BUFFER"
    else
      tail -5 "$DATA/live.stderr" >&2
      emit live failed "exit $rc: $(tail -1 "$DATA/live.stderr" | tr '\t' ' ')"
    fi
  fi
else
  emit live skipped "BENCH_LIVE=0"
fi

# --- profile (optional) --------------------------------------------------------------------------
# Callgrind counts instructions (deterministic, but blind to cache misses); perf with the software
# cpu-clock event samples wall time on the first capture size (hardware counters are not available in
# every VM: `perf stat -e instructions true` says "not supported" there).
PROFILE_MD="$DATA/profile.md"
: > "$PROFILE_MD"
demangle() { if command -v swift-demangle >/dev/null; then swift-demangle --simplified; else "$SWIFT" demangle --simplified; fi; }
if [ "$PROFILE" = 1 ]; then
  pf="$DATA/s2s-10M-seed$SEED.pcap"
  [ -s "$pf" ] || "$GEN" --size 10M --seed "$SEED" --out "$pf" --truth "${pf%.pcap}.truth.json" --quiet
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
  {
    printf '## Profile: s2scope, callgrind on the 10M capture (instructions, self cost, top 15)\n\n| share | instructions | function | object |\n|---:|---:|---|---|\n%s\n\n' "$top"
    printf "Where that time comes from — s2scope's own functions by inclusive cost (callers included, top 25):\n\n| share | instructions | function |\n|---:|---:|---|\n%s\n\n" "$incl"
  } >> "$PROFILE_MD"
  first=${SIZES%% *}
  ff=$(capture_of "$first")
  if command -v perf >/dev/null && perf record -e cpu-clock -o "$DATA/perf.probe" true >/dev/null 2>&1; then
    log "profiling s2scope with perf (cpu-clock) on $ff"
    perf record -e cpu-clock -F 2000 -g -o "$DATA/perf.data" "$S2SCOPE" analyze --format json -o /dev/null "$ff" >/dev/null 2>&1 || true
    ptop=$(perf report -i "$DATA/perf.data" --no-children --stdio --sort dso,symbol -g none 2>/dev/null \
           | grep -E '^ +[0-9.]+%' | awk 'NR<=15' | demangle | sed -E 's/[[:space:]]+(-[[:space:]]+)*$//' \
           | sed -E 's/^ +([0-9.]+)% +([^ ]+) +\[.\] +/| \1 % | \2 | /; s/$/ |/' | cut -c1-600)
    printf '## Profile: s2scope, perf cpu-clock samples on the %s capture (self time, top 15)\n\n| share | object | function |\n|---:|---|---|\n%s\n' "$first" "$ptop" >> "$PROFILE_MD"
  fi
  rm -f "$DATA/perf.probe"
fi

# --- report --------------------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
ram=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
swiftv=$("$SWIFT" --version 2>/dev/null | awk 'NR<=1')
tsharkv=$(tshark --version 2>/dev/null | awk 'NR<=1')
pcapv=$(pkg-config --modversion libpcap 2>/dev/null || echo '?')
expatv=$(pkg-config --modversion expat 2>/dev/null || echo '?')
gccv=$(gcc --version 2>/dev/null | awk 'NR<=1')
commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')
# docs/BENCH.md is this script's own output: not a change to the code measured.
dirty=$(cd "$ROOT" && git status --porcelain -- . ':!docs/BENCH.md' 2>/dev/null | grep -vc '^??' || true)
code="commit $commit"
[ "${dirty:-0}" != 0 ] && code+=" + $dirty modified tracked files (work in progress)"
[ "$SKIP_BUILD" = 1 ] && code+="; binaries not rebuilt for this run (BENCH_SKIP_BUILD=1): s2scope built $(date -u -r "$S2SCOPE" '+%Y-%m-%d %H:%M UTC')"
ceiling_note="${CEILING:-absent}"

md=$(python3 "$RENDER" "$RESULTS" \
  --date "$(date -u +%Y-%m-%d)" \
  --machine "$(nproc) cores, $cpu, $ram RAM, Linux $(uname -r); $swiftv; $gccv; $tsharkv; libpcap $pcapv; expat $expatv" \
  --load "$LOAD" --code "$code" --seed "$SEED" --threads "$THREADS" --runs "$RUNS" \
  --ceiling "$ceiling_note" --profile "$PROFILE_MD")
# Issue #19: the Spark job (local[2]) on the largest capture cut into flow-hashed shards, next to one
# s2scope process on the same file in the same run (spark/bench.sh; BENCH_SPARK=0 skips it). pyspark
# goes into the venv `make spark-test` uses; Java comes from install-deps.sh test.
if [ "${BENCH_SPARK:-1}" != 0 ]; then
  big=${SIZES##* }
  venv="$ROOT/.build-spark-venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pyspark' 2>/dev/null; then
    log "spark: setting up $venv (pyspark from PyPI)"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q -r "$ROOT/spark/requirements.txt" >&2
  fi
  log "spark: the Spark job on $big in 4 shards (spark/bench.sh)"
  spark_out=$(S2SCOPE="$S2SCOPE" SPARK_PYTHON="$venv/bin/python" BENCH_WORK="$DATA/spark-$big" \
    bash "$ROOT/spark/bench.sh" "$(capture_of "$big")" 4 2>&2) || { spark_out+=$'\n\n**the Spark job failed or its verdicts differ (see above)**'; REPORTS_OK=0; }
  md+=$'\n\n## Many sensors on Spark (issue #19, `spark/bench.sh`, same run)\n\n'"$spark_out"
fi
echo "$md"
if [ -n "$MD" ]; then
  mkdir -p "$(dirname "$MD")"
  printf '%s\n' "$md" > "$MD"
  log "wrote $MD"
fi
rm -f "$DATA"/.stdout.*
if [ $REPORTS_OK = 1 ]; then
  log "reports: PASS (verdicts against the truth, identical for every thread count)"
else
  log "reports: FAIL (see the Verdicts section)"
fi
[ $REPORTS_OK = 1 ]
