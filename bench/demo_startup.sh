#!/usr/bin/env bash
# Time `make demo` from a fresh clone: seconds until the demo's install stamp exists and until run_demo
# prints its banner ("Next steps"), then check that the login page answers and stop the demo.
# Usage: bench/demo_startup.sh [REPO (default: this checkout)] [PORT (default 8123)] [STUDIES (default 2000)]
# Writes the clone to a temporary folder and prints one line: install_s=... total_s=... load=...
set -euo pipefail
repo="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
port="${2:-8123}"
studies="${3:-2000}"
work="$(mktemp -d)"
log="$work/demo.log"
git clone -q "$repo" "$work/clone"
cd "$work/clone"
start=$(date +%s.%N)
setsid make demo PORT="$port" DEMO_STUDIES="$studies" >"$log" 2>&1 &
pid=$!
trap 'kill -- -"$pid" 2>/dev/null || true' EXIT
installed=""
while kill -0 "$pid" 2>/dev/null; do
  if [ -z "$installed" ] && [ -f .venv/.installed-demo ]; then
    installed=$(echo "$(date +%s.%N) - $start" | bc)
  fi
  grep -q "Next steps" "$log" 2>/dev/null && break
  sleep 1
done
total=$(echo "$(date +%s.%N) - $start" | bc)
grep -q "Next steps" "$log" || { echo "the demo stopped before its banner; see $log" >&2; exit 1; }
echo "install_s=$installed total_s=$total load=$(cut -d' ' -f1-3 /proc/loadavg)"
grep -E "seeded|ready in" "$log" || true
curl -s -o /dev/null -w "login page: %{http_code}\n" "http://127.0.0.1:$port/accounts/login/"
