#!/usr/bin/env bash
# What a long-lived `s2scope live` meets, tested on a veth pair in a network namespace of its own
# (root, Debian 12; about a minute).
#
#   sudo scripts/lab/live-robust.sh
#
# (a) Interface down/up and re-created, while traffic is replayed: a first capture is replayed;
#     during a background replay the capturing end goes down for 2 s and comes back; a second
#     capture is replayed; then the veth pair is deleted and created again (new interface index)
#     and a third capture is replayed. s2scope must stay up, report each blind period as a
#     'capture-interrupted' anomaly (stopped / resumed, reopened for the re-created one), keep its
#     analysis state (the final counters hold all three replays) and find what each replay holds.
# (b) Disk full: the output file sits on a 256 KiB tmpfs, mounted in a private mount namespace
#     (gone with it) and filled to two free pages. Events fill it; s2scope must say so once on
#     standard error, leave only whole lines in the file, keep analysing (its metrics grow while
#     nothing is written), and after `rm filler; mv events.jsonl events.jsonl.1; kill -HUP` write
#     to a new file that starts with an 'output-failed' anomaly counting the lost events.
# (c) Log rotation: two `mv` + `kill -HUP` while captures are replayed (one in the middle of a
#     replay); every file is valid JSON Lines and together they hold exactly the connections,
#     dialbacks and violations that `s2scope analyze` finds in the replayed captures.
#
# Exit status 0 = pass; 1 = fail (reasons listed at the end). Installs tcpreplay if missing.
# Environment: S2SCOPE=/path/to/s2scope (default as live-test.sh), S2SLAB_KEEP=1 keeps the work
#              directory.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
LAB_LOG_TAG=live-robust
# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"
RNS="s2srobust-$$"
NS="$RNS"   # the lab's cleanup stops what is left in it and deletes it
CHECK="$PY $LAB_DIR/sensor-check.py"
FIX="$REPO_DIR/fixtures/lab"
FAILS=()
fail() { log "FAIL: $*"; FAILS+=("$*"); }
lab_cleanup_extra() { teardown_replay_ns "$RNS"; }

lab_require_root
lab_install_traps
command -v tcpreplay > /dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq && timeout 600 apt-get install -y -qq tcpreplay > /dev/null
} || die "could not install tcpreplay"
find_s2scope
lab_init_work
log "s2scope $S2SCOPE_BIN; namespace $RNS; work $WORK"

replay() {   # capture [pps]: replay one fixture at PPS (default 200), wait for it
  local rc=0
  timeout 120 ip netns exec "$RNS" tcpreplay -q -i "$REPLAY_TX" --pps "${2:-200}" "$FIX/$1.pcap" \
    >> "$WORK/tcpreplay.log" 2>&1 || rc=$?
  [ $rc = 0 ] || fail "tcpreplay $1 exited $rc"
}

metric() {   # port series: the value from s2scope's /metrics inside the namespace ('absent'/'' if none)
  ip netns exec "$RNS" $CHECK metric "http://127.0.0.1:$1/metrics" "$2" 2>/dev/null || true
}

wait_metric() {   # port series value seconds: until the series has the value
  local i
  for ((i = 0; i < $4 * 10; i++)); do
    [ "$(metric "$1" "$2")" = "$3" ] && return 0
    sleep 0.1
  done
  return 1
}

make_veth() {
  ip -n "$RNS" link add "$REPLAY_TX" type veth peer name "$REPLAY_RX"
  ip -n "$RNS" link set "$REPLAY_TX" mtu 65535 up
  ip -n "$RNS" link set "$REPLAY_RX" mtu 65535 up
}

# ------------------------------------------------------------- (a) down/up --
part_a() {
  local ev="$WORK/downup.jsonl" up="s2scope_capture_up{interface=\"$REPLAY_RX\"}" bg rc=0
  log "=== (a) interface down/up and re-created while traffic is replayed"
  start_live "$RNS" "$REPLAY_RX" "$ev" downup --stats-interval 0.5 --metrics 127.0.0.1:9269
  wait_metric 9269 "$up" 1 10 || fail "(a) metrics not answering at start"
  replay prosody-prosody
  # traffic while the interface is away: ~12 s of it
  ip netns exec "$RNS" tcpreplay -q -i "$REPLAY_TX" --pps 40 --loop 10 "$FIX/prosody-ejabberd.pcap" \
    >> "$WORK/tcpreplay-bg.log" 2>&1 &
  bg=$!
  track $bg tcpreplay-background
  sleep 1
  ip -n "$RNS" link set "$REPLAY_RX" down
  wait_metric 9269 "$up" 0 5 || fail "(a) s2scope_capture_up did not drop to 0 while the interface was down"
  sleep 2
  ip -n "$RNS" link set "$REPLAY_RX" up
  wait_metric 9269 "$up" 1 5 || fail "(a) s2scope_capture_up did not come back to 1 after the interface came up"
  wait $bg || true
  untrack $bg
  replay bad-spoofed-from
  sleep 1
  ip -n "$RNS" link del "$REPLAY_TX"
  wait_metric 9269 "$up" 0 5 || fail "(a) s2scope_capture_up did not drop to 0 when the interface disappeared"
  sleep 1
  make_veth
  wait_metric 9269 "$up" 1 15 || fail "(a) capture did not resume on the re-created interface within 15 s"
  replay bad-early-stanza
  sleep 1.5
  local n
  n=$(metric 9269 "s2scope_capture_interruptions_total{interface=\"$REPLAY_RX\"}")
  [ "$n" = 2 ] || fail "(a) s2scope_capture_interruptions_total is '$n', expected 2"
  kill -0 "$LIVE_PID" 2>/dev/null || fail "(a) s2scope is not running any more"
  stop_live "$LIVE_PID" 30
  log "s2scope live exited $LIVE_RC; $(wc -l < "$ev") event lines"
  [ -s "$WORK/downup.stderr" ] && sed 's/^/    s2scope: /' "$WORK/downup.stderr" | head -5 >&2
  $CHECK downup "$ev" --rc "$LIVE_RC" || rc=$?
  [ $rc = 0 ] || fail "(a) events of the down/up run (see above)"
}

# ------------------------------------------------------------ (b) disk full --
part_b() {
  local dir="$WORK/full" out="$WORK/full-out" pid="" root rc=0 i p1 p2 v1 v2
  log "=== (b) output on a full file system"
  mkdir -p "$dir" "$out"
  # A private mount namespace holds the tmpfs; the wrapper shell copies the files out when s2scope
  # has exited (the mount goes with the namespace).
  unshare -m --propagation private bash -c '
      dir=$1 out=$2; shift 2
      mount -t tmpfs -o size=256k,mode=755 s2s-robust-full "$dir" || exit 97
      head -c $((256 * 1024 - 8192)) /dev/zero > "$dir/filler" 2>/dev/null
      "$@" &
      echo $! > "$out/pid"
      rc=0; wait $! || rc=$?
      cp "$dir"/events.jsonl* "$out"/ 2>/dev/null
      exit $rc' _ "$dir" "$out" ip netns exec "$RNS" "$S2SCOPE_BIN" live -i "$REPLAY_RX" --user root --format jsonl \
        --output "$dir/events.jsonl" --stats-interval 0.2 --metrics 127.0.0.1:9270 \
        > "$WORK/full.stdout" 2> "$WORK/full.stderr" &
  local wrapper=$!
  track $wrapper "disk-full wrapper"
  for ((i = 0; i < 100; i++)); do [ -s "$out/pid" ] && break; sleep 0.1; done
  pid=$(cat "$out/pid" 2>/dev/null || true)
  [ -n "$pid" ] || die "(b) s2scope did not start: $(cat "$WORK/full.stderr")"
  track "$pid" s2scope-full
  root="/proc/$pid/root$dir"
  for ((i = 0; i < 100; i++)); do [ -e "$root/events.jsonl" ] && break; sleep 0.1; done
  [ -e "$root/events.jsonl" ] || die "(b) s2scope did not open its output: $(cat "$WORK/full.stderr")"
  wait_metric 9270 s2scope_output_up 1 10 || fail "(b) metrics not answering at start"
  replay prosody-prosody
  replay bad-spoofed-from
  for ((i = 0; i < 300; i++)); do grep -q "output stopped" "$WORK/full.stderr" && break; sleep 0.1; done
  grep -q "output stopped" "$WORK/full.stderr" || fail "(b) no 'output stopped' on standard error after 30 s"
  cp "$root/events.jsonl" "$WORK/full-snapshot.jsonl"
  $CHECK valid "$WORK/full-snapshot.jsonl" || fail "(b) the full file is not valid JSON Lines"
  [ "$(metric 9270 s2scope_output_up)" = 0 ] || fail "(b) s2scope_output_up is not 0 after the failure"
  # The analysis goes on: the next replay is counted while nothing is written.
  p1=$(metric 9270 s2scope_packets_total); v1=$(metric 9270 's2scope_violations_total{server="evil.lab",rule="STANZA-ADDR-1",severity="high"}')
  replay bad-no-to
  sleep 1
  p2=$(metric 9270 s2scope_packets_total); v2=$(metric 9270 's2scope_violations_total{server="evil.lab",rule="STANZA-ADDR-1",severity="high"}')
  log "while the output is failed: packets $p1 -> $p2, STANZA-ADDR-1 ${v1:-absent} -> ${v2:-absent}, events lost $(metric 9270 s2scope_output_events_lost_total)"
  if [ -z "$p2" ] || [ "${p2%.*}" -le "${p1%.*}" ]; then fail "(b) packets did not grow while the output was failed ($p1 -> $p2)"; fi
  [ "$v2" = 1 ] || fail "(b) the STANZA-ADDR-1 of the replay during the failure is not counted ($v2)"
  cmp -s "$root/events.jsonl" "$WORK/full-snapshot.jsonl" || fail "(b) the full file changed after the failure"
  # Space freed, file rotated, SIGHUP: writing starts again in a new file.
  rm -f "$root/filler"
  mv "$root/events.jsonl" "$root/events.jsonl.1"
  kill -HUP "$pid"
  for ((i = 0; i < 50; i++)); do [ -s "$root/events.jsonl" ] && break; sleep 0.1; done
  wait_metric 9270 s2scope_output_up 1 5 || fail "(b) s2scope_output_up did not come back to 1 after SIGHUP"
  replay bad-xml-comment
  sleep 1
  kill -0 "$pid" 2>/dev/null || fail "(b) s2scope is not running any more"
  kill -INT "$pid"
  rc=0; wait $wrapper || rc=$?
  untrack $wrapper; untrack "$pid"
  log "s2scope live exited $rc"
  sed 's/^/    s2scope: /' "$WORK/full.stderr" | head -6 >&2
  local crc=0
  $CHECK diskfull "$out/events.jsonl.1" "$out/events.jsonl" --rc $rc --stderr "$WORK/full.stderr" || crc=$?
  [ $crc = 0 ] || fail "(b) disk-full run (see above)"
}

# ------------------------------------------------------------- (c) rotation --
part_c() {
  local dir="$WORK/rot" rc=0 f
  log "=== (c) log rotation with SIGHUP while captures are replayed"
  mkdir -p "$dir"
  start_live "$RNS" "$REPLAY_RX" "$dir/events.jsonl" rotation
  replay prosody-prosody
  sleep 0.5
  mv "$dir/events.jsonl" "$dir/events.jsonl.2"
  kill -HUP "$LIVE_PID"
  # the second rotation in the middle of a replay (50 packets at 20/s)
  ip netns exec "$RNS" tcpreplay -q -i "$REPLAY_TX" --pps 20 "$FIX/bad-spoofed-from.pcap" >> "$WORK/tcpreplay.log" 2>&1 &
  local tr=$!
  track $tr tcpreplay-rotation
  sleep 1.2
  mv "$dir/events.jsonl" "$dir/events.jsonl.1"
  kill -HUP "$LIVE_PID"
  wait $tr || fail "(c) tcpreplay of bad-spoofed-from failed"
  untrack $tr
  replay bad-early-stanza
  sleep 1
  stop_live "$LIVE_PID" 30
  for f in prosody-prosody bad-spoofed-from bad-early-stanza; do
    "$S2SCOPE_BIN" analyze --format json "$FIX/$f.pcap" > "$WORK/analyze-$f.json" 2>/dev/null || [ $? = 1 ] \
      || fail "(c) s2scope analyze $f failed"
  done
  $CHECK rotation "$dir/events.jsonl.2" "$dir/events.jsonl.1" "$dir/events.jsonl" \
    --analyze "$WORK"/analyze-{prosody-prosody,bad-spoofed-from,bad-early-stanza}.json || rc=$?
  [ $rc = 0 ] || fail "(c) rotated files (see above)"
}

setup_replay_ns "$RNS"
part_a
part_b
part_c
teardown_replay_ns "$RNS"

if [ ${#FAILS[@]} -gt 0 ]; then
  log "live-robust: FAILED (${#FAILS[@]}):"
  for f in "${FAILS[@]}"; do log "  - $f"; done
  exit 1
fi
log "live-robust: PASS (interface down/up and re-created, disk full, SIGHUP rotation)"
