#!/usr/bin/env bash
# S2Scope TLS lab: a real STARTTLS s2s session with Server Dialback inside TLS,
# captured together with the TLS key log, so S2Scope can decrypt it (--keylog).
#
#   sudo scripts/lab/tls-keylog.sh [OUTDIR] [1.3|1.2 ...]
#
# Inside a private network namespace (scripts/lab/lablib.sh): the lab DNS, a
# real Prosody for a.lab (self-signed certificate, s2s_require_encryption =
# true, s2s_secure_auth = false) and scripts/lab/tlspeer.py as evil.lab
# (10.53.0.9).  The peer connects to Prosody, STARTTLS, and sends db:result
# inside TLS; Prosody dials back to evil.lab (STARTTLS again, the peer is the
# TLS server) and sends db:verify there and its own db:result, which the peer
# verifies on a verify-only connection (STARTTLS too).  tcpdump captures 5269
# on lo.  The peer writes the NSS key log of every TLS session (Python's
# ssl keylog_filename) — it is one end of every session.
#
# Writes OUTDIR/prosody-tls13.{pcap,keylog,truth.json} (and -tls12 for 1.2;
# default: both).  OUTDIR defaults to fixtures/tls.
#
# Environment: S2SLAB_KEEP=1 keeps the work directory (Prosody log, peer log).
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"
OUTDIR="${1:-$REPO_DIR/fixtures/tls}"
shift || true
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(1.3 1.2)
LAB_LOG_TAG=tls-lab

# shellcheck source=scripts/lab/lablib.sh
. "$LAB_DIR/lablib.sh"

SECRET_EVIL="evil-lab-dialback-secret"

lab_require_root
lab_install_traps
ensure_packages --prosody-only tcpdump
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
lab_init_work
log "namespace $NS, work $WORK, output $OUTDIR"
setup_netns
start_dns

run_version() {   # 1.3 | 1.2
  local v=$1 tag
  tag="tls$(echo "$v" | tr -d .)"
  SCEN_DIR="$WORK/$tag"; mkdir -p "$SCEN_DIR"; chmod 755 "$SCEN_DIR"
  log "=== prosody-$tag"
  PID_a=""
  start_prosody a a.lab $IP_A "$SECRET_A" tls alice pw-alice
  make_certs "$SCEN_DIR/peer" evil.lab
  local keylog="$SCEN_DIR/prosody-$tag.keylog" cap="$SCEN_DIR/prosody-$tag.pcap"
  : > "$keylog"
  start_capture "$tag" lo "$cap"
  wait_captures_ready

  local rc=0 ppid
  timeout 90 ip netns exec "$NS" $PY "$LAB_DIR/tlspeer.py" --ip $IP_EVIL --domain evil.lab \
    --secret "$SECRET_EVIL" --peer a.lab=$IP_A --target a.lab --tls "$v" \
    --cert "$SCEN_DIR/peer/evil.lab.crt" --key "$SCEN_DIR/peer/evil.lab.key" \
    --keylog "$keylog" --log "$SCEN_DIR/peer.json" > "$SCEN_DIR/notes.json" 2> "$SCEN_DIR/peer.log" &
  ppid=$!
  track $ppid tlspeer
  wait $ppid || rc=$?
  untrack $ppid
  sleep 0.5
  stop_pid "$PID_a" 8      # while capturing: the capture shows how the streams end
  stop_captures
  [ $rc = 0 ] || { tail -20 "$SCEN_DIR/peer.log" >&2; die "tlspeer.py failed (rc=$rc)"; }

  cp "$cap" "$OUTDIR/prosody-$tag.pcap"
  cp "$keylog" "$OUTDIR/prosody-$tag.keylog"
  $PY - "$SCEN_DIR/notes.json" "$OUTDIR/prosody-$tag.truth.json" "$tag" "$v" "$SECRET_A" "$SECRET_EVIL" <<'EOF'
import json, sys
notes = json.load(open(sys.argv[1]))
out, tag, v, sa, se = sys.argv[2:7]
dbs = [{"originating": d["originating"], "receiving": d["receiving"], "outcome": d["outcome"], "verify_seen": True}
       for d in notes["dialbacks"]]
truth = {
  "scenario": "prosody-" + tag,
  "description": ("Real Prosody 0.12 (a.lab, self-signed certificate, s2s_require_encryption=true, "
                  "s2s_secure_auth=false) and scripts/lab/tlspeer.py (evil.lab). Every connection negotiates "
                  "STARTTLS (TLS %s) and Server Dialback runs inside TLS; the key log of every session is in "
                  "prosody-%s.keylog. Decrypted, the capture shows both dialback exchanges." % (v, tag)),
  "capture": "prosody-%s.pcap" % tag,
  "keylog": "prosody-%s.keylog" % tag,
  "link_type": "EN10MB",
  "tls_version": "TLS " + v,
  "servers": {"a.lab": "10.53.0.1", "evil.lab": "10.53.0.9"},
  "software": {"10.53.0.1": "Prosody 0.12.3 (Debian 12)", "10.53.0.9": "scripts/lab/tlspeer.py (Python ssl, OpenSSL 3)"},
  "dialback_secrets": {"a.lab": sa, "evil.lab": se},
  "dialbacks": dbs,
  "dialbacks_complete": True,
  "expect_tls_connections": 3,
  "notes": ("The peer's log (plaintext, as sent and received) decides the outcomes: 'outcome' is the receiving "
            "server's db:result answer. Without the key log no dialback is visible."),
}
json.dump(truth, open(out, "w"), indent=2)
open(out, "a").write("\n")
EOF
  log "ok: prosody-$tag ($(cat "$SCEN_DIR/notes.json"))"
}

for v in "${VERSIONS[@]}"; do run_version "$v"; done
log "captures, key logs and truth files in $OUTDIR"
