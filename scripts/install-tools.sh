#!/usr/bin/env bash
# Installs the real tools the tests check generated files with: haproxy (haproxy -c),
# promtool (Debian package prometheus), amtool (Debian package prometheus-alertmanager) and
# the shell linter shellcheck; unbound (unbound-checkconf, and the resolver run live); what the real restore test runs (tests/test_restore.py): age, which encrypts
# archives like the backup engine and decrypts them like the restore; busybox-static, a
# BusyBox that runs alone in an image (the tiny local image of the restore test, the stand-in
# base image the example Dockerfiles are built on) (Debian/Ubuntu); docker-registry, the
# registry the bundle tests push a digest-pinned image to (tests/test_bundle.py); the Docker engine
# (docker.io), pigz, openssh-server and openssh-client for the engine and SSH tests; and Renovate's config
# validator (npm, the release and lockfile in .ci/renovate); the kubernetes-models schemas of
# the Gateway API and Envoy Gateway resources (npm, .ci/k8s-models). A no-op for what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

npm_tree() {
  # npm_tree DIR PRESENT WHAT: `npm ci` in DIR (its lockfile pins every package; no install
  # scripts run) unless PRESENT is there already (an executable file or a directory); without npm, says which checks skip.
  local dir=$1 present=$2 what=$3
  [ -x "$present" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-tools: npm not found; $what not installed: the tests that use it skip" >&2
    return 0
  fi
  echo "install-tools: installing $what (npm ci in $dir)"
  npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
}

# Renovate's validator (tests/test_renovate.py); re2 is optional: without it the validator
# checks patterns with JavaScript's RegExp and says so.
renovate_validator() {
  npm_tree .ci/renovate .ci/renovate/node_modules/.bin/renovate-config-validator \
    "Renovate's validator (tests/test_renovate.py)"
}

# The schemas of the Gateway API and Envoy Gateway resources the platform creates.
k8s_models() {
  npm_tree .ci/k8s-models .ci/k8s-models/node_modules/@kubernetes-models/gateway-api \
    "the Gateway API and Envoy Gateway schemas (tests/custom_resources.py)"
}

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v age >/dev/null 2>&1 || missing+=(age)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
# The split-horizon resolver's file: unbound-checkconf, and unbound to answer live
# (tests/test_resolver.py).
[ -x /usr/sbin/unbound-checkconf ] || missing+=(unbound)
# The engine tests (restore, drill, bundle, pre-upgrade, builds) need a Docker engine, and the
# bundle's compressed images pigz; the SSH transport tests a real sshd and ssh (issue 23: the
# README's `make test` runs every test, not only .ci/run).
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v pigz >/dev/null 2>&1 || missing+=(pigz)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
# The restore test needs a busybox that runs alone in an image: the static build.
if ! command -v dpkg >/dev/null 2>&1 || ! dpkg -s busybox-static >/dev/null 2>&1; then
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: please install ${missing[*]} (needed by the config checks)" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-tools: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
renovate_validator
k8s_models
