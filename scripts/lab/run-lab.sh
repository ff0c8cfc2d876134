#!/usr/bin/env bash
# S2Scope real-server capture lab.
#
#   sudo scripts/lab/run-lab.sh [OUTDIR] [SCENARIO...]
#
# Runs real Prosody and ejabberd servers plus a misbehaving peer
# (scripts/lab/badpeer.py) inside a private network namespace, drives s2s
# traffic with a tiny c2s client (scripts/lab/c2s.py), captures TCP/5269 and
# writes one capture + one ground-truth file per scenario into OUTDIR
# (default: fixtures/lab).  Without SCENARIO arguments all scenarios run.
#
# Environment:  S2SLAB_KEEP=1   keep the work directory (server logs, peer logs)
#               S2SLAB_NETNS=N  namespace name (default s2slab-<pid>)
#               S2SLAB_MAX_SECONDS=N  give up (cleanly) after N s (default 1200;
#                               a normal full run takes about 8 minutes)
#
# Needs root (network namespaces, packet capture).  Installs missing Debian
# packages itself.  Everything it starts is stopped by PID and the namespace is
# removed on exit, also on failure or Ctrl-C.
#
# The namespace, packages, PID table, servers and captures live in
# scripts/lab/lablib.sh (shared with live-test.sh); this file holds the
# scenarios.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
OUTDIR="${1:-$REPO_DIR/fixtures/lab}"
shift || true
SELECTED=("$@")

# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"

ALL_SCENARIOS=(
  prosody-prosody prosody-ejabberd wrong-secret verify-unhosted starttls
  bad-stream-ns bad-db-ns bad-unhosted-result bad-no-to bad-no-from bad-spoofed-from
  bad-xml-comment bad-xml-pi bad-early-stanza bad-verify-unknown-id
  bad-no-id bad-valid-unverified bad-verify-wrong-id
  midstream-prosody midstream-ejabberd rotated mixed-case bidi
  verify-leg-error verify-leg-close verify-leg-error-ejabberd
  unsolicited-verify unsolicited-result unsolicited-verify-ejabberd unsolicited-result-ejabberd
  bad-unswapped-result legacy-peer legacy-peer-ejabberd repeated-valid repeated-valid-ejabberd
  not-xmpp-probes multi-server
)
# seconds per file of the rotated capture (tcpdump -G); drive.py spaces the
# phases of the `rotated` scenario by ROTATE_SECONDS + 1.5 s
ROTATE_SECONDS=6
export ROTATE_SECONDS

lab_require_root
lab_install_traps

# --------------------------------------------------------------- scenarios --
FAILED=()

drive() {   # scenario observations-file phase: drive.py in the namespace (bounded, interruptible)
  local sc=$1 obs=$2 phase=$3 rc=0 dpid limit=90
  [ "$sc" = multi-server ] && limit=240
  # in the background + wait, so that a signal interrupts the run at once
  timeout $limit ip netns exec "$NS" $PY "$LAB_DIR/drive.py" "$sc" "$obs" "$phase" \
    >> "$SCEN_DIR/drive.log" 2>&1 &
  dpid=$!
  track $dpid drive
  wait $dpid || rc=$?
  untrack $dpid
  return $rc
}

run_scenario() {
  local sc=$1 servers prosody_mode=plain capture=lo
  SCEN_DIR="$WORK/$sc"; mkdir -p "$SCEN_DIR"; chmod 755 "$SCEN_DIR"
  case $sc in
    prosody-prosody|wrong-secret|midstream-prosody|not-xmpp-probes) servers="a b" ;;
    unsolicited-verify|unsolicited-result) servers="a b" ;;
    rotated)                      servers="a b"; capture=rotate ;;
    starttls)                     servers="a b"; prosody_mode=tls ;;
    bidi)                         servers="a b"; prosody_mode=bidi ;;
    prosody-ejabberd|midstream-ejabberd|mixed-case) servers="a e" ;;
    unsolicited-verify-ejabberd|unsolicited-result-ejabberd) servers="a e" ;;
    *-ejabberd)                   servers="e" ;;
    multi-server)                 servers="a b c e" ;;
    *)                            servers="a" ;;
  esac
  # midstream-*: the capture starts after federation is up and stops before
  # the servers (and so the connections) go down
  case $sc in midstream-*) capture=midstream ;; esac
  if (( $(date +%s) - START_TS > MAX_SECONDS )); then
    die "time limit of ${MAX_SECONDS}s exceeded before $sc"
  fi
  log "=== $sc (servers: $servers, $prosody_mode, capture $capture)"
  kill -0 "$PID_DNS" 2>/dev/null || die "dnsmasq is gone"
  PID_a=""; PID_b=""; PID_c=""; PID_e=""
  local s
  for s in $servers; do
    case $s in
      a) start_prosody a a.lab $IP_A "$SECRET_A" $prosody_mode alice pw-alice ;;
      b) start_prosody b b.lab $IP_B "$SECRET_B" $prosody_mode bob pw-bob ;;
      c) start_prosody c c.lab $IP_C "$SECRET_C" $prosody_mode carol pw-carol ;;
      e) start_ejabberd e.lab $IP_E eve pw-eve ;;
    esac
  done

  local tmpcap="$SCEN_DIR/capture" drive_rc=0 obs="$SCEN_DIR/observations.json"
  mkdir -p "$tmpcap"
  if [ $capture = midstream ]; then
    drive "$sc" "$SCEN_DIR/observations-setup.json" setup || drive_rc=$?
    sleep 1
  fi
  case $capture in
    rotate) start_capture "$sc" lo-rotate "$tmpcap/rotated-%s.pcap" ;;
    *)      start_capture "$sc" lo "$tmpcap/$sc.pcap" ;;
  esac
  if [ "$sc" = prosody-prosody ]; then
    start_capture "$sc" lo-pcapng "$tmpcap/$sc.pcapng"
    start_capture "$sc" any-sll   "$tmpcap/$sc-sll.pcap"
    start_capture "$sc" any-sll2  "$tmpcap/$sc-sll2.pcap"
  fi
  wait_captures_ready

  # not-xmpp-probes: connections carrying HTTP and a TLS ClientHello stay open
  # from before the federation until after the servers are gone
  local hold_pid=""
  if [ "$sc" = not-xmpp-probes ]; then
    ip netns exec "$NS" $PY "$LAB_DIR/drive.py" "$sc" "$SCEN_DIR/observations-probes.json" hold \
      >> "$SCEN_DIR/probes.log" 2>&1 &
    hold_pid=$!
    track $hold_pid probes
    local i
    for ((i = 0; i < 50; i++)); do
      [ -e "$SCEN_DIR/observations-probes.json.ready" ] && break; sleep 0.1
    done
    [ -e "$SCEN_DIR/observations-probes.json.ready" ] || log "WARNING: probes not ready"
  fi

  [ $drive_rc = 0 ] && { drive "$sc" "$obs" main || drive_rc=$?; }
  sleep 0.5
  if [ $capture = midstream ]; then
    stop_captures    # before the servers: the connections outlive the capture
  fi
  # stop the servers while capturing, so that the capture shows how streams end
  stop_ejabberd
  [ -n "$PID_c" ] && stop_pid "$PID_c" 8
  [ -n "$PID_b" ] && stop_pid "$PID_b" 8
  [ -n "$PID_a" ] && stop_pid "$PID_a" 8
  if [ -n "$hold_pid" ]; then
    sleep 1
    stop_pid "$hold_pid" 8    # SIGTERM: the probes close their connections (FIN)
  fi
  [ $capture = midstream ] || stop_captures

  if [ $drive_rc != 0 ]; then
    log "WARNING: traffic for $sc did not go as planned (rc=$drive_rc):"
    grep -E "FAILED|Error|Traceback" "$SCEN_DIR/drive.log" | head -5 >&2 || true
  fi
  # check the capture against the scenario's expectations and write the truth
  if $PY "$LAB_DIR/scenarios.py" finish "$sc" "$tmpcap" "$obs" "$OUTDIR" \
       >> "$SCEN_DIR/finish.log" 2>&1 && [ $drive_rc = 0 ]; then
    log "ok: $sc"
  else
    cat "$SCEN_DIR/finish.log" >&2
    FAILED+=("$sc")
  fi
}

# -------------------------------------------------------------------- main --
ensure_packages
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
lab_init_work
log "namespace $NS, work $WORK, output $OUTDIR"

setup_netns
start_dns

if [ ${#SELECTED[@]} -eq 0 ]; then SELECTED=("${ALL_SCENARIOS[@]}"); fi
for sc in "${SELECTED[@]}"; do
  case " ${ALL_SCENARIOS[*]} " in *" $sc "*) ;; *) die "unknown scenario $sc" ;; esac
  run_scenario "$sc"
done

if [ ${#FAILED[@]} -gt 0 ]; then
  log "FAILED scenarios: ${FAILED[*]}"
  exit 1
fi
log "all ${#SELECTED[@]} scenarios ok; captures and truth files in $OUTDIR"
