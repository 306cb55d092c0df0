"""The homelab policy pack: `pulumi preview --policy-pack policies`.

Only builds the pack (the policies come from `policies/pack.py`, the rules from
`policies/rules.py`). Lower a rule with pack config, e.g. `{"pinned-images": "advisory"}`, or
give its allowlist: `{"docker-privileges": {"docker-socket-allowlist": {"traefik": "ro"}}}`.
"""

import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

# CrossGuard runs this file from policies/: make `policies` importable as a package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies.pack import build_policies  # noqa: E402

PolicyPack(name="homelab", enforcement_level=EnforcementLevel.MANDATORY, policies=build_policies())
