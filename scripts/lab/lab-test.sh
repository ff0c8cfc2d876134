#!/usr/bin/env bash
# Re-run the real-server lab into a temporary directory and, if an s2scope
# binary has been built, analyse every fresh capture and compare the report
# with the scenario's ground truth.
#
#   sudo scripts/lab/lab-test.sh [SCENARIO...]        fresh lab run (needs root)
#   scripts/lab/lab-test.sh --fixtures [DIR]          only check committed
#                                                     captures (default fixtures/lab)
#
# Environment: S2SCOPE=/path/to/s2scope (default: .build/release/s2scope, then
#              .build/debug/s2scope);  CHECK_ARGS="--strict-actor ..." passed
#              to check-truth.py;  S2SLAB_KEEP_OUT=1 keeps the temp directory.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
cd "$REPO_DIR"
export PYTHONDONTWRITEBYTECODE=1

OUT=""
TMP=""
cleanup() { if [ -n "$TMP" ] && [ "${S2SLAB_KEEP_OUT:-0}" != 1 ]; then rm -rf "$TMP"; fi; }
trap cleanup EXIT

if [ "${1:-}" = "--fixtures" ]; then
  OUT="${2:-$REPO_DIR/fixtures/lab}"
else
  [ "$(id -u)" = 0 ] || { echo "lab-test: the lab needs root (or use --fixtures)" >&2; exit 2; }
  TMP="$(mktemp -d /tmp/s2slab-test.XXXXXX)"
  OUT="$TMP/out"
  mkdir -p "$OUT"
  echo "lab-test: running the lab into $OUT"
  if ! "$LAB_DIR/run-lab.sh" "$OUT" "$@"; then
    echo "lab-test: FAIL: the lab run itself failed (see above)" >&2
    exit 1
  fi
fi

BIN="${S2SCOPE:-}"
if [ -z "$BIN" ]; then
  for b in .build/release/s2scope .build/debug/s2scope; do
    if [ -x "$b" ]; then BIN="$b"; break; fi
  done
fi
if [ -z "$BIN" ]; then
  echo "lab-test: no s2scope binary (.build/release or .build/debug); lab run verified, analysis skipped"
  exit 0
fi
echo "lab-test: analysing with $BIN"

pass=0; fail=0; failed=()
shopt -s nullglob
for cap in "$OUT"/*.pcap "$OUT"/*.pcapng; do
  base="$(basename "$cap")"
  stem="${base%.pcapng}"; stem="${stem%.pcap}"
  truth="$OUT/$stem.truth.json"
  if [ ! -f "$truth" ]; then
    echo "lab-test: $base has no truth file $stem.truth.json" >&2
    fail=$((fail + 1)); failed+=("$base"); continue
  fi
  report="$(mktemp /tmp/s2scope-report.XXXXXX.json)"
  rc=0
  timeout 120 "$BIN" analyze --format json "$cap" > "$report" 2> "$report.err" || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then   # 1 = violations found, still a report
    echo "lab-test: $base: s2scope exited $rc"; sed 's/^/    /' "$report.err" | head -20
    fail=$((fail + 1)); failed+=("$base"); rm -f "$report" "$report.err"; continue
  fi
  # shellcheck disable=SC2086
  if python3 "$LAB_DIR/check-truth.py" ${CHECK_ARGS:-} "$cap" "$truth" "$report"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); failed+=("$base")
  fi
  rm -f "$report" "$report.err"
done

echo "lab-test: $pass passed, $fail failed"
if [ $fail -gt 0 ]; then
  echo "lab-test: failed: ${failed[*]}"
  exit 1
fi
