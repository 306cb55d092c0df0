"""CrossGuard policy pack (placeholder).

The rules that turn this project's promises into checks (pinned images, backed-up and
retained volumes, certificates for every route, no stray Docker socket mounts, ...) arrive
with the policy issue. Rules will live in importable modules here; `__main__.py` will only
build the `PolicyPack`, so tests can import the rules without starting a policy server.
"""
