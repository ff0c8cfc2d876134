#!/usr/bin/env bash
# Real-server TLS lab test (root, Debian 12; about two minutes).
#
#   sudo scripts/lab/tls-lab-test.sh [CASE...]
#
# Runs scripts/lab/tls-servers.sh into a temporary directory: real Prosody 0.12 and ejabberd
# 23.01 with STARTTLS required, both under the key-log shim (tools/keylog-shim, built with
# `make keylog-shim`), self-signed certificates (dialback inside TLS) and lab-CA certificates
# (SASL EXTERNAL), TLS 1.3 and 1.2. That script already fails unless both servers' key logs
# (created 0600) cover every TLS session of the capture, the servers authenticated as the case
# expects (their logs and the decrypted wire), and two `s2scope live` runs — one following the
# key log as the servers write it, one a copy 1.5 s late — decrypted every byte and reported
# the dialbacks and SASL authentications.
#
# Then, for every fresh capture: `s2scope analyze` with Prosody's key log, with ejabberd's,
# and the DSB pcapng (editcap --inject-secrets) without any --keylog must each decrypt every
# byte (as many per connection as tshark) and report what the truth holds, nothing >= medium
# (scripts/lab/tls-check.py).
#
# Environment: S2SCOPE=/path/to/s2scope (default: the newest built binary; built if none)
#              S2SLAB_KEEP_OUT=1 keeps the output directory
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
export PYTHONDONTWRITEBYTECODE=1
[ "$(id -u)" = 0 ] || { echo "tls-lab-test: needs root (network namespaces, packet capture)" >&2; exit 2; }

LAB_LOG_TAG=tls-lab-test
# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"   # for find_s2scope (the same binary tls-servers.sh picks)

OUT="$(mktemp -d /tmp/s2s-tls-lab.XXXXXX)"
tls_cleanup() { if [ "${S2SLAB_KEEP_OUT:-0}" != 1 ]; then rm -rf "$OUT"; else echo "tls-lab-test: output kept in $OUT"; fi; }
trap tls_cleanup EXIT

echo "tls-lab-test: real servers under the key-log shim, into $OUT"
if ! "$LAB_DIR/tls-servers.sh" "$OUT" "$@"; then
  echo "tls-lab-test: FAIL: the lab run or its live checks failed (see above)" >&2
  exit 1
fi

find_s2scope

pass=0; fail=0; failed=()
for truth in "$OUT"/servers-*.truth.json; do
  stem="${truth%.truth.json}"
  for run in prosody ejabberd dsb; do
    report="$OUT/report-$run.json"
    rc=0
    case $run in
      dsb) "$S2SCOPE_BIN" analyze --quiet --format json "$stem-dsb.pcapng" > "$report" 2> "$report.err" || rc=$? ;;
      *)   "$S2SCOPE_BIN" analyze --quiet --format json --keylog "$stem.$run.keylog" "$stem.pcap" > "$report" 2> "$report.err" || rc=$? ;;
    esac
    if [ $rc -gt 1 ]; then
      echo "tls-lab-test: $(basename "$stem") ($run): s2scope exited $rc: $(head -c 300 "$report.err")"
      fail=$((fail + 1)); failed+=("$(basename "$stem")/$run"); continue
    fi
    if python3 "$LAB_DIR/tls-check.py" analyze "$truth" "$report"; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1)); failed+=("$(basename "$stem")/$run")
    fi
  done
done
echo "tls-lab-test: $pass passed, $fail failed"
if [ $fail -gt 0 ]; then
  echo "tls-lab-test: FAIL: ${failed[*]}"
  exit 1
fi
echo "tls-lab-test: PASS"
