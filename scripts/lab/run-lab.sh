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
#               S2SLAB_MAX_SECONDS=N  give up (cleanly) after N s (default 900;
#                               a normal full run takes about 2 minutes)
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
)

lab_require_root
lab_install_traps

# --------------------------------------------------------------- scenarios --
FAILED=()

run_scenario() {
  local sc=$1 servers prosody_mode=plain
  SCEN_DIR="$WORK/$sc"; mkdir -p "$SCEN_DIR"; chmod 755 "$SCEN_DIR"
  case $sc in
    prosody-prosody|wrong-secret) servers="a b" ;;
    starttls)                     servers="a b"; prosody_mode=tls ;;
    prosody-ejabberd)             servers="a e" ;;
    *)                            servers="a" ;;
  esac
  if (( $(date +%s) - START_TS > MAX_SECONDS )); then
    die "time limit of ${MAX_SECONDS}s exceeded before $sc"
  fi
  log "=== $sc (servers: $servers, $prosody_mode)"
  kill -0 "$PID_DNS" 2>/dev/null || die "dnsmasq is gone"
  PID_a=""; PID_b=""; PID_e=""
  local s
  for s in $servers; do
    case $s in
      a) start_prosody a a.lab $IP_A "$SECRET_A" $prosody_mode alice pw-alice ;;
      b) start_prosody b b.lab $IP_B "$SECRET_B" $prosody_mode bob pw-bob ;;
      e) start_ejabberd e.lab $IP_E eve pw-eve ;;
    esac
  done

  local tmpcap="$SCEN_DIR/capture"
  mkdir -p "$tmpcap"
  start_capture "$sc" lo "$tmpcap/$sc.pcap"
  if [ "$sc" = prosody-prosody ]; then
    start_capture "$sc" lo-pcapng "$tmpcap/$sc.pcapng"
    start_capture "$sc" any-sll   "$tmpcap/$sc-sll.pcap"
    start_capture "$sc" any-sll2  "$tmpcap/$sc-sll2.pcap"
  fi
  wait_captures_ready

  local drive_rc=0 dpid
  # in the background + wait, so that a signal interrupts the run at once
  timeout 90 ip netns exec "$NS" $PY "$LAB_DIR/drive.py" "$sc" "$SCEN_DIR/observations.json" \
    > "$SCEN_DIR/drive.log" 2>&1 &
  dpid=$!
  track $dpid drive
  wait $dpid || drive_rc=$?
  untrack $dpid
  sleep 0.5
  # stop the servers while capturing, so that the capture shows how streams end
  stop_ejabberd
  [ -n "$PID_b" ] && stop_pid "$PID_b" 8
  [ -n "$PID_a" ] && stop_pid "$PID_a" 8
  stop_captures

  if [ $drive_rc != 0 ]; then
    log "WARNING: traffic for $sc did not go as planned (rc=$drive_rc):"
    grep -E "FAILED|Error|Traceback" "$SCEN_DIR/drive.log" | head -5 >&2 || true
  fi
  # check the capture against the scenario's expectations and write the truth
  if $PY "$LAB_DIR/scenarios.py" finish "$sc" "$tmpcap" "$SCEN_DIR/observations.json" "$OUTDIR" \
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
