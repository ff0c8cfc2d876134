#!/usr/bin/env bash
# S2Scope real-server TLS lab: Prosody 0.12 (a.lab) and ejabberd 23.01 (e.lab) federate with
# STARTTLS required, both running under the key-log shim (tools/keylog-shim), so every TLS
# session's secrets come from the servers themselves.
#
#   sudo scripts/lab/tls-servers.sh [OUTDIR] [CASE...]
#
# Cases (default: all four):
#   dialback-tls13  dialback-tls12   self-signed certificates: the certificates do not verify, so
#                                    the servers authenticate with Server Dialback inside TLS
#   sasl-tls13      sasl-tls12       certificates from a lab CA both servers trust: SASL EXTERNAL
#                                    (RFC 6120 §6, XEP-0178), no dialback
# TLS 1.2 is forced through both servers' own settings.
#
# For every case: tcpdump captures TCP/5269 on the namespace's loopback while two `s2scope live
# -i lo` run, both started before the servers, so their key logs do not exist when they start
# and grow during the run: one follows Prosody's key log, the other a copy made one and a half
# seconds late (scripts/lab/keylog-delay.py), so that its sessions must hold their records
# until their secrets arrive. Writes to OUTDIR (default fixtures/tls):
#   servers-CASE.pcap                  the capture
#   servers-CASE.prosody.keylog        the key log Prosody wrote (through the shim)
#   servers-CASE.ejabberd.keylog       the key log ejabberd wrote (through the shim)
#   servers-CASE-dsb.pcapng            the capture with the secrets embedded (editcap --inject-secrets)
#   servers-CASE.truth.json            what happened, from the servers' logs and the capture
#
# The run fails when a server's key log misses a TLS session of the capture, when the servers
# did not authenticate the way the case expects (from their logs), when the traffic did not go
# through (messages, subscriptions and pings both ways, scripts/lab/drive.py), or when either
# live run did not decrypt every byte and report what the truth holds (scripts/lab/tls-check.py).
#
# Environment: S2SCOPE=/path/to/s2scope (default: the newest built binary; built if none)
#              KEYLOG_SHIM=/path/to/libs2scope-keylog.so (default: make keylog-shim)
#              S2SLAB_KEEP=1 keeps the work directory (server logs, live output)
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
OUTDIR="${1:-$REPO_DIR/fixtures/tls}"
shift || true
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(dialback-tls13 dialback-tls12 sasl-tls13 sasl-tls12)
LAB_LOG_TAG=tls-servers

# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"
# shellcheck source=scripts/lab/tlslib.sh
. "$LAB_DIR/tlslib.sh"

lab_require_root
lab_install_traps
ensure_packages
command -v editcap >/dev/null || ensure_packages tshark
find_s2scope
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
lab_init_work
build_keylog_shim
log "namespace $NS, work $WORK, output $OUTDIR, s2scope $S2SCOPE_BIN, shim $KEYLOG_SHIM"
setup_netns
start_dns

CERTS="$WORK/certs"
make_lab_ca "$CERTS/ca"
for dom in a.lab e.lab; do
  make_certs "$CERTS/self" "$dom"
  issue_cert "$CERTS/ca-issued" "$CERTS/ca" "$dom"
done
chmod -R a+rX "$CERTS"

run_case() {   # dialback-tls13 | dialback-tls12 | sasl-tls13 | sasl-tls12
  local case=$1 auth=${1%-*} v certdir cafile
  v=${1##*-tls}; v="${v:0:1}.${v:1}"
  SCEN_DIR="$WORK/$case"; mkdir -p "$SCEN_DIR"; chmod 755 "$SCEN_DIR"
  log "=== $case (TLS $v, $auth)"
  if [ "$auth" = sasl ]; then certdir="$CERTS/ca-issued"; cafile="$CERTS/ca/ca.crt"
  else certdir="$CERTS/self"; cafile=-; fi
  # Each server writes its key log into a directory only it can write; they do not exist yet
  # when s2scope starts.
  mkdir -p "$SCEN_DIR/keys-a" "$SCEN_DIR/keys-e"
  chown prosody:prosody "$SCEN_DIR/keys-a"; chown ejabberd:ejabberd "$SCEN_DIR/keys-e"
  chmod 755 "$SCEN_DIR/keys-a" "$SCEN_DIR/keys-e"
  local klA="$SCEN_DIR/keys-a/keys.log" klE="$SCEN_DIR/keys-e/keys.log"
  local cap="$SCEN_DIR/$case.pcap" ev="$SCEN_DIR/live.jsonl" evd="$SCEN_DIR/live-delayed.jsonl"
  local kld="$SCEN_DIR/keys-delayed.log" pid_delay pid_live

  start_capture "$case" lo "$cap"
  wait_captures_ready
  $PY "$LAB_DIR/keylog-delay.py" "$klA" "$kld" --delay 1.5 &
  pid_delay=$!
  track $pid_delay keylog-delay
  start_live "$NS" lo "$ev" "live-$case" --keylog "$klA" --fail-on high
  pid_live=$LIVE_PID
  start_live "$NS" lo "$evd" "live-delayed-$case" --keylog "$kld" --fail-on high
  PID_a=""; PID_e=""
  start_prosody_tls a a.lab $IP_A "$SECRET_A" "$certdir" "$cafile" "$v" "$klA" alice pw-alice
  start_ejabberd_tls e.lab $IP_E "$certdir" "$cafile" "$v" "$klE" eve pw-eve

  local drive_rc=0 dpid
  timeout 90 ip netns exec "$NS" $PY "$LAB_DIR/drive.py" prosody-ejabberd "$SCEN_DIR/observations.json" \
    > "$SCEN_DIR/drive.log" 2>&1 &
  dpid=$!
  track $dpid drive
  wait $dpid || drive_rc=$?
  untrack $dpid
  sleep 0.5
  stop_ejabberd
  stop_pid "$PID_a" 8
  stop_captures
  sleep 2   # the delayed copy catches up
  stop_pid "$pid_delay" 3
  local rc_live rc_delayed
  stop_live "$pid_live" 30; rc_live=$LIVE_RC
  stop_live "$LIVE_PID" 30; rc_delayed=$LIVE_RC
  log "$case: s2scope live exited $rc_live ($(wc -l < "$ev") event lines), with the late key log $rc_delayed ($(wc -l < "$evd") lines)"
  if [ $drive_rc != 0 ]; then
    grep -E "FAILED|Error|Traceback" "$SCEN_DIR/drive.log" | head -5 >&2 || true
    die "$case: the federation traffic did not go as planned (see $SCEN_DIR/drive.log)"
  fi
  [ -s "$klA" ] || die "$case: Prosody wrote no key log (shim not loaded? see $SCEN_DIR/a/stdout)"
  [ -s "$klE" ] || die "$case: ejabberd wrote no key log (shim not loaded? see $SCEN_DIR/e/stdout)"
  local mode
  mode=$(stat -c %a "$klA")/$(stat -c %a "$klE")
  [ "$mode" = 600/600 ] || die "$case: key logs created with modes $mode, expected 600/600"

  cp "$cap" "$OUTDIR/servers-$case.pcap"
  cp "$klA" "$OUTDIR/servers-$case.prosody.keylog"
  cp "$klE" "$OUTDIR/servers-$case.ejabberd.keylog"
  chmod 644 "$OUTDIR/servers-$case".*
  editcap --inject-secrets "tls,$klA" "$cap" "$OUTDIR/servers-$case-dsb.pcapng" \
    || die "$case: editcap --inject-secrets failed"
  $PY "$LAB_DIR/tls-servers-truth.py" "$case" "$v" "$auth" "$OUTDIR" "$SCEN_DIR" \
    || die "$case: the capture, key logs or server logs do not show what the case expects"
  local truth="$OUTDIR/servers-$case.truth.json"
  $PY "$LAB_DIR/tls-check.py" live "$truth" "$ev" --rc "$rc_live" \
    || die "$case: s2scope live (key log followed as written) did not decrypt and report everything"
  $PY "$LAB_DIR/tls-check.py" live "$truth" "$evd" --rc "$rc_delayed" --expect-held \
    || die "$case: s2scope live (key log 1.5 s late) did not decrypt and report everything"
  log "ok: $case"
}

for c in "${CASES[@]}"; do
  case $c in dialback-tls13|dialback-tls12|sasl-tls13|sasl-tls12) ;; *) die "unknown case $c" ;; esac
  run_case "$c"
done
log "captures, key logs, DSB pcapngs and truth files in $OUTDIR"
