"""From CrossGuard's resource objects to the plain `Res` the rules read (importable without
starting a policy server)."""

from __future__ import annotations

from typing import Any

from policies.rules import Res, SecretValue


def wrap_secrets(value: Any) -> Any:
    """CrossGuard hands secret values over as `pulumi_policy.Secret`; the rules see `SecretValue`."""
    from pulumi_policy import Secret

    if isinstance(value, Secret):
        return SecretValue(wrap_secrets(value.value))
    if isinstance(value, dict):
        return {k: wrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wrap_secrets(v) for v in value]
    return value


def to_res(resource: Any) -> Res:
    """A `ResourceValidationArgs` or a `PolicyResource` as a `Res`."""
    opts = getattr(resource, "opts", None)
    provider = getattr(resource, "provider", None)
    deps = getattr(resource, "dependencies", None) or []
    return Res(
        type=resource.resource_type,
        name=resource.name,
        props=wrap_secrets(dict(resource.props)),
        urn=resource.urn,
        protect=bool(getattr(opts, "protect", False)),
        provider=getattr(provider, "urn", "") or "",
        dependencies=tuple(getattr(d, "urn", str(d)) for d in deps),
    )
