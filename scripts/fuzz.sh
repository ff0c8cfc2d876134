#!/usr/bin/env bash
# Builds S2Scope's libFuzzer targets (the separate Fuzz/ package) and runs each in turn.
#
#   scripts/fuzz.sh                      all targets: decode reassembly xmpp pipeline
#   scripts/fuzz.sh xmpp pipeline        some of them
#   FUZZ_SECONDS=120 scripts/fuzz.sh     seconds per target (default 600: at least 10 minutes each)
#   FUZZ_FLAGS="-jobs=2 -workers=2"      extra libFuzzer flags
#
# Inputs: the committed corpus Fuzz/corpus/<target> (minimised; read, never written), seeds
# written by the targets themselves (--make-seeds: fixtures/**/*.pcap[ng], every rule's example
# transcripts, and frames of the S2Synth frame grammar) and the growing corpus
# Fuzz/.work/corpus/<target>. Fuzz/dict/<target>.dict is the target's dictionary; decode and
# pipeline also splice grammar frames in through a custom mutator (FuzzTargets/GrammarMutator).
#
#   FUZZ_MERGE=1 scripts/fuzz.sh decode   after the run, minimise everything into Fuzz/corpus/decode
#
# The growing corpus lives in Fuzz/.work/corpus/<target>;
# crashes, timeouts and OOMs in Fuzz/.work/artifacts/<target>/ (reproduce one with
# `Fuzz/.build/debug/fuzz-<target> FILE`; every crash found becomes a test in
# Tests/HostileInputTests). The script prints executions, execs/s and coverage per target and
# exits 1 if any target left an artifact.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-600}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decode reassembly xmpp pipeline)
"$root/scripts/install-deps.sh" build

cd "$root/Fuzz"
build=(swift build -c debug -Xswiftc -sanitize=fuzzer,address)
echo "building the fuzz targets: ${build[*]}" >&2
"${build[@]}"
bin=$("${build[@]}" --show-bin-path)

# Swift's crash handler would otherwise trigger a false ASan report and no crash file is written.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=0}

work="$root/Fuzz/.work"
summary=()
failed=0
for t in "${targets[@]}"; do
  case "$t" in
    decode) maxlen=8192 ;;
    reassembly) maxlen=4096 ;;
    xmpp|pipeline) maxlen=65536 ;;
    *) echo "unknown target '$t' (decode reassembly xmpp pipeline)" >&2; exit 2 ;;
  esac
  seeds="$work/seeds/$t" corpus="$work/corpus/$t" artifacts="$work/artifacts/$t"
  committed="$root/Fuzz/corpus/$t"
  rm -rf "$seeds"
  mkdir -p "$seeds" "$corpus" "$artifacts"
  "$bin/fuzz-$t" --make-seeds "$seeds" "$root" >&2
  inputs=("$corpus" "$seeds")
  [ -d "$committed" ] && inputs+=("$committed")
  dict=()
  case "$t" in
    decode) dict=(-dict="$root/Fuzz/dict/decode.dict") ;;
    xmpp) dict=(-dict="$root/Fuzz/dict/xmpp.dict") ;;
    pipeline) dict=(-dict="$root/Fuzz/dict/pipeline.dict") ;;
  esac
  log="$work/$t.log"
  echo "fuzzing $t for ${seconds}s (log: $log)" >&2
  set +e
  # shellcheck disable=SC2086
  "$bin/fuzz-$t" -max_total_time="$seconds" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" ${FUZZ_FLAGS:-} "${inputs[@]}" >"$log" 2>&1
  rc=$?
  set -e
  if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$rc" -eq 0 ]; then
    # A fresh minimal set covering everything seen (corpus, seeds, the old committed set).
    rm -rf "$committed.new" && mkdir -p "$committed.new"
    "$bin/fuzz-$t" -merge=1 -max_len="$maxlen" -timeout=10 "$committed.new" "${inputs[@]}" >"$work/$t.merge.log" 2>&1
    rm -rf "$committed" && mv "$committed.new" "$committed"
    echo "$t: $(find "$committed" -type f | wc -l) inputs, $(du -sh "$committed" | cut -f1) in $committed" >&2
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  found=$(find "$artifacts" -type f | wc -l)
  summary+=("$(printf '%-11s %6ss %12s execs %8s/s  cov %6s  ft %6s  artifacts %s  exit %s' \
                "$t" "$seconds" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$found" "$rc")")
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    failed=1
    echo "$t: libFuzzer exited $rc; artifacts in $artifacts; tail of $log:" >&2
    tail -40 "$log" >&2
  fi
done
echo
printf '%s\n' "${summary[@]}"
exit $failed
