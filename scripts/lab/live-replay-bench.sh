#!/usr/bin/env bash
# Replay a capture at high speed past `s2scope live` and report what it kept up with.
#
#   sudo scripts/lab/live-replay-bench.sh FILE [RATE]
#
# FILE   an Ethernet pcap (e.g. built with scripts/lab/make-bench-pcap.py)
# RATE   Mbit/s for tcpreplay --mbps (default 1000), or "top" for --topspeed
#
# In a namespace of its own holding only a veth pair, s2scope live captures on
# one end while tcpreplay sends FILE on the other.  Once s2scope has stopped
# making progress it gets SIGINT.  Prints: packets sent (tcpreplay), packets
# s2scope analysed, kernel_received / kernel_dropped / interface_dropped (its
# final stats line), and its peak RSS (VmHWM, sampled from /proc).
#
# Environment: S2SCOPE=/path/to/s2scope (default as live-test.sh)
#              LOOPS=N   tcpreplay --loop N (default 1)
#              BUFFER=BYTES  s2scope --buffer-size (default: s2scope's, 16 MiB)
#              LIVE_ARGS="--snaplen 65535 --no-immediate"  more s2scope live arguments
#              S2SLAB_KEEP=1 keep the work directory
# Exit status 0 when the run completed (drops are reported, not judged).
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
LAB_LOG_TAG=bench
# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"

FILE="${1:-}"
RATE="${2:-1000}"
LOOPS="${LOOPS:-1}"
[ -n "$FILE" ] && [ -f "$FILE" ] || { echo "usage: $0 FILE [RATE Mbit/s | top]" >&2; exit 2; }
FILE="$(cd "$(dirname "$FILE")" && pwd)/$(basename "$FILE")"
case $RATE in
  top) SPEED=(--topspeed) ;;
  ''|*[!0-9.]*) echo "RATE must be Mbit/s or 'top'" >&2; exit 2 ;;
  *) SPEED=(--mbps "$RATE") ;;
esac
NS="s2sbench-$$"   # the lab's cleanup removes $NS; setup_netns is not used here

lab_require_root
lab_install_traps
lab_cleanup_extra() { teardown_replay_ns "$NS"; }
{ command -v tcpreplay > /dev/null && command -v tcpdump > /dev/null; } || {
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq && timeout 600 apt-get install -y -qq tcpreplay tcpdump > /dev/null
} || die "could not install tcpreplay and tcpdump"
find_s2scope
lab_init_work
log "s2scope $S2SCOPE_BIN ${LIVE_ARGS:-}; $FILE ($(stat -c %s "$FILE") bytes) x$LOOPS at ${RATE} Mbit/s; namespace $NS"

setup_replay_ns "$NS"
EV="$WORK/events.jsonl"
extra=(--stats-interval 1)
[ -n "${BUFFER:-}" ] && extra+=(--buffer-size "$BUFFER")
# shellcheck disable=SC2206
[ -n "${LIVE_ARGS:-}" ] && extra+=(${LIVE_ARGS})
start_live "$NS" "$REPLAY_RX" "$EV" bench "${extra[@]}"

timeout 900 ip netns exec "$NS" tcpreplay -i "$REPLAY_TX" "${SPEED[@]}" --preload-pcap --loop "$LOOPS" "$FILE" \
  > "$WORK/tcpreplay.log" 2>&1 &
TR=$!
track $TR tcpreplay
while kill -0 $TR 2>/dev/null; do sample_hwm "$LIVE_PID"; sleep 0.2; done
TR_RC=0; wait $TR || TR_RC=$?
untrack $TR
[ $TR_RC = 0 ] || { cat "$WORK/tcpreplay.log" >&2; die "tcpreplay exited $TR_RC"; }

sent=$(sed -n 's/^Actual: \([0-9]*\) packets.*/\1/p' "$WORK/tcpreplay.log" | head -1)
sent=${sent:-0}
# The packets the sensor's kernel filter lets through (the rest is not s2s traffic and never
# reaches the capture, by design): counted in FILE with the very filter s2scope compiles.
# shellcheck disable=SC2086
filter=$("$S2SCOPE_BIN" live --print-filter ${LIVE_ARGS:-})
admitted=$(tcpdump -r "$FILE" -nn "$filter" 2>/dev/null | wc -l)
(( LOOPS > 1 )) && admitted=$((admitted * LOOPS))
(( admitted <= sent )) || admitted=$sent
stat_field() {   # name: the field from s2scope's latest stats line (0 if none yet)
  local v
  v=$( (grep '"event":"stats"' "$EV" || true) | tail -1 | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p")
  echo "${v:-0}"
}
# Let s2scope drain the ring: wait until every sent packet is analysed or
# counted as dropped, or its count has not moved for 20 s (at most 600 s).
last=-1; same=0
for ((i = 0; i < 600 && same < 20; i++)); do
  sample_hwm "$LIVE_PID"
  cur=$(stat_field packets)
  (( cur + $(stat_field kernel_dropped) + $(stat_field interface_dropped) >= admitted )) && break
  if [ "$cur" = "$last" ]; then same=$((same + 1)); else same=0; last=$cur; fi
  sleep 1
done
t_stop=$(date +%s.%N)
stop_live "$LIVE_PID" 120
t_done=$(date +%s.%N)

$PY - "$EV" "$WORK/tcpreplay.log" "$sent" "$LIVE_HWM_KB" "$LIVE_RC" "$admitted" "${BUFFER:-}" \
    "$(awk -v a="$t_stop" -v b="$t_done" 'BEGIN{printf "%.1f", b-a}')" <<'EOF'
import json, sys
ev, trlog, sent, hwm, rc, admitted, buffer, stop_s = (sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5],
                                                    int(sys.argv[6]), sys.argv[7], sys.argv[8])
stats = [json.loads(l) for l in open(ev) if l.startswith('{"event":"stats"')]
kinds = {}
for l in open(ev):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    kinds[e.get("event")] = kinds.get(e.get("event"), 0) + 1
s = stats[-1] if stats else {}
for line in open(trlog):
    if line.strip().startswith(("Actual:", "Rated:", "Failed packets:")):
        print("tcpreplay:          " + line.strip())
print("packets sent:       %d" % sent)
print("packets admitted:   %d  (by s2scope's capture filter; %d others are not s2s traffic)" % (admitted, sent - admitted))
print("packets analysed:   %s  (s2scope 'packets'; %s)" % (
    s.get("packets"), "all admitted" if s.get("packets") == admitted else "MISSING %s" % (admitted - (s.get("packets") or 0))))
print("buffer size:        %s" % (buffer or "s2scope's default"))
print("kernel_received:    %s" % s.get("kernel_received"))
print("kernel_dropped:     %s" % s.get("kernel_dropped"))
print("interface_dropped:  %s" % s.get("interface_dropped"))
print("peak RSS (VmHWM):   %.1f MiB  (final rss_bytes %.1f MiB)" % (hwm / 1024, (s.get("rss_bytes") or 0) / 2**20))
print("s2scope:            exit %s, %s s from SIGINT to exit; events %s" % (rc, stop_s, dict(sorted(kinds.items()))))
print("dialbacks %s, violations %s, connections closed %s" % (s.get("dialbacks"), s.get("violations"), s.get("connections_closed")))
EOF
