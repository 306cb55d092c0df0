"""Writes docs/reference.md: every config key, its type, default and description, from the models,
then every pinned homelab image with the upstream facts of its contract (components/homelab/images.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.homelab.images import CONTRACTS, IMAGES, Seen  # noqa: E402
from components.pipeline.images import CONTRACTS as PIPELINE_CONTRACTS  # noqa: E402
from components.platform.images import CONTRACTS as PLATFORM_CONTRACTS  # noqa: E402
from stacks.config import StackConfig  # noqa: E402


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return "object"
        return getattr(annotation, "__name__", str(annotation))
    args = [a for a in get_args(annotation) if a is not type(None)]
    name = getattr(origin, "__name__", str(origin))
    if name == "Annotated":
        return _type_name(args[0])
    if name in ("Union", "UnionType"):
        return " or ".join(_type_name(a) for a in args)
    if name == "Literal":
        return " / ".join(repr(a) for a in get_args(annotation))
    return f"{name}[{', '.join(_type_name(a) for a in args)}]"


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in get_args(annotation) for m in _models(a)]


def rows(model: type[BaseModel], prefix: str) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        if field.default is not PydanticUndefined:
            default = "" if isinstance(field.default, BaseModel) else f"`{field.default!r}`"
        elif field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                default = ""
            elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
                default = (
                    "`" + repr([v.model_dump(by_alias=True, exclude_defaults=True) for v in value]) + "`"
                )
            else:
                default = f"`{value!r}`"
        else:
            default = "required"
        out.append(f"| `{key}` | {_type_name(field.annotation)} | {default} | {field.description or ''} |")
        for sub in _models(field.annotation):
            suffix = "[]." if get_origin(field.annotation) is list else "."
            out += rows(sub, f"{key}{suffix}")
    return out


def _seen(seen: Seen) -> str:
    where = f"`{seen.path}`" if not seen.path.startswith("#") else seen.path
    return f"{seen.repo} {where}" + (f" @ `{seen.ref}`" if seen.ref else "")


def image_rows() -> list[str]:
    out = [
        "## Images",
        "",
        "Every image the homelab runs, pinned in `components/homelab/images.py` with the facts the",
        "program relies on. Each fact names the upstream file it was read in (repository, path, and",
        "the commit or tag), or the issue or pull request (`#n`). Override an image with `image:` in",
        "a service's config; the override's contract is then yours to check.",
        "",
    ]
    for key, contract in CONTRACTS.items():
        user = contract.user.value
        runs_as = user.name + (f" (uid {user.uid})" if user.uid is not None else "")
        probes = ", ".join(f"`{p}`" for p in contract.probes.value) or "none (no health check)"
        out += [
            f"### `{key}`: `{contract.image}`",
            "",
            f"- tag: {_seen(contract.tag)}",
            f"- digest: {_seen(contract.digest)}"
            if contract.digest
            else "- digest: none recorded upstream; Renovate adds it (pinDigests)",
            f"- runs as: {runs_as}; {_seen(contract.user.seen)}",
            f"- shell: {'yes' if contract.shell.value else 'no'}; {_seen(contract.shell.seen)}",
            f"- health-check tools: {probes}; {_seen(contract.probes.seen)}",
        ]
        out += [f"- writes `{w.value}`; {_seen(w.seen)}" for w in contract.writes]
        out += [f"- needs capability `{c.value}`; {_seen(c.seen)}" for c in contract.capabilities]
        if contract.read_only is not None:
            out.append(f"- runs with a read-only root filesystem; {_seen(contract.read_only)}")
        out += [f"- writes outside its volumes (tmpfs): `{t.value}`; {_seen(t.seen)}" for t in contract.tmpfs]
        if contract.file_env is not None:
            names = ", ".join(f"`{n}`" for n in contract.file_env.value)
            out.append(f"- reads `*_FILE` for: {names}; {_seen(contract.file_env.seen)}")
        out.append("")
    for key in sorted(set(IMAGES) - set(CONTRACTS)):
        out += [f"### `{key}`: `{IMAGES[key]}`", "", "- no contract yet (the image is being replaced).", ""]
    return out


def cluster_image_rows() -> list[str]:
    out = [
        "## Cluster images",
        "",
        "Images the platform and the app pipelines name themselves (the charts pin the rest),",
        "pinned in `components/pipeline/images.py` and `components/platform/images.py` with the",
        "facts the program relies on and the upstream file each was read in.",
        "",
    ]
    for key, contract in {**PIPELINE_CONTRACTS, **PLATFORM_CONTRACTS}.items():
        out += [f"### `{key}`: `{contract.image}`", ""]
        out += [f"- {what}; {_seen(seen)}" for what, seen in contract.facts()]
        out.append("")
    return out


def support_rows() -> list[str]:
    from automation.support import products

    out = [
        "## Support windows",
        "",
        "How long each pinned line gets fixes from its vendor (`components/lifecycle.py` and the",
        "`SUPPORT` tables beside the pins). `python -m automation lifecycle` judges every pin, or",
        "one stack's, on today's date; a line that has ended is no line to pin.",
        "",
        "| product | line | end of support | newest seen | source | note |",
        "|---|---|---|---|---|---|",
    ]
    seen: set[str] = set()
    for product in products().values():
        if product.name in seen:
            continue
        seen.add(product.name)
        for w in product.windows:
            ends = w.ends.isoformat() if w.ends is not None else "none published"
            out.append(
                f"| {product.name.removeprefix('pypi:')} | {w.line} | {ends} | `{w.newest}` | "
                f"{_seen(w.source)} (read {w.read.isoformat()}) | {w.note} |"
            )
    out.append("")
    return out


def main() -> None:
    lines = [
        "# Configuration reference",
        "",
        "Every key of the `homelab:` namespace (generated by `scripts/config_reference.py` from",
        "`stacks/config*.py`; `tests/test_program.py` keeps it current). Keys are kebab-case; unknown",
        "keys are errors. Secrets are never values here: a `*-secret` key names another config key",
        "that you set with `pulumi config set --secret`.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
        *rows(StackConfig, ""),
        "",
        *image_rows(),
        *cluster_image_rows(),
        *support_rows(),
    ]
    text = "\n".join(lines)
    parser = argparse.ArgumentParser(description="Write docs/reference.md (stdout without OUTPUT).")
    parser.add_argument("output", nargs="?", type=Path, help="file to write, e.g. docs/reference.md")
    output = parser.parse_args().output
    if output is not None:
        output.write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
