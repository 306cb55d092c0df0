"""Image references: the `name:tag` part of a pin apart from its `@sha256:` digest.

A pin `name:tag@sha256:<digest>` names an image by its registry digest. The engine checks that
digest when it pulls, but it does not keep it through `docker save` / `docker load` (on the
classic image store a loaded image answers to its tag and its ID only: moby/moby#22011). An
image that reaches a host from a release bundle is therefore found by its tag, which the
bundle restores, after `setup` has checked that the tag holds the released image
(automation/bundle.py).
"""

from __future__ import annotations


def without_digest(ref: str) -> str:
    """`ref` without its `@sha256:<digest>` part (unchanged when it has none)."""
    return ref.split("@", 1)[0]


def tagged_name(ref: str) -> str | None:
    """`name:tag` of `ref`, or None when it has no tag (a registry port is no tag)."""
    name = without_digest(ref)
    return name if ":" in name.rsplit("/", 1)[-1] else None


def as_found_on_host(ref: str, images_from_bundle: bool) -> str:
    """The name `ref` answers to on a host: its `name:tag` when the host's images came from a
    bundle (and it has a tag), else `ref` itself."""
    return (tagged_name(ref) or ref) if images_from_bundle else ref
