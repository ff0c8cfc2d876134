#!/usr/bin/env bash
# Live test of issue #16 "Nothing on the wire can stop a sensor" (root, Debian 12; about a minute).
#
#   sudo scripts/lab/live-hostile-frames.sh
#
# In a network namespace of its own holding only a veth pair, two `s2scope live` sensors capture
# on one end — one with the default kernel filter (TCP on the s2s port, also behind VLAN tags, plus
# IP fragments), one with no filter at all, so that every frame reaches the decoder — while
# tcpreplay sends on the other end, in this order:
#   1. fixtures/decode/ipv6-atomic-fragment-dstopts-overrun.pcap (the frame that killed s2scope),
#   2. frames of S2Synth's frame grammar (`s2scope-gen --hostile-frames`: lengths that lie both
#      ways, frames cut at every layer, VLAN/QinQ stacks, IPv4 options and fragments, IPv6
#      extension chains with atomic and real fragments and AH, TCP option soup),
#   3. real s2s traffic: fixtures/lab/prosody-prosody.pcap (two Prosody servers, two dialbacks),
#   4. the regression frame and more grammar frames again.
# Then both sensors must still be running; after SIGINT they must exit cleanly (status per
# --fail-on), with a final stats line, both valid dialbacks of the real traffic, and
# malformed-packet anomalies for the hostile frames.
#
# Exit status 0 = pass, 1 = fail (reasons listed), 2 = not run (no root or no network namespaces).
# Installs tcpreplay if missing; builds s2scope-gen (Benchmarks/, debug) if needed. Everything runs
# in a namespace it creates and removes; every process it starts is stopped by PID.
#
# Environment: S2SCOPE=/path/to/s2scope (default: the newest of .build/{debug,release}/s2scope)
#              S2SHOSTILE_FRAMES=4000  grammar frames per replay block
#              S2SHOSTILE_PPS=2000     replay rate of the hostile blocks (packets/s)
#              S2SLAB_KEEP=1           keep the work directory (events, logs, the pcaps)
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
LAB_LOG_TAG=live-hostile
# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"
MAX_SECONDS="${S2SHOSTILE_MAX_SECONDS:-600}"
FRAMES="${S2SHOSTILE_FRAMES:-4000}"
PPS="${S2SHOSTILE_PPS:-2000}"
RNS="s2shostile-$$"
REGRESSION="$REPO_DIR/fixtures/decode/ipv6-atomic-fragment-dstopts-overrun.pcap"
REAL="$REPO_DIR/fixtures/lab/prosody-prosody.pcap"

if [ "$(id -u)" != 0 ] || ! unshare --net true 2>/dev/null; then
  echo "live-hostile-frames: not run (needs root and network namespaces)" >&2
  exit 2
fi

FAILS=()
fail() { log "FAIL: $*"; FAILS+=("$*"); }
lab_cleanup_extra() { teardown_replay_ns "$RNS"; }
lab_install_traps

if ! command -v tcpreplay >/dev/null || ! command -v ip >/dev/null; then
  log "installing tcpreplay iproute2"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq || die "apt-get update failed"
  timeout 900 apt-get install -y -qq tcpreplay iproute2 || die "apt-get install failed"
fi
find_s2scope
lab_init_work

# The grammar frames: s2scope-gen (Benchmarks/ package, depends only on S2Synth).
GEN="$REPO_DIR/Benchmarks/.build/debug/s2scope-gen"
if [ ! -x "$GEN" ] || [ -n "$(find "$REPO_DIR/Sources/S2Synth" "$REPO_DIR/Sources/S2Model" "$REPO_DIR/Benchmarks/Sources" -newer "$GEN" -name '*.swift' | head -1)" ]; then
  log "building s2scope-gen (Benchmarks/, debug)"
  (cd "$REPO_DIR/Benchmarks" && timeout 1800 swift build --product s2scope-gen) > "$WORK/gen-build.log" 2>&1 \
    || die "building s2scope-gen failed: $(tail -5 "$WORK/gen-build.log")"
fi
# --replayable: every frame whole and at least an Ethernet header long (on a link, a frame cut
# short is simply a frame shorter than its headers say; tcpreplay cannot send an empty one).
"$GEN" --quiet --hostile-frames "$FRAMES" --link-type 1 --seed 16 --replayable --out "$WORK/hostile-1.pcap"
"$GEN" --quiet --hostile-frames "$FRAMES" --link-type 1 --seed 17 --replayable --out "$WORK/hostile-2.pcap"
log "s2scope $S2SCOPE_BIN; namespace $RNS; $FRAMES + $FRAMES grammar frames; work $WORK"

setup_replay_ns "$RNS"
# Frames up to 64 KiB (lab captures come from loopback); grammar frames are smaller.
EV_DEFAULT="$WORK/live-default.jsonl"
EV_ALL="$WORK/live-unfiltered.jsonl"
start_live "$RNS" "$REPLAY_RX" "$EV_DEFAULT" live-default --fail-on high
PID_DEFAULT=$LIVE_PID
start_live "$RNS" "$REPLAY_RX" "$EV_ALL" live-unfiltered --fail-on high --filter ""
PID_ALL=$LIVE_PID

replay() {   # label pps file...
  local label=$1 pps=$2 rc=0 pid
  shift 2
  timeout 180 ip netns exec "$RNS" tcpreplay -i "$REPLAY_TX" --pps "$pps" "$@" > "$WORK/tcpreplay-$label.log" 2>&1 &
  pid=$!
  track $pid "tcpreplay-$label"
  wait $pid || rc=$?
  untrack $pid
  [ $rc = 0 ] || fail "tcpreplay ($label) exited $rc: $(tail -3 "$WORK/tcpreplay-$label.log" | tr '\n' ' ')"
  log "replayed $label: $(grep -m1 -E '^Actual' "$WORK/tcpreplay-$label.log" | sed 's/^ *//')"
}

alive() {   # when
  kill -0 "$PID_DEFAULT" 2>/dev/null || fail "s2scope live (default filter) died $1: $(tail -c 400 "$WORK/live-default.stderr")"
  kill -0 "$PID_ALL" 2>/dev/null || fail "s2scope live (no filter) died $1: $(tail -c 400 "$WORK/live-unfiltered.stderr")"
}

replay regression 50 "$REGRESSION"
sleep 0.5; alive "after the issue #16 frame"
replay hostile-1 "$PPS" "$WORK/hostile-1.pcap"
sleep 0.5; alive "after $FRAMES grammar frames"
# Real traffic at a moderate rate (as live-test.sh replays it).
replay real 200 "$REAL"
replay regression-again 50 "$REGRESSION"
replay hostile-2 "$PPS" "$WORK/hostile-2.pcap"
sleep 1.5; alive "after the second block of grammar frames"

check() {   # events-file stderr-file exit-status label
  local ev=$1 err=$2 rc=$3 label=$4 r=0
  if [ "$rc" -gt 1 ]; then fail "$label: s2scope live exited $rc: $(tail -c 400 "$err")"; fi
  $PY - "$ev" "$rc" "$label" <<'PY' || r=$?
import json, sys
path, rc, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
events, errors = [], []
for n, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
    if not line.strip():
        continue
    try:
        events.append(json.loads(line))
    except ValueError:
        errors.append("line %d is not JSON: %s" % (n, line[:120]))
kinds = {}
for e in events:
    kinds[e.get("event")] = kinds.get(e.get("event"), 0) + 1
stats = [e for e in events if e.get("event") == "stats"]
dialbacks = {(e.get("originating"), e.get("receiving"), e.get("outcome")) for e in events if e.get("event") == "dialback"}
malformed = [e for e in events if e.get("event") == "anomaly" and e.get("kind") == "malformed-packet"]
if not stats:
    errors.append("no final stats line: s2scope did not stop cleanly")
for want in (("a.lab", "b.lab", "valid"), ("b.lab", "a.lab", "valid")):
    if want not in dialbacks:
        errors.append("the real traffic's dialback %s -> %s %s is missing (dialbacks: %s)" % (want + (sorted(dialbacks),)))
regression = [e for e in malformed if "extension headers end at payload byte 2056" in e.get("message", "")]
if len(regression) < 2:
    errors.append("the issue #16 frame was reported %d times, expected 2 (once per replay)" % len(regression))
if len(malformed) < 10:
    errors.append("only %d malformed-packet anomalies for thousands of hostile frames" % len(malformed))
last = stats[-1] if stats else {}
print("[%s] %d events %s; %d malformed-packet anomalies (%d for the issue #16 frame); dialbacks %s; final stats: %s" % (
    label, len(events), json.dumps(kinds, sort_keys=True), len(malformed), len(regression), sorted(dialbacks),
    json.dumps({k: last[k] for k in ("packets", "kernel_dropped", "flows") if k in last})), file=sys.stderr)
for e in errors:
    print("  " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
  [ $r = 0 ] || fail "$label: events (see above)"
}

stop_live "$PID_DEFAULT" 30
RC_DEFAULT=$LIVE_RC
stop_live "$PID_ALL" 30
RC_ALL=$LIVE_RC
log "s2scope live exited $RC_DEFAULT (default filter) and $RC_ALL (no filter)"
check "$EV_DEFAULT" "$WORK/live-default.stderr" "$RC_DEFAULT" "default filter"
check "$EV_ALL" "$WORK/live-unfiltered.stderr" "$RC_ALL" "no filter"
teardown_replay_ns "$RNS"

if [ ${#FAILS[@]} -gt 0 ]; then
  log "live-hostile-frames: FAILED (${#FAILS[@]}):"
  for f in "${FAILS[@]}"; do log "  - $f"; done
  exit 1
fi
log "live-hostile-frames: PASS (the issue #16 frame twice, $((2 * FRAMES)) grammar frames, real traffic still reported)"
