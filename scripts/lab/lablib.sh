# S2Scope lab library: sourced by run-lab.sh and live-test.sh (not run by itself).
#
# Provides the lab namespace (loopback addresses of a.lab, b.lab, c.lab, e.lab,
# evil.lab, lazy.lab, a scanner and dnsmasq; one source address per Prosody
# through uid routing), package installation, a PID table whose entries are
# stopped on exit, real Prosody/ejabberd servers and tcpdump/dumpcap captures.
#
#   . "$LAB_DIR/lablib.sh"
#   lab_require_root; ensure_packages [extra-package...]; lab_init_work; lab_install_traps
#   setup_netns; start_dns; SCEN_DIR=$WORK/x; mkdir -p "$SCEN_DIR"; start_prosody a a.lab $IP_A ...
#
# A caller may define lab_cleanup_extra (run first on exit, under set +e) to
# tear down its own resources.  LAB_LOG_TAG changes the log prefix.
#
# Environment:  S2SLAB_KEEP=1   keep the work directory (server logs, peer logs)
#               S2SLAB_NETNS=N  namespace name (default s2slab-<pid>)

LAB_DIR="${LAB_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
REPO_DIR="${REPO_DIR:-$(cd "$LAB_DIR/../.." && pwd)}"
LAB_LOG_TAG="${LAB_LOG_TAG:-lab}"
NS="${S2SLAB_NETNS:-s2slab-$$}"
MAX_SECONDS="${S2SLAB_MAX_SECONDS:-1200}"
START_TS=$(date +%s)
PY=python3
export PYTHONDONTWRITEBYTECODE=1   # keep scripts/lab free of __pycache__

# lab addressing (all inside the namespace, on its loopback)
IP_A=10.53.0.1    # a.lab   Prosody
IP_B=10.53.0.2    # b.lab   Prosody
IP_E=10.53.0.3    # e.lab   ejabberd
IP_C=10.53.0.4    # c.lab   Prosody (third instance, multi-server scenario)
IP_EVIL=10.53.0.9 # evil.lab badpeer.py
IP_LAZY=10.53.0.10 # lazy.lab badpeer.py (a second misbehaving peer)
IP_SCAN=10.53.0.20 # no domain: sends non-XMPP bytes (HTTP, TLS) to port 5269
IP_DNS=10.53.0.53 # dnsmasq
SECRET_A="a-lab-dialback-secret"
SECRET_B="b-lab-dialback-secret"
SECRET_C="c-lab-dialback-secret"
# Each Prosody instance runs under its own numeric uid (no passwd entry needed);
# a uid routing rule gives its outgoing connections its own source address.
PROSODY_UID_a=64801
PROSODY_UID_b=64802
PROSODY_UID_c=64803

log()  { printf '[%s %4ds] %s\n' "$LAB_LOG_TAG" "$(( $(date +%s) - START_TS ))" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }


lab_require_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, packet capture)"
}

# ---------------------------------------------------------------- packages --
# ensure_packages [--prosody-only] [extra Debian package whose command has the same name...]
#   --prosody-only: skip ejabberd and the capture tools (tcpdump, dumpcap)
ensure_packages() {
  local missing=() extra full=1
  if [ "${1:-}" = --prosody-only ]; then full=0; shift; fi
  for extra in "$@"; do command -v "$extra" >/dev/null || missing+=("$extra"); done
  command -v prosody     >/dev/null || missing+=(prosody)
  dpkg -s lua-unbound >/dev/null 2>&1 || missing+=(lua-unbound)
  if [ $full = 1 ]; then
    command -v ejabberdctl >/dev/null || missing+=(ejabberd)
    command -v tcpdump     >/dev/null || missing+=(tcpdump)
    command -v dumpcap     >/dev/null || missing+=(tshark)
  fi
  command -v dnsmasq     >/dev/null || missing+=(dnsmasq-base)
  command -v ip          >/dev/null || missing+=(iproute2)
  command -v openssl     >/dev/null || missing+=(openssl)
  command -v setpriv     >/dev/null || missing+=(util-linux)
  command -v python3     >/dev/null || missing+=(python3)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  # do not let the packages start their system-wide services
  local prc=/usr/sbin/policy-rc.d made_prc=0
  if [ ! -e "$prc" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$prc"; chmod 755 "$prc"; made_prc=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq || { [ $made_prc = 1 ] && rm -f "$prc"; die "apt-get update failed"; }
  # with Recommends, as on the reference machine (prosody: lua-unbound, lua-event)
  timeout 900 apt-get install -y -qq "${missing[@]}" \
    || { [ $made_prc = 1 ] && rm -f "$prc"; die "apt-get install failed"; }
  [ $made_prc = 1 ] && rm -f "$prc"
  return 0
}

# ------------------------------------------------------------ process table --
WORK=""
PIDS_FILE=""
CAP_PIDS=()

track() { echo "$1 $2" >> "$PIDS_FILE"; }      # pid name
untrack() { sed -i "/^$1 /d" "$PIDS_FILE"; }   # a stopped PID may be reused later

stop_pid() {   # pid [grace seconds]
  local pid=$1 grace=${2:-5} i
  untrack "$pid"
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "pid $pid did not stop after ${grace}s, killing"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

ns_pids() { ip netns pids "$NS" 2>/dev/null || true; }

untracked_ns_pids() {   # processes in our namespace that we did not record
  local p
  for p in $(ns_pids); do
    grep -q "^$p " "$PIDS_FILE" 2>/dev/null || echo "$p"
  done
}

kill_ns_leftovers() {
  # Every process inside our private namespace was started by this script,
  # directly or as a helper of a server (epmd, erl_child_setup ...).  Stop the
  # untracked ones by PID; tracked ones (dnsmasq, running servers, captures)
  # are stopped by their owners.
  local p i left
  for p in $(untracked_ns_pids); do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 30; i++)); do
    left=$(untracked_ns_pids); [ -z "$left" ] && return 0; sleep 0.1
  done
  for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
  sleep 0.2
}

cleanup() {
  local rc=$?
  set +e
  if declare -F lab_cleanup_extra >/dev/null; then lab_cleanup_extra; fi
  if [ -n "$PIDS_FILE" ] && [ -f "$PIDS_FILE" ]; then
    tac "$PIDS_FILE" | while read -r pid name; do stop_pid "$pid" 3; done
  fi
  if ip netns list 2>/dev/null | grep -qw "$NS"; then
    kill_ns_leftovers
    ip netns del "$NS" 2>/dev/null
  fi
  rm -rf "/etc/netns/$NS"
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${S2SLAB_KEEP:-0}" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  fi
  log "done in $(( $(date +%s) - START_TS ))s (exit $rc)"
  exit $rc
}

lab_install_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

lab_init_work() {   # WORK directory and PID table
  WORK="$(mktemp -d /tmp/s2slab.XXXXXX)"
  chmod 755 "$WORK"
  PIDS_FILE="$WORK/pids"; : > "$PIDS_FILE"
}

nsx() { ip netns exec "$NS" "$@"; }
# NOTE: background processes are started with a literal `ip netns exec ... &`
# (never through a shell function or compound command) so that $! is the
# server's own PID: `ip netns exec` and `setpriv` exec() the program.

wait_listen() {   # ip port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    nsx ss -Hltn "src $1 and sport = :$2" 2>/dev/null | grep -q LISTEN && return 0
    sleep 0.1
  done
  return 1
}

# ----------------------------------------------------------------- network --
setup_netns() {
  ip netns add "$NS"
  nsx ip link set lo up
  local ip
  for ip in $IP_A $IP_B $IP_E $IP_C $IP_EVIL $IP_LAZY $IP_SCAN $IP_DNS; do nsx ip addr add "$ip/32" dev lo; done
  # Prosody cannot choose the source address of outgoing s2s connections, and
  # with all servers on one loopback the kernel would use the destination
  # address as source.  Every Prosody instance therefore runs under its own uid,
  # and a uid rule sends that uid's route lookups to a table whose local route
  # carries the instance's address as preferred source.  The rules have to come
  # before the `local` table, which moves from preference 0 to 100.
  # (ejabberd and badpeer.py bind their source address explicitly.)
  local n ip_n uid
  for n in a b c; do
    eval "uid=\$PROSODY_UID_$n"
    case $n in a) ip_n=$IP_A ;; b) ip_n=$IP_B ;; c) ip_n=$IP_C ;; esac
    nsx ip route add local 10.53.0.0/24 dev lo table "$uid" proto kernel scope host src "$ip_n"
    nsx ip rule add pref $(( uid - 64790 )) uidrange "$uid-$uid" lookup "$uid"
  done
  nsx ip rule add pref 100 lookup local
  nsx ip rule del pref 0
  # `ip netns exec` bind-mounts /etc/netns/$NS/* over /etc/*
  mkdir -p "/etc/netns/$NS"
  echo "nameserver $IP_DNS" > "/etc/netns/$NS/resolv.conf"
  printf '127.0.0.1 localhost\n' > "/etc/netns/$NS/hosts"
}

start_dns() {
  local conf="$WORK/dnsmasq.conf" d
  {
    echo "no-resolv"; echo "no-hosts"; echo "no-poll"
    echo "listen-address=$IP_DNS"; echo "bind-interfaces"; echo "port=53"
    echo "local=/lab/"            # answer .lab authoritatively, never forward
    echo "log-queries"; echo "log-facility=$WORK/dnsmasq.log"
    for d in "a.lab $IP_A" "b.lab $IP_B" "e.lab $IP_E" "c.lab $IP_C" "evil.lab $IP_EVIL" \
             "lazy.lab $IP_LAZY"; do
      set -- $d
      echo "host-record=$1,$2"
      echo "srv-host=_xmpp-server._tcp.$1,$1,5269,0,5"
    done
  } > "$conf"
  ip netns exec "$NS" dnsmasq -k -C "$conf" --pid-file= --user=root > "$WORK/dnsmasq.out" 2>&1 &
  PID_DNS=$!
  track $PID_DNS dnsmasq
  wait_listen $IP_DNS 53 5 || die "dnsmasq did not start"
}

# ----------------------------------------------------------------- servers --
make_certs() {   # dir domain
  local dir=$1 dom=$2
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=$dom" \
    -addext "subjectAltName=DNS:$dom" -keyout "$dir/$dom.key" -out "$dir/$dom.crt" 2>/dev/null
}

start_prosody() {   # name(a|b|c) domain ip secret mode(plain|tls|bidi) user password
  # bidi: plaintext with mod_s2s_bidi (XEP-0288), which Prosody 0.12 ships but
  # does not enable by default
  local name=$1 dom=$2 ip=$3 secret=$4 mode=$5 user=$6 pass=$7 uid
  eval "uid=\$PROSODY_UID_$name"
  local d="$SCEN_DIR/$name"
  mkdir -p "$d/data" "$d/certs"
  local mods='"roster", "saslauth", "disco", "ping", "dialback"'
  local enc="false"
  if [ "$mode" = tls ]; then
    mods="$mods, \"tls\""; enc="true"
    make_certs "$d/certs" "$dom"
  elif [ "$mode" = bidi ]; then
    mods="$mods, \"s2s_bidi\""
  fi
  cat > "$d/prosody.cfg.lua" <<EOF
-- generated by scripts/lab/run-lab.sh
pidfile = "$d/prosody.pid"
data_path = "$d/data"
certificates = "$d/certs"
log = { { levels = { min = "debug" }, to = "file", filename = "$d/prosody.log" } }
interfaces = { "$ip" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
modules_enabled = { $mods }
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = $enc
s2s_secure_auth = false
dialback_secret = "$secret"
VirtualHost "$dom"
EOF
  chown -R prosody:prosody "$d"
  timeout 30 prosodyctl --config "$d/prosody.cfg.lua" register "$user" "$dom" "$pass" \
    >> "$d/prosodyctl.out" 2>&1 || die "prosodyctl register $user@$dom failed"
  # its own uid (see setup_netns): outgoing connections leave from $ip
  chown -R "$uid:$uid" "$d"
  ip netns exec "$NS" setpriv --reuid="$uid" --regid="$uid" --clear-groups \
    prosody --config "$d/prosody.cfg.lua" -F > "$d/stdout" 2>&1 &
  local pid=$!
  track $pid "prosody-$name"
  eval "PID_$name=$pid"
  wait_listen "$ip" 5269 15 || die "prosody $dom did not start (see $d)"
  wait_listen "$ip" 5222 5 || die "prosody $dom c2s did not start"
}

EJ_DIR=""
ejctl() {   # [timeout seconds] ejabberdctl arguments...
  local t=$1; shift
  timeout "$t" ip netns exec "$NS" ejabberdctl --config-dir "$EJ_DIR" --spool "$EJ_DIR/spool" \
    --logs "$EJ_DIR/log" "$@"
}

start_ejabberd() {   # domain ip user password
  local dom=$1 ip=$2 user=$3 pass=$4
  EJ_DIR="$SCEN_DIR/e"
  mkdir -p "$EJ_DIR/spool" "$EJ_DIR/log"
  cat > "$EJ_DIR/ejabberd.yml" <<EOF
# generated by scripts/lab/run-lab.sh
loglevel: info
log_rotate_count: 0
hosts:
  - $dom
certfiles: []
listen:
  -
    port: 5222
    ip: "$ip"
    module: ejabberd_c2s
    access: c2s
    starttls: false
  -
    port: 5269
    ip: "$ip"
    module: ejabberd_s2s_in
s2s_use_starttls: false
outgoing_s2s_ipv4_address: "$ip"
outgoing_s2s_families: [ipv4]
auth_method: internal
auth_password_format: plain
s2s_access: all
acl:
  local:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_s2s_dialback: {}
  mod_offline: {}
EOF
  printf '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n{file, resolv, "/etc/resolv.conf"}.\n' \
    > "$EJ_DIR/inetrc"
  echo "ERLANG_NODE=s2slab@localhost" > "$EJ_DIR/ejabberdctl.cfg"
  chown -R ejabberd:ejabberd "$EJ_DIR"
  ip netns exec "$NS" ejabberdctl --config-dir "$EJ_DIR" --spool "$EJ_DIR/spool" \
    --logs "$EJ_DIR/log" foreground > "$EJ_DIR/stdout" 2>&1 &
  PID_e=$!
  track $PID_e ejabberd
  local i ok=0
  for ((i = 0; i < 60; i++)); do
    sleep 0.5
    if ejctl 10 status > /dev/null 2>&1; then ok=1; break; fi
    kill -0 $PID_e 2>/dev/null || break
  done
  [ $ok = 1 ] || die "ejabberd did not start (see $EJ_DIR)"
  wait_listen "$ip" 5269 15 || die "ejabberd s2s listener missing"
  ejctl 20 register "$user" "$dom" "$pass" > /dev/null || die "ejabberd register failed"
}

stop_ejabberd() {
  [ -n "${PID_e:-}" ] || return 0
  ejctl 20 stop > /dev/null 2>&1 || true
  stop_pid "$PID_e" 10
  PID_e=""
  kill_ns_leftovers   # epmd (started by erl inside our namespace)
}

# ---------------------------------------------------------------- captures --
start_capture() {   # name kind(lo|lo-pcapng|any-sll|any-sll2|lo-rotate) file
  # lo-rotate: tcpdump -G $ROTATE_SECONDS, FILE holds a strftime pattern (%s)
  local name=$1 kind=$2 file=$3 filter="tcp port 5269" pid argv
  local td=(tcpdump -w "$file" -U --immediate-mode -B 65536 -Z root)
  case $kind in
    lo)        argv=("${td[@]}" -i lo "$filter") ;;
    lo-rotate) argv=("${td[@]}" -G "${ROTATE_SECONDS:-6}" -i lo "$filter") ;;
    any-sll)   argv=("${td[@]}" -i any -y LINUX_SLL "$filter") ;;
    any-sll2)  argv=("${td[@]}" -i any -y LINUX_SLL2 "$filter") ;;
    lo-pcapng) argv=(dumpcap -i lo -f "$filter" -B 64 -n -w "$file") ;;
  esac
  ip netns exec "$NS" "${argv[@]}" > "$SCEN_DIR/cap-$kind.log" 2>&1 &
  pid=$!
  track $pid "capture-$kind"
  CAP_PIDS+=("$pid:$kind:$file")
}

wait_captures_ready() {
  local c kind i
  for c in "${CAP_PIDS[@]}"; do
    kind=${c#*:}; kind=${kind%%:*}
    for ((i = 0; i < 50; i++)); do
      grep -qiE "listening on|capturing on" "$SCEN_DIR/cap-$kind.log" 2>/dev/null && break
      sleep 0.1
    done
  done
  sleep 0.5
}

stop_captures() {
  local c pid
  sleep 1.5    # let the last packets reach the capture (see CAPTURE-FACTS)
  for c in "${CAP_PIDS[@]}"; do
    pid=${c%%:*}
    kill -INT "$pid" 2>/dev/null || true
  done
  for c in "${CAP_PIDS[@]}"; do stop_pid "${c%%:*}" 5; done
  for c in "${CAP_PIDS[@]}"; do
    local kind=${c#*:}; kind=${kind%%:*}
    if grep -qE "[1-9][0-9]* packets? dropped by kernel" "$SCEN_DIR/cap-$kind.log"; then
      log "WARNING: $kind capture dropped packets: $(grep dropped "$SCEN_DIR/cap-$kind.log" | tr '\n' ' ')"
    fi
  done
  CAP_PIDS=()
}


# ------------------------------------------------------- the live analyzer --
# Used by live-test.sh and live-replay-bench.sh.

has_live() {   # binary: has a working 'live' command (no pipe: pipefail + grep -q = SIGPIPE)
  local h
  h=$("$1" live --help 2>&1) || return 1
  [[ $h == *--interface* ]]
}

find_s2scope() {   # sets S2SCOPE_BIN: $S2SCOPE, else the newest built binary with 'live', else builds one
  local b
  S2SCOPE_BIN="${S2SCOPE:-}"
  if [ -z "$S2SCOPE_BIN" ]; then
    for b in .build/debug/s2scope .build/release/s2scope .build-live/debug/s2scope; do
      [ -x "$REPO_DIR/$b" ] && has_live "$REPO_DIR/$b" || continue
      if [ -z "$S2SCOPE_BIN" ] || [ "$REPO_DIR/$b" -nt "$S2SCOPE_BIN" ]; then S2SCOPE_BIN="$REPO_DIR/$b"; fi
    done
  fi
  if [ -z "$S2SCOPE_BIN" ]; then
    log "no s2scope binary: building one (swift build)"
    "$REPO_DIR/scripts/install-deps.sh" build || die "could not install the build dependencies"
    (cd "$REPO_DIR" && timeout 3600 swift build --product s2scope) >&2 || die "swift build failed"
    S2SCOPE_BIN="$REPO_DIR/.build/debug/s2scope"
  fi
  case $S2SCOPE_BIN in /*) ;; *) S2SCOPE_BIN="$PWD/$S2SCOPE_BIN" ;; esac
  [ -x "$S2SCOPE_BIN" ] || die "s2scope binary $S2SCOPE_BIN not found or not executable"
  has_live "$S2SCOPE_BIN" || die "$S2SCOPE_BIN has no 'live' command (stale build? rebuild it)"
}

LIVE_PID=""; LIVE_RC=""; LIVE_HWM_KB=0
start_live() {   # namespace interface events-file log-stem [more s2scope live arguments...]
  local ns=$1 iface=$2 out=$3 stem=$4 i
  shift 4
  rm -f "$out"
  ip netns exec "$ns" "$S2SCOPE_BIN" live -i "$iface" --format jsonl --output "$out" --user root "$@" \
    > "$WORK/$stem.stdout" 2> "$WORK/$stem.stderr" &
  LIVE_PID=$!
  LIVE_HWM_KB=0
  track "$LIVE_PID" "s2scope-$stem"
  # the events file is opened right after the capture handles are active
  for ((i = 0; i < 150; i++)); do
    [ -e "$out" ] && break
    if ! kill -0 "$LIVE_PID" 2>/dev/null; then
      wait "$LIVE_PID" 2>/dev/null || true; untrack "$LIVE_PID"
      die "s2scope live on $iface exited at start: $(head -c 600 "$WORK/$stem.stderr")"
    fi
    sleep 0.1
  done
  [ -e "$out" ] || die "s2scope live on $iface did not open $out within 15 s"
  sleep 0.3
}

sample_hwm() {   # pid: keep the peak resident set size (VmHWM, kB) in LIVE_HWM_KB
  local v
  v=$(awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
  if [ -n "$v" ] && [ "$v" -gt "$LIVE_HWM_KB" ]; then LIVE_HWM_KB=$v; fi
}

stop_live() {   # pid [grace seconds]: SIGINT, wait (bounded), exit status in LIVE_RC
  local pid=$1 grace=${2:-30} i
  kill -INT "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sample_hwm "$pid"
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "s2scope (pid $pid) did not stop ${grace}s after SIGINT, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  LIVE_RC=0
  wait "$pid" || LIVE_RC=$?
  untrack "$pid"
}

# A namespace with a veth pair and nothing else: frames sent on $REPLAY_TX are
# captured on $REPLAY_RX and then dropped by the stack (zero MACs: other host),
# so no RST answers the replayed traffic (see CAPTURE-FACTS).
REPLAY_TX=s2rtx
REPLAY_RX=s2rrx
setup_replay_ns() {   # name
  ip netns add "$1"
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$1" link set lo up
  ip -n "$1" link add "$REPLAY_TX" type veth peer name "$REPLAY_RX"
  # lab captures come from loopback: segments up to 64 KiB
  ip -n "$1" link set "$REPLAY_TX" mtu 65535 up
  ip -n "$1" link set "$REPLAY_RX" mtu 65535 up
}

teardown_replay_ns() {   # name: stop what still runs in it (by PID), delete it
  local ns=$1 p i left
  ip netns list 2>/dev/null | grep -qw "$ns" || return 0
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 30; i++)); do
    left=$(ip netns pids "$ns" 2>/dev/null || true); [ -z "$left" ] && break; sleep 0.1
  done
  for p in ${left:-}; do kill -KILL "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
}

# ------------------------------------------------- release build, captures --
# Used by live-soak.sh and metrics-flood.sh: rates like 200 Mbit/s need the release build.

find_release_s2scope() {   # sets S2SCOPE_BIN: $S2SCOPE, else .build/release/s2scope (built if older than the sources)
  S2SCOPE_BIN="${S2SCOPE:-}"
  if [ -z "$S2SCOPE_BIN" ]; then
    log "building s2scope (release; a no-op when it is up to date)"
    "$REPO_DIR/scripts/install-deps.sh" build >&2 || die "could not install the build dependencies"
    (cd "$REPO_DIR" && timeout 3600 swift build -c release --product s2scope 2>&1 | tail -1) >&2 || die "swift build -c release failed"
    S2SCOPE_BIN="$REPO_DIR/.build/release/s2scope"
  fi
  [ -x "$S2SCOPE_BIN" ] || die "s2scope binary $S2SCOPE_BIN not found or not executable"
  has_live "$S2SCOPE_BIN" || die "$S2SCOPE_BIN has no 'live' command"
}

bench_capture() {   # size seed: prints the path of a generated s2s capture (Benchmarks/ s2scope-gen), made
  # once into BENCH_DATA (kept; as `make bench` does), else into the work directory (removed on exit)
  local size=$1 seed=$2 data="${BENCH_DATA:-$WORK}" gen="$REPO_DIR/Benchmarks/.build/release/s2scope-gen"
  local f="$data/s2s-$size-seed$seed.pcap"
  mkdir -p "$data"
  if [ ! -s "$f" ]; then
    if [ ! -x "$gen" ]; then
      log "building s2scope-gen (Benchmarks/, release)"
      (cd "$REPO_DIR/Benchmarks" && timeout 3600 swift build -c release --product s2scope-gen 2>&1 | tail -1) >&2 \
        || die "could not build s2scope-gen"
    fi
    log "generating $f"
    "$gen" --size "$size" --seed "$seed" --out "$f.tmp" --truth "${f%.pcap}.truth.json" >&2 || die "s2scope-gen failed"
    mv "$f.tmp" "$f"
  fi
  echo "$f"
}

ensure_tcpreplay() {
  command -v tcpreplay > /dev/null && return 0
  export DEBIAN_FRONTEND=noninteractive
  { timeout 600 apt-get update -qq && timeout 600 apt-get install -y -qq tcpreplay > /dev/null; } || die "could not install tcpreplay"
}
