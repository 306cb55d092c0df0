"""Automation API entry points (placeholder).

`python -m automation validate|preview|up|destroy|...` arrives with the automation issue.
Until then, `make up` / `make preview` / `make destroy` (scripts/pulumi-local.sh) drive the
CLI with a local file backend.
"""
