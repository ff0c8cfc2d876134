#!/usr/bin/env bash
# Installs the Debian packages S2Scope needs, only those missing.
#   scripts/install-deps.sh build   — to build and run the analyzer (libpcap, expat)
#   scripts/install-deps.sh test    — also the tools the tests use (tshark, tcpdump; chromium renders the HTML report;
#                                     Java and python3-venv run the Spark job of spark/ with pyspark from PyPI)
#   scripts/install-deps.sh lab     — also the real servers of the capture lab (prosody, ejabberd, dnsmasq)
set -euo pipefail
want=(libpcap-dev libexpat1-dev pkg-config)
case "${1:-build}" in
  build) ;;
  test) want+=(tshark tcpdump chromium time default-jre-headless python3-venv) ;;
  lab) want+=(tshark tcpdump prosody ejabberd dnsmasq-base iproute2 openssl) ;;
  *) echo "usage: $0 build|test|lab" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
