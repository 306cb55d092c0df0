#!/usr/bin/env bash
# Installs the real tools the tests check generated files with: haproxy (haproxy -c),
# promtool (Debian package prometheus) and shellcheck; what the real restore test runs
# (tests/test_restore.py): age, which encrypts archives like the backup engine and decrypts
# them like the restore; and busybox-static, a BusyBox that runs alone in an image (the tiny
# local image of the restore test, the stand-in base image the example Dockerfiles are built on).
# Debian/Ubuntu only; a no-op when they are already there.
set -euo pipefail
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v age >/dev/null 2>&1 || missing+=(age)
# The restore test needs a busybox that runs alone in an image: the static build.
if ! command -v dpkg >/dev/null 2>&1 || ! dpkg -s busybox-static >/dev/null 2>&1; then
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-tools: please install ${missing[*]} (needed by the config checks)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-tools: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
