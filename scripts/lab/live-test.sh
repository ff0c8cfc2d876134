#!/usr/bin/env bash
# Live integration test of `s2scope live` (root, Debian 12; a few minutes at most).
#
#   sudo scripts/lab/live-test.sh
#
# (a) Two real Prosody servers (a.lab, b.lab) federate inside the lab network
#     namespace while `s2scope live -i lo` runs in the same namespace; then
#     badpeer.py (evil.lab) sends a stanza with a spoofed `from` to a.lab.
#     After SIGINT, s2scope's exit status must follow --fail-on, and its JSON
#     Lines must hold valid dialbacks a.lab->b.lab and b.lab->a.lab, no
#     violation >= medium between the real servers, and STANZA-ADDR-4 on the
#     spoofing peer's connection.
# (b) Replay: in a second namespace holding only a veth pair, `s2scope live`
#     captures on one end while tcpreplay sends fixtures/lab captures on the
#     other at a moderate rate; the live verdicts must equal those of
#     `s2scope analyze --format json` on the same file (same (rule, severity)
#     set, same (originating, receiving, outcome) dialbacks, same packet count).
#
# Exit status 0 = pass; 1 = fail, with the reasons listed at the end (or an
# ERROR line when the set-up itself failed).
# Installs missing Debian packages itself (prosody, dnsmasq, tcpreplay, ...).
# Everything runs in namespaces it creates and removes; every process it starts
# is stopped by PID, also on failure or Ctrl-C.
#
# Environment: S2SCOPE=/path/to/s2scope (default .build/debug/s2scope, then
#              .build/release/s2scope, .build-live/debug/s2scope; built if none)
#              S2SLIVE_REPLAY="prosody-prosody bad-early-stanza midstream-prosody"
#                 fixtures to replay (midstream-prosody: a capture that starts
#                 after federation is up, as every live sensor does)
#              S2SLIVE_THREADS="1 2"  each replay is watched by `live --threads N`
#                 for each N (2: parsing on a worker thread, flushed after each
#                 batch of packets; the verdicts must equal analyze's all the same)
#              S2SLIVE_PPS=200  replay rate (packets/s), or "orig" to keep the
#                 capture's own timing (needed for rules that wait on a timer,
#                 e.g. DB-RCV-5 in wrong-secret: a fixed rate squeezes the wait)
#              S2SLIVE_MAX_SECONDS=420  give up (cleanly) after this long
#              S2SLAB_KEEP=1  keep the work directory (events, logs)
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
LAB_LOG_TAG=live-test
# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"
MAX_SECONDS="${S2SLIVE_MAX_SECONDS:-420}"
REPLAY="${S2SLIVE_REPLAY:-prosody-prosody bad-early-stanza midstream-prosody}"
PPS="${S2SLIVE_PPS:-200}"
THREADS="${S2SLIVE_THREADS:-1 2}"
FAIL_ON=high
if [ "$PPS" = orig ]; then RATE_ARGS=(--multiplier 1); else RATE_ARGS=(--pps "$PPS"); fi
RNS="s2sreplay-$$"

FAILS=()
fail() { log "FAIL: $*"; FAILS+=("$*"); }
check_time() {
  (( $(date +%s) - START_TS <= MAX_SECONDS )) || die "time limit of ${MAX_SECONDS}s exceeded before $1"
}
lab_cleanup_extra() { teardown_replay_ns "$RNS"; }

lab_require_root
lab_install_traps
ensure_packages --prosody-only tcpreplay
find_s2scope
lab_init_work
log "s2scope $S2SCOPE_BIN; namespaces $NS and $RNS; work $WORK"

drive() {   # scenario: run drive.py inside the lab namespace (bounded), 0 = went as planned
  local sc=$1 pid rc=0
  timeout 90 ip netns exec "$NS" $PY "$LAB_DIR/drive.py" "$sc" "$SCEN_DIR/obs-$sc.json" \
    > "$SCEN_DIR/drive-$sc.log" 2>&1 &
  pid=$!
  track $pid "drive-$sc"
  wait $pid || rc=$?
  untrack $pid
  if [ $rc != 0 ]; then
    grep -E "FAILED|Error|Traceback" "$SCEN_DIR/drive-$sc.log" | head -5 >&2 || true
  fi
  return $rc
}

# ------------------------------------------------ (a) real servers, live --
part_a() {
  local ev="$WORK/live-lab.jsonl" rc=0
  log "=== (a) Prosody a.lab <-> b.lab and badpeer, s2scope live -i lo in $NS"
  setup_netns
  start_dns
  SCEN_DIR="$WORK/live"; mkdir -p "$SCEN_DIR"; chmod 755 "$SCEN_DIR"
  PID_a=""; PID_b=""
  start_prosody a a.lab $IP_A "$SECRET_A" plain alice pw-alice
  start_prosody b b.lab $IP_B "$SECRET_B" plain bob pw-bob
  start_live "$NS" lo "$ev" live-lab --fail-on $FAIL_ON
  check_time "the federation traffic"
  drive prosody-prosody || fail "(a) a.lab <-> b.lab traffic did not go as planned (see above)"
  check_time "the misbehaving peer"
  drive bad-spoofed-from || fail "(a) badpeer bad-spoofed-from did not go as planned (see above)"
  sleep 0.5
  # stop the servers while s2scope watches: the shutdown is part of the clean traffic
  stop_pid "$PID_b" 8; stop_pid "$PID_a" 8
  sleep 1.5
  stop_live "$LIVE_PID" 30
  log "s2scope live exited $LIVE_RC; $(wc -l < "$ev") event lines"
  if [ -s "$WORK/live-lab.stderr" ]; then sed 's/^/    s2scope: /' "$WORK/live-lab.stderr" | head -5 >&2; fi
  $PY "$LAB_DIR/live-check.py" federation "$ev" --rc "$LIVE_RC" --fail-on $FAIL_ON \
      --bad-ip "$IP_EVIL" --forbid-at-or-above medium \
      --expect-dialback a.lab,b.lab,valid --expect-dialback b.lab,a.lab,valid \
      --expect-dialback evil.lab,a.lab,valid --expect-rule STANZA-ADDR-4 || rc=$?
  [ $rc = 0 ] || fail "(a) live events of the lab run (see live-check above)"
}

# ------------------------------------------- (b) replay on a veth pair --
part_b() {
  local name cap ev rep rc arc pid n run
  log "=== (b) replay on a veth pair in $RNS (tcpreplay ${RATE_ARGS[*]}, live --threads $THREADS): $REPLAY"
  setup_replay_ns "$RNS"
  for run in $(for name in $REPLAY; do for n in $THREADS; do echo "$name:$n"; done; done); do
    name=${run%:*}; n=${run#*:}
    check_time "replaying $name"
    cap="$REPO_DIR/fixtures/lab/$name.pcap"
    [ -f "$cap" ] || { fail "(b) no capture $cap"; continue; }
    ev="$WORK/replay-$name-t$n.jsonl"; rep="$WORK/analyze-$name.json"
    start_live "$RNS" "$REPLAY_RX" "$ev" "replay-$name-t$n" --fail-on $FAIL_ON --threads "$n"
    rc=0
    timeout 120 ip netns exec "$RNS" tcpreplay -i "$REPLAY_TX" "${RATE_ARGS[@]}" "$cap" \
      > "$WORK/tcpreplay-$name.log" 2>&1 &
    pid=$!
    track $pid "tcpreplay-$name"
    wait $pid || rc=$?
    untrack $pid
    if [ $rc != 0 ]; then
      fail "(b) tcpreplay of $name exited $rc: $(tail -3 "$WORK/tcpreplay-$name.log" | tr '\n' ' ')"
    fi
    log "tcpreplay $name: $(grep -m1 -E '^Actual' "$WORK/tcpreplay-$name.log" | sed 's/^ *//')"
    sleep 1
    stop_live "$LIVE_PID" 30
    arc=0
    timeout 120 "$S2SCOPE_BIN" analyze --format json "$cap" > "$rep" 2> "$WORK/analyze-$name.stderr" || arc=$?
    if [ $arc -gt 1 ]; then fail "(b) s2scope analyze $name exited $arc"; continue; fi
    if [ "$LIVE_RC" != "$arc" ]; then
      fail "(b) $name: s2scope live exited $LIVE_RC, analyze $arc"
    fi
    log "replay $name (live --threads $n): live exit $LIVE_RC, analyze exit $arc"
    rc=0
    $PY "$LAB_DIR/live-check.py" compare "$ev" "$rep" || rc=$?
    [ $rc = 0 ] || fail "(b) $name, live --threads $n: live verdicts differ from analyze (see above)"
  done
  teardown_replay_ns "$RNS"
}

part_a
part_b

if [ ${#FAILS[@]} -gt 0 ]; then
  log "live-test: FAILED (${#FAILS[@]}):"
  for f in "${FAILS[@]}"; do log "  - $f"; done
  exit 1
fi
log "live-test: PASS (live lab run + replay of: $REPLAY; live --threads $THREADS)"
