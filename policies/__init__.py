"""CrossGuard policy pack of the homelab project.

`rules.py` holds the rules as plain functions (what the tests import); `adapter.py` turns
CrossGuard's resources into their input; `__main__.py` only builds the `PolicyPack`.
"""
