#!/usr/bin/env bash
# Renders the HTML report of a capture and a screenshot of it with headless Chromium.
#   scripts/render-html.sh [capture.pcap] [out-dir]
# Defaults: fixtures/lab/wrong-secret.pcap into .build-artifacts/ (the source of docs/report-screenshot.png).
set -euo pipefail
cd "$(dirname "$0")/.."
capture="${1:-fixtures/lab/wrong-secret.pcap}"
out="${2:-.build-artifacts}"
mkdir -p "$out"
swift build --scratch-path .build-html >/dev/null
.build-html/debug/s2scope analyze --quiet --html "$out/report.html" -o "$out/report.txt" "$capture" || [ $? -eq 1 ]
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "chromium is missing: scripts/install-deps.sh test" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --screenshot="$out/report-screenshot.png" --window-size=1400,2000 "file://$(realpath "$out/report.html")" 2>/dev/null
echo "$out/report.html"
echo "$out/report-screenshot.png"
