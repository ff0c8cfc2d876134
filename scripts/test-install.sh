#!/usr/bin/env bash
# `make install` and the systemd unit of the live sensor (run by .ci/run; root only for the package
# installation of systemd's tools when they are missing).
#
#   scripts/test-install.sh
#
# 1. A staged install (PREFIX=/usr DESTDIR=…): the release binary and the unit land where a package
#    wants them, the unit's ExecStart names the installed binary, the binary runs; make prints how
#    to start the sensor and starts nothing.
# 2. An install into a real PREFIX (a temporary folder), so that the unit's ExecStart exists:
#    `systemd-analyze verify` accepts the unit (directives, instance, executable) and
#    `systemd-analyze security --offline` rates its exposure at most 3.0 of 10 (the hardening holds).
#    systemd is not running on a CI container: verify and security read the files only.
# 3. uninstall removes what install put.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "test-install: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
tmp=$(mktemp -d /tmp/s2scope-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if ! command -v systemd-analyze > /dev/null; then
  [ "$(id -u)" = 0 ] || fail "systemd-analyze is missing (install Debian's systemd package)"
  log "installing systemd (for systemd-analyze only; nothing is started)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq && timeout 900 apt-get install -y -qq --no-install-recommends systemd > /dev/null \
    || fail "could not install systemd"
fi

log "staged install: make install PREFIX=/usr DESTDIR=$tmp/stage"
make -s -C "$ROOT" install PREFIX=/usr DESTDIR="$tmp/stage" > "$tmp/make.out"
unit="$tmp/stage/usr/lib/systemd/system/s2scope-live@.service"
[ -x "$tmp/stage/usr/bin/s2scope" ] || fail "no $tmp/stage/usr/bin/s2scope"
[ -f "$unit" ] || fail "no unit at $unit"
grep -q '^ExecStart=/usr/bin/s2scope live -i %I ' "$unit" || fail "ExecStart does not name /usr/bin/s2scope: $(grep ExecStart "$unit")"
[ -f "$tmp/stage/usr/share/doc/s2scope/logrotate-s2scope-live" ] || fail "no logrotate example"
"$tmp/stage/usr/bin/s2scope" --version > /dev/null || fail "the installed binary does not run"
grep -q "nothing was started" "$tmp/make.out" || fail "make install did not say that it started nothing"
for d in DynamicUser=yes 'CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN' ProtectSystem=strict Restart=on-failure \
         'RestrictAddressFamilies=AF_PACKET' NoNewPrivileges=yes LogsDirectory=s2scope ExecReload=; do
  grep -q "^$d" "$unit" || fail "the unit lacks $d"
done

log "install into a real prefix: make install PREFIX=$tmp/prefix"
make -s -C "$ROOT" install PREFIX="$tmp/prefix" > /dev/null
unit="$tmp/prefix/lib/systemd/system/s2scope-live@.service"
grep -q "^ExecStart=$tmp/prefix/bin/s2scope live" "$unit" || fail "ExecStart does not follow PREFIX"
log "systemd-analyze verify $unit"
systemd-analyze verify "$unit" || fail "systemd-analyze verify rejects the unit"
exposure=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
log "systemd-analyze security --offline: exposure $exposure of 10"
systemd-analyze security --offline=yes --threshold=30 "$unit" > /dev/null 2>&1 || fail "exposure $exposure is above 3.0"

make -s -C "$ROOT" uninstall PREFIX="$tmp/prefix"
[ ! -e "$tmp/prefix/bin/s2scope" ] && [ ! -e "$unit" ] || fail "uninstall left files"
log "PASS (staged and prefixed install, unit verified, exposure $exposure)"
