"""From CrossGuard's resource objects to the plain `Res` the rules read (importable without
starting a policy server).

pulumi_policy hands props over behind proxies that raise on unknown values, with secret
markers already stripped. We read the raw values behind the proxies (so one value unknown in
a preview does not skip a whole policy), and turn unknown sentinels into `None`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rules import Res, SecretValue

_UNKNOWN = {
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # bool
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
}


def _target(value: Any) -> Any:
    """The raw value behind a pulumi_policy proxy (itself when it is not one)."""
    if isinstance(value, (dict, list, str)) or not isinstance(value, (Mapping, Sequence)):
        return value
    try:
        return value["__target"]  # type: ignore[index,call-overload]
    except Exception:
        return value


def wrap_secrets(value: Any) -> Any:
    """Plain dicts and lists, `pulumi_policy.Secret` as `SecretValue`, unknowns as None."""
    from pulumi_policy import Secret

    value = _target(value)
    if isinstance(value, Secret):
        return SecretValue(wrap_secrets(value.value))
    if isinstance(value, Mapping):
        return {k: wrap_secrets(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [wrap_secrets(v) for v in value]
    if isinstance(value, str) and value in _UNKNOWN:
        return None
    return value


def to_res(resource: Any) -> Res:
    """A `ResourceValidationArgs` or a `PolicyResource` as a `Res`."""
    opts = getattr(resource, "opts", None)
    provider = getattr(resource, "provider", None)
    deps = getattr(resource, "dependencies", None) or []
    return Res(
        type=resource.resource_type,
        name=resource.name,
        props=wrap_secrets(resource.props),
        urn=resource.urn,
        protect=bool(getattr(opts, "protect", False)),
        provider=getattr(provider, "urn", "") or "",
        dependencies=tuple(getattr(d, "urn", str(d)) for d in deps),
        delete_before_replace=bool(getattr(opts, "delete_before_replace", False)),
    )
