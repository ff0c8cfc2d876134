#!/usr/bin/env bash
# Soak test of `s2scope live`: a generated s2s capture replayed in a loop at 200 Mbit/s on a veth pair
# for 5 minutes (root, Debian 12; ~6 minutes with the capture generation).
#
#   sudo scripts/lab/live-soak.sh [FILE]
#
# FILE   an Ethernet pcap to replay (default: a 50 MiB capture from Benchmarks' s2scope-gen, seed 7,
#        generated into the work directory, or once into BENCH_DATA)
#
# In a namespace of its own holding only a veth pair, the release build of s2scope captures on one
# end (--metrics on, scraped every sample) while tcpreplay sends FILE in a loop on the other. The
# resident set size (VmRSS) is sampled every SOAK_SAMPLE seconds with s2scope's own stats line.
# Passes when s2scope is alive at the end, stops cleanly on SIGINT (exit 0 or 1, no trap), and every
# RSS sample after the first minute is within SOAK_TOLERANCE % of the sample taken at one minute.
# Prints every sample (seconds, RSS, packets, kernel drops, flows) and the verdict.
#
# Environment: S2SCOPE=/path/to/s2scope (default: .build/release/s2scope, built when needed)
#              SOAK_SECONDS=300  SOAK_MBPS=200  SOAK_SAMPLE=5  SOAK_TOLERANCE=25
#              SOAK_SIZE=50M  SOAK_SEED=7   the generated capture
#              SOAK_ARGS="--disable STANZA-IQ-2"  more s2scope live arguments (to find what grows)
#              S2SLAB_KEEP=1 keep the work directory (events, samples)
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
LAB_LOG_TAG=live-soak
# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"
SECONDS_TOTAL="${SOAK_SECONDS:-300}"
MBPS="${SOAK_MBPS:-200}"
SAMPLE="${SOAK_SAMPLE:-5}"
TOLERANCE="${SOAK_TOLERANCE:-25}"
RNS="s2ssoak-$$"
NS="$RNS"
lab_cleanup_extra() { teardown_replay_ns "$RNS"; }

lab_require_root
lab_install_traps
ensure_tcpreplay
find_release_s2scope
lab_init_work
FILE="${1:-}"
if [ -z "$FILE" ]; then FILE=$(bench_capture "${SOAK_SIZE:-50M}" "${SOAK_SEED:-7}"); fi
[ -f "$FILE" ] || die "no capture $FILE"
log "s2scope $S2SCOPE_BIN ${SOAK_ARGS:-}; $FILE ($(stat -c %s "$FILE") bytes) in a loop at $MBPS Mbit/s for ${SECONDS_TOTAL}s; namespace $RNS"

setup_replay_ns "$RNS"
EV="$WORK/events.jsonl"
# shellcheck disable=SC2086
start_live "$RNS" "$REPLAY_RX" "$EV" soak --stats-interval "$SAMPLE" --metrics 127.0.0.1:9269 ${SOAK_ARGS:-}
ip netns exec "$RNS" tcpreplay -q -T nano -i "$REPLAY_TX" --mbps "$MBPS" --preload-pcap --loop 0 "$FILE" \
  > "$WORK/tcpreplay.log" 2>&1 &
TR=$!
track $TR tcpreplay
t0=$(date +%s.%N)
SAMPLES="$WORK/samples.tsv"
: > "$SAMPLES"
while :; do
  now=$(date +%s.%N)
  el=$(awk -v a="$t0" -v b="$now" 'BEGIN{printf "%.0f", b-a}')
  (( el >= SECONDS_TOTAL )) && break
  kill -0 "$LIVE_PID" 2>/dev/null || break
  kill -0 "$TR" 2>/dev/null || { log "tcpreplay stopped early: $(tail -3 "$WORK/tcpreplay.log" | tr '\n' ' ')"; break; }
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$LIVE_PID/status" 2>/dev/null || echo 0)
  # a scrape per sample: the metrics server runs for the whole soak
  scraped=$(ip netns exec "$RNS" $PY "$LAB_DIR/sensor-check.py" metric http://127.0.0.1:9269/metrics s2scope_packets_total 2>/dev/null || echo -)
  stats=$( (grep '"event":"stats"' "$EV" || true) | tail -1)
  printf '%s\t%s\t%s\t%s\n' "$el" "$rss" "$scraped" "$stats" >> "$SAMPLES"
  sleep "$SAMPLE"
done
alive=0; kill -0 "$LIVE_PID" 2>/dev/null && alive=1
stop_pid "$TR" 5
sleep 1
stop_live "$LIVE_PID" 120
log "s2scope exited $LIVE_RC (alive at the end: $alive)"
[ -s "$WORK/soak.stderr" ] && sed 's/^/    s2scope: /' "$WORK/soak.stderr" | head -5 >&2

rc=0
$PY - "$SAMPLES" "$EV" "$TOLERANCE" "$alive" "$LIVE_RC" "$WORK/tcpreplay.log" "$MBPS" <<'EOF' || rc=$?
import json, sys
samples, ev, tol, alive, live_rc, trlog, mbps = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5]), sys.argv[6], sys.argv[7]
rows = []
for line in open(samples):
    el, rss, scraped, stats = line.rstrip("\n").split("\t", 3)
    s = json.loads(stats) if stats.startswith("{") else {}
    rows.append((int(el), int(rss) * 1024, scraped, s))
print("   sec   RSS MiB      packets  scraped pkts   kernel drops   flows  conns closed  violations")
for el, rss, scraped, s in rows:
    print("%6d  %8.1f  %11s  %12s  %13s  %6s  %12s  %10s" % (el, rss / 2**20, s.get("packets", "-"), scraped,
          (s.get("kernel_dropped", 0) or 0) + (s.get("interface_dropped", 0) or 0) if s else "-", s.get("flows", "-"),
          s.get("connections_closed", "-"), s.get("violations", "-")))
errors = []
final = None
for line in open(ev):
    if line.startswith('{"event":"stats"'):
        final = json.loads(line)
after = [r for r in rows if r[0] >= 60]
if not after:
    errors.append("no sample after the first minute")
else:
    base = after[0][1]
    lo, hi = min(r[1] for r in after), max(r[1] for r in after)
    print("RSS after the first minute: %.1f MiB at %d s; then min %.1f, max %.1f MiB (%+.1f %% / %+.1f %%; limit %.0f %%)"
          % (base / 2**20, after[0][0], lo / 2**20, hi / 2**20, 100 * (lo - base) / base, 100 * (hi - base) / base, tol))
    if hi > base * (1 + tol / 100) or lo < base * (1 - tol / 100):
        errors.append("RSS left the %.0f %% band around its value at one minute" % tol)
    first, last = after[0], after[-1]
    dt = last[0] - first[0]
    if dt > 0:
        print("RSS slope after the first minute: %+.1f KiB/min" % ((last[1] - first[1]) / 1024 / (dt / 60)))
for line in open(trlog):
    if line.strip().startswith(("Actual:", "Rated:")):
        print("tcpreplay: " + line.strip())
if final:
    d = (final.get("kernel_dropped") or 0) + (final.get("interface_dropped") or 0)
    print("final: %s packets analysed (%.2f GB), %s kernel drops (%.4f %%), %s connections closed, %s dialbacks, %s violations"
          % (final.get("packets"), final.get("bytes", 0) / 1e9, d, 100.0 * d / max(1, final.get("kernel_received") or 1),
             final.get("connections_closed"), final.get("dialbacks"), final.get("violations")))
else:
    errors.append("no final stats line: s2scope did not stop cleanly")
if not alive:
    errors.append("s2scope was not running at the end of the soak")
if live_rc not in (0, 1):
    errors.append("s2scope exited %d on SIGINT (a trap or an error)" % live_rc)
for e in errors:
    print("live-soak: FAIL: " + e)
sys.exit(1 if errors else 0)
EOF
teardown_replay_ns "$RNS"
if [ $rc = 0 ]; then log "live-soak: PASS"; else log "live-soak: FAILED"; fi
exit $rc
