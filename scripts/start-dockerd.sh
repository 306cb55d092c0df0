#!/usr/bin/env bash
# Starts a local Docker engine for the tests that need one (tests/test_bundle.py) when none
# answers: runs dockerd in the background (log: /tmp/dockerd.log) if it is installed, and
# waits up to 30 s for `docker info`. Installs nothing, and always exits 0: without an engine
# the Docker tests skip with the reason.
set -u
log=/tmp/dockerd.log
wait_seconds=30

if ! command -v docker >/dev/null 2>&1; then
  echo "start-dockerd: no docker CLI; the Docker tests will skip" >&2
  exit 0
fi
if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "start-dockerd: docker info fails and dockerd is not installed; the Docker tests will skip" >&2
  exit 0
fi

if pgrep -x dockerd >/dev/null 2>&1; then
  echo "start-dockerd: dockerd is already running; waiting for it to answer"
else
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "start-dockerd: dockerd needs root (no passwordless sudo); the Docker tests will skip" >&2
      exit 0
    fi
  fi
  echo "start-dockerd: starting dockerd (log: $log)"
  nohup "${sudo[@]}" dockerd >"$log" 2>&1 </dev/null &
  disown || true
fi

for _ in $(seq 1 "$wait_seconds"); do
  if docker info >/dev/null 2>&1; then
    echo "start-dockerd: Docker engine is up"
    exit 0
  fi
  sleep 1
done
echo "start-dockerd: no answer from dockerd within ${wait_seconds} s (see $log); the Docker tests will skip" >&2
exit 0
