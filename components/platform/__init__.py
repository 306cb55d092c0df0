"""The internal developer platform on Kubernetes: cluster connection, charts, GitOps, access.

Every module here imports `pulumi_kubernetes` (slow to import); `stacks/platform.py` imports
them only when the platform layer is on, so a homelab-only stack never pays for it.
"""
