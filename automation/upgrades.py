"""The upgrade-path guard: an image bump of a stateful service that its vendor documents as
unsafe is refused before anything changes.

`preview` and `up` compare, for each container that writes a stateful volume, the image the
stack's state says is deployed with the one the config now asks for. The deployed reference
comes from the state (`stack.export_stack()`): the container's `image` input is the ID of a
`RemoteImage`, whose `name` input is the reference it pulled. The rules are data with their
sources (components/homelab/images.py `UPGRADES`, components/lifecycle.py `UpgradeRule`):

- a downgrade of any stateful image is refused;
- a rule with action "refuse" (a PostgreSQL or MySQL major, a jump the vendor forbids) is
  refused with its reason and the way through, unless the service is named with
  `--allow-upgrade SERVICE`; the pre-upgrade backup (components/homelab/preupgrade.py) then
  runs before the container is replaced, in the same `up`;
- a rule with action "after" names the step to take once the new image runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from automation.support import products, split_image
from components.lifecycle import upgrade_findings

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"


@dataclass(frozen=True)
class ImageChange:
    service: str
    host: str
    container: str  # the Docker container name
    old: str  # image references
    new: str


@dataclass(frozen=True)
class UpgradeVerdict:
    change: ImageChange
    action: str  # "refuse" or "after"
    reason: str
    way: str
    allowed: bool

    def as_dict(self) -> dict[str, Any]:
        c = self.change
        return {
            "service": c.service,
            "host": c.host,
            "container": c.container,
            "from": c.old,
            "to": c.new,
            "action": self.action,
            "allowed": self.allowed,
            "reason": self.reason,
            "way": self.way,
        }


def _labels(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value or []:
        if isinstance(item, Mapping) and "label" in item:
            out[str(item["label"])] = str(item.get("value", ""))
    return out


def deployed_images(deployment: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(host, container name) -> the image reference the state says it runs."""
    resources = [r for r in deployment.get("resources") or [] if isinstance(r, Mapping)]
    reference: dict[str, str] = {}
    for r in resources:
        if r.get("type") != REMOTE_IMAGE:
            continue
        inputs, outputs = r.get("inputs") or {}, r.get("outputs") or {}
        name = inputs.get("name") or outputs.get("name")
        if not isinstance(name, str):
            continue
        for key in ("imageId", "repoDigest"):
            if isinstance(outputs.get(key), str):
                reference[outputs[key]] = name
        if isinstance(r.get("id"), str):
            reference[r["id"]] = name
    found: dict[tuple[str, str], str] = {}
    for r in resources:
        if r.get("type") != CONTAINER:
            continue
        inputs = r.get("inputs") or {}
        labels = _labels(inputs.get("labels"))
        image, name = inputs.get("image"), inputs.get("name")
        if isinstance(image, str) and isinstance(name, str) and image in reference:
            found[(labels.get("homelab.host", ""), name)] = reference[image]
    return found


def planned_images(config: Any) -> dict[tuple[str, str], tuple[str, str]]:
    """(host, container name) -> (service, image) of every container that writes a stateful
    volume in the config's plan."""
    from stacks.plan import build_plan

    if not config.layers.homelab:
        return {}
    planned = {}
    for spec in build_plan(config).services:
        for c in spec.containers:
            if any(v.stateful for v in c.volumes):
                planned[(spec.host, f"{config.name}-{c.name}")] = (spec.name, c.image)
    return planned


def image_changes(
    deployed: Mapping[tuple[str, str], str], planned: Mapping[tuple[str, str], tuple[str, str]]
) -> list[ImageChange]:
    changes = []
    for key, (service, new) in sorted(planned.items()):
        old = deployed.get(key)
        if old is not None and old != new:
            changes.append(ImageChange(service, key[0], key[1], old, new))
    return changes


def judge_upgrades(changes: Iterable[ImageChange], allow: Iterable[str] = ()) -> list[UpgradeVerdict]:
    from components.homelab.images import UPGRADES

    allowed = set(allow)
    verdicts = []
    for change in changes:
        old_repo, old_tag = split_image(change.old)
        new_repo, new_tag = split_image(change.new)
        product = products().get(new_repo)
        if product is None or products().get(old_repo) is not product:
            continue  # another product, or one we know nothing of: nothing to compare
        for action, reason, way in upgrade_findings(UPGRADES, product.name, old_tag, new_tag):
            ok = action == "after" or change.service in allowed
            verdicts.append(UpgradeVerdict(change, action, reason, way, ok))
    return verdicts


@dataclass
class UpgradeReport:
    verdicts: list[UpgradeVerdict] = field(default_factory=list)
    unchecked: str = ""  # why the deployed images could not be read, if they could not

    @property
    def refused(self) -> list[UpgradeVerdict]:
        return [v for v in self.verdicts if not v.allowed]

    def render_text(self, refusing: bool) -> str:
        lines = []
        if self.unchecked:
            lines.append(f"Upgrade paths: not checked ({self.unchecked}).")
        for v in self.verdicts:
            c = v.change
            where = f"service {c.service} on {c.host}"
            if v.action == "after":
                lines.append(f"  AFTER   {c.old} -> {c.new} ({where}): {v.way}")
                continue
            mark = (
                "allowed (--allow-upgrade)" if v.allowed else ("REFUSED" if refusing else "up would refuse")
            )
            lines.append(
                f"  UPGRADE {c.old} -> {c.new} ({where}) -> {mark}: {v.reason}. Way through: {v.way}"
            )
        if self.verdicts:
            lines.insert(0, f"Upgrade paths of stateful services ({len(self.verdicts)}):")
        return "\n".join(lines) + "\n" if lines else ""

    def render_markdown(self) -> str:
        if not self.verdicts:
            return ""
        lines = [
            f"### Upgrade paths of stateful services ({len(self.verdicts)})",
            "",
            "| service | from | to | `up` | why | way through |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for v in self.verdicts:
            c = v.change
            verdict = (
                "then: step after start"
                if v.action == "after"
                else ("goes ahead" if v.allowed else "**refuses**")
            )
            lines.append(
                f"| {c.service} on {c.host} | `{c.old}` | `{c.new}` | {verdict} | {v.reason} | {v.way} |"
            )
        return "\n".join(lines) + "\n"

    def as_json(self) -> str:
        return json.dumps({"upgrades": [v.as_dict() for v in self.verdicts]})


def check_upgrades(stack: Any, config: Any, allow: Iterable[str] = ()) -> UpgradeReport:
    """The upgrade verdicts of `config` against `stack`'s state (none for a new stack)."""
    planned = planned_images(config)
    if not planned:
        return UpgradeReport()
    try:
        exported = stack.export_stack()
    except Exception as error:  # no state to read (a stack not yet deployed, a fake)
        return UpgradeReport(unchecked=f"the stack's state could not be read: {error}")
    deployment = getattr(exported, "deployment", exported)
    if not isinstance(deployment, Mapping):
        return UpgradeReport(unchecked="the stack's state has no deployment")
    return UpgradeReport(judge_upgrades(image_changes(deployed_images(deployment), planned), allow))
