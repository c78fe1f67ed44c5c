#!/usr/bin/env bash
# The README's first command: installs everything missing, builds, starts berthd in the background
# on unix:///run/berth.sock with its defaults, makes the local busybox image and shows berth working.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

bash scripts/install-deps.sh
npm run --silent build

SOCK=/run/berth.sock
if curl -sf --unix-socket "$SOCK" http://berth/_ping >/dev/null 2>&1; then
  echo "berthd is already running on unix://$SOCK"
else
  mkdir -p /var/log
  echo "starting berthd (log: /var/log/berthd.log)"
  setsid nohup "$ROOT/bin/berthd" >>/var/log/berthd.log 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    curl -sf --unix-socket "$SOCK" http://berth/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf --unix-socket "$SOCK" http://berth/_ping >/dev/null || { echo "berthd did not start; see /var/log/berthd.log" >&2; tail -n 20 /var/log/berthd.log >&2; exit 1; }
fi

BERTH="$ROOT/bin/berth"
export BERTH_HOST="unix://$SOCK"
if ! "$BERTH" image inspect busybox:latest >/dev/null 2>&1; then
  "$BERTH" image seed busybox
fi
"$BERTH" images
echo "+ berth run --rm busybox echo hello from a berth container"
"$BERTH" run --rm busybox echo hello from a berth container
cat <<MSG

berthd is running (unix://$SOCK, log /var/log/berthd.log).
  docker CLI:  export DOCKER_HOST=unix://$SOCK
  stop it:     kill \$(cat /run/berth/berthd.pid)
MSG
