#!/usr/bin/env bash
# Runs `pulumi <command>` on a stack with a local file backend under the project
# (.pulumi-state/) and the passphrase secrets provider: no account, nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command_name=${1:-up}
stack=${STACK:-dev}

if ! command -v pulumi >/dev/null 2>&1; then
  cat >&2 <<'MSG'
The Pulumi CLI is not installed (no `pulumi` on PATH).
Install it, then run this again:
  curl -fsSL https://get.pulumi.com | sh      # or: brew install pulumi
  export PATH="$HOME/.pulumi/bin:$PATH"
MSG
  exit 127
fi

mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  echo "homelab: PULUMI_CONFIG_PASSPHRASE is not set; Pulumi will ask for the passphrase that protects this stack's secrets." >&2
fi
pulumi stack select "$stack" --create --secrets-provider passphrase
case "$command_name" in
  up) pulumi up --stack "$stack" ;;
  preview) pulumi preview --stack "$stack" ;;
  destroy)
    echo "homelab: stateful volumes are retained on destroy unless data.delete-on-destroy is true." >&2
    pulumi destroy --stack "$stack" ;;
  *) pulumi "$command_name" --stack "$stack" ;;
esac
