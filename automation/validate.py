"""Offline validation: read `Pulumi.<stack>.yaml`, validate it, describe the resolved plan.

No Pulumi CLI, no backend, no decryption: a secret in the stack file (`{secure: ...}`) only
has to be there, and be a secret, which is all the config checks need.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stacks.checks import validate_pulumi_config
from stacks.config import MAX_DEPTH, NAMESPACE, ConfigError, StackConfig, pulumi_wire_value


class StackFileError(ConfigError):
    """A stack file that is not YAML, or not a stack file's shape: one problem, its place."""

    def __init__(self, path: Path, message: str):
        super().__init__([(path.name, message)])
        self.args = (f"invalid stack file {path}: {message}",)

    def __str__(self) -> str:
        return str(self.args[0])


class StackFileLoader(yaml.SafeLoader):
    """YAML as the Pulumi CLI reads a stack file: gopkg.in/yaml.v3 (pulumi/pulumi
    sdk/go/common/encoding/marshal.go), so the YAML 1.2 core schema (`yes`, `on`, `no` are
    strings; no timestamps) and a key written twice is an error, not "the last one wins"."""

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!map [1]`
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.tag.rsplit(':', 1)[-1]}: expected a mapping here", node.start_mark
            )
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in lines:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} appears twice (lines {lines[key]} and {key_node.start_mark.line + 1})",
                        key_node.start_mark,
                    )
                lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)  # type: ignore[no-untyped-call,no-any-return]


# Explicit YAML 1.1 tags PyYAML would turn into values no stack file can hold (bytes, sets,
# dates, ordered pairs): the Pulumi CLI hands the program text and JSON only, so they are an
# error at their line, not a traceback later.
_FOREIGN_TAGS = ("binary", "set", "timestamp", "omap", "pairs")


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    tag = node.tag.rsplit(":", 1)[-1]
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"the explicit tag !!{tag} is not allowed in a stack file: write the value as text, a "
        "number, true/false, a list or a mapping",
        node.start_mark,
    )


for _tag in _FOREIGN_TAGS:
    StackFileLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def _checked(kind: str, construct: Any) -> Any:
    """`construct`, with the ValueError, KeyError, ... PyYAML raises for a value its tag cannot
    read (`!!int abc`, `!!bool maybe`, an integer of 5,000 digits) turned into an error at the
    value's line."""

    def checked(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, KeyError, IndexError, TypeError) as error:
            why = f"not {kind}"
            if "Exceeds the limit" in str(error):
                why = f"a number of more than {sys.get_int_max_str_digits()} digits"
            elif re.fullmatch(r"[-+]?0[0-9_]+", str(node.value)):  # PyYAML reads 0... as octal
                why = "an octal number (it starts with 0) with a digit 8 or 9: drop the 0, or quote it"
            # The value is not quoted: a secret's key may hold it.
            raise yaml.constructor.ConstructorError(
                None, None, f"the value is {why}", node.start_mark
            ) from None

    return checked


for _tag, _kind in (("int", "an integer"), ("float", "a number"), ("bool", "true or false")):
    StackFileLoader.add_constructor(
        f"tag:yaml.org,2002:{_tag}",
        _checked(_kind, yaml.SafeLoader.yaml_constructors[f"tag:yaml.org,2002:{_tag}"]),
    )


# How many values a stack file may expand to once its aliases (`*name`) are resolved, a value
# counted once more for each VALUE_CHARS characters of its text: far beyond any real config (a
# 2.5 MB file of 20,000 services weighs about 240,000), and a bound on what a few lines of
# nested aliases ("billion laughs", or a long string aliased again and again) would otherwise
# make the JSON encoder write out: at most about 64 MB.
MAX_VALUES = 1_000_000
VALUE_CHARS = 64


# The events alone (no tags resolved, no values built): libyaml's parser where PyYAML has it,
# about ten times faster than the pure-Python one on a large file.
_EVENTS: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _at(mark: yaml.Mark) -> str:
    """Where in the file: "line L, column C" (PyYAML counts from 0)."""
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _shape_problem(text: str, events: Any = _EVENTS) -> str | None:
    """Where the document nests deeper than MAX_DEPTH, or where its aliases make it expand to
    more than MAX_VALUES values ("line L, column C: ..."), else None. Read as a stream of
    events, in one pass: a pathological file exhausts neither the recursion limit nor memory."""
    sizes: dict[str, int] = {}  # anchor -> how many values its node expands to
    frames: list[tuple[str | None, int]] = []  # open lists and mappings: (anchor, values so far)

    def add(count: int, mark: yaml.Mark) -> str | None:
        if frames:
            anchor, values = frames[-1]
            frames[-1] = (anchor, values + count)
        if count > MAX_VALUES or (frames and frames[-1][1] > MAX_VALUES):
            return (
                f"{_at(mark)}: its aliases expand the file past {MAX_VALUES:,} values "
                f"(each {VALUE_CHARS} characters of text count as one more)"
            )
        return None

    try:
        for event in yaml.parse(text, Loader=events):
            problem = None
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                frames.append((event.anchor, 0))
                if len(frames) > MAX_DEPTH:
                    return f"{_at(event.start_mark)}: nested more than {MAX_DEPTH} levels deep"
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, values = frames.pop()
                if anchor is not None:
                    sizes[anchor] = values + 1
                problem = add(values + 1, event.start_mark)
            elif isinstance(event, yaml.ScalarEvent):
                weight = 1 + len(event.value) // VALUE_CHARS
                if event.anchor is not None:
                    sizes[event.anchor] = weight
                problem = add(weight, event.start_mark)
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in frames):  # `&a [*a]`: no JSON has it
                    name = event.anchor
                    return f"{_at(event.start_mark)}: the alias *{name} is inside the value &{name} names"
                problem = add(sizes.get(event.anchor, 1), event.start_mark)
            if problem is not None:
                return problem
    except yaml.YAMLError:
        if events is not yaml.SafeLoader:  # what libyaml refuses, the pure-Python parser may read
            return _shape_problem(text, yaml.SafeLoader)
        return None  # the real load says what is wrong
    return None


# The YAML 1.2 core schema's tags (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
for _tag, _pattern, _first in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
        "-+.0123456789",
    ),
    ("merge", r"<<", "<"),
):
    StackFileLoader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), list(_first)
    )


# PyYAML's messages that quote the user's text: a password written unquoted that starts with
# `*` or `!` is read as an alias or a tag, and its text must not reach a terminal or a CI log.
_QUOTING = (
    (
        "found undefined alias",
        "an alias (*name) that no anchor (&name) defines: a text that starts with * must be quoted",
    ),
    (
        "could not determine a constructor for the tag",
        "an unknown tag (!name): a text that starts with ! must be quoted",
    ),
)


def _unquoted(problem: str) -> str:
    for start, instead in _QUOTING:
        if problem.startswith(start):
            return instead
    return problem


def load_yaml(path: Path) -> Any:
    """The document of a stack file, read strictly (see `StackFileLoader`), or `StackFileError`."""
    try:
        text = path.read_text()
        problem = _shape_problem(text)
        if problem is not None:
            raise StackFileError(path, problem)
        return yaml.load(text, Loader=StackFileLoader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as error:
        message = _unquoted(str(error.problem or error.context))
        if error.problem_mark is not None:
            message = f"{_at(error.problem_mark)}: {message}"
        if error.problem and error.context and error.context_mark is not None:
            message += f" ({error.context} from line {error.context_mark.line + 1})"
        raise StackFileError(path, message) from None
    except yaml.YAMLError as error:
        raise StackFileError(path, str(error)) from None
    except UnicodeDecodeError as error:
        raise StackFileError(path, f"not UTF-8 text ({error.reason})") from None
    except IsADirectoryError:
        raise StackFileError(path, "a folder, not a stack file") from None


def read_config_section(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file (empty when absent), or `StackFileError`."""
    document = load_yaml(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackFileError(path, "the top level must be a mapping with a `config:` key")
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise StackFileError(path, "'config' must be a mapping of keys like `homelab:domain: ...`")
    for key in config:
        if not isinstance(key, str):
            raise StackFileError(path, f"config key {key!r} is not a string")
    return config


@dataclass
class StackFile:
    path: Path
    items: dict[str, Any] = field(default_factory=dict)
    secret_keys: set[str] = field(default_factory=set)


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def read_stack_file(path: Path) -> StackFile:
    """The config of a stack file as the program would see it: every value the string the
    Pulumi CLI passes (see `pulumi_wire_value`), secret keys marked."""
    stack = StackFile(path)
    for key, value in read_config_section(path).items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        stack.items[full] = pulumi_wire_value(value)
        if _has_secure(value):
            stack.secret_keys.add(full)
    return stack


def stack_file_path(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def load(
    project_dir: Path,
    stack: str,
    path: Path | None = None,
    require_secrets: bool = True,
    overrides: dict[str, str] | None = None,
) -> StackConfig:
    """Validate `Pulumi.<stack>.yaml` (or the stack file at `path`) offline, with `overrides`
    (`KEY` or `namespace:KEY` -> plain value, as `--config` sets them) applied first.

    Raises `ConfigError` or `FileNotFoundError`.
    """
    path = path or stack_file_path(project_dir, stack)
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name} in {path.parent}")
    stack_file = read_stack_file(path)
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        stack_file.items[full] = value
        stack_file.secret_keys.discard(full)  # set in plain text, as `--config` would
    return validate_pulumi_config(stack_file.items.items(), stack_file.secret_keys, require_secrets)


def describe(config: StackConfig) -> dict[str, Any]:
    """The resolved plan: hosts, services, routes, volumes, projects and apps."""
    out: dict[str, Any] = {"layers": config.layers.model_dump()}
    if config.layers.homelab:
        from stacks.plan import build_plan

        plan = build_plan(config)
        out["hosts"] = {h.name: h.address for h in config.hosts}
        out["services"] = [
            {
                "name": s.name,
                "kind": s.kind,
                "host": s.host,
                "images": sorted({c.image for c in s.containers}),
                "routes": [
                    r.fqdn if r.mode == "http" else f"tcp://{r.fqdn}:{r.exposed_port}" for r in s.routes
                ],
                "volumes": [v.name for _, v in s.stateful_volumes],
            }
            for s in plan.services
        ]
        out["urls"] = plan.urls()
    if config.layers.platform and config.platform is not None:
        p = config.platform
        out["platform"] = {
            "namespace": p.namespace,
            "domain": p.domain or config.domain,
            "components": [n.replace("_", "-") for n, c in p.components if c.enabled],
            "projects": {x.name: x.roles_of() for x in p.projects},
        }
    if config.layers.apps:
        from stacks.config import app_fqdn

        out["apps"] = [
            {"name": a.name, "project": a.project, "host": app_fqdn(config, a), "ref": a.source.ref}
            for a in config.apps
        ]
    return out


def render_text(plan: dict[str, Any]) -> str:
    lines = [f"layers: {', '.join(k for k, v in plan['layers'].items() if v)}"]
    if "hosts" in plan:
        lines.append("hosts:")
        lines += [f"  {name}: {address}" for name, address in plan["hosts"].items()]
        lines.append("services:")
        for s in plan["services"]:
            extra = []
            if s["routes"]:
                extra.append("routes " + ", ".join(s["routes"]))
            if s["volumes"]:
                extra.append("volumes " + ", ".join(s["volumes"]))
            lines.append(
                f"  {s['name']} ({s['kind']}) on {s['host']}" + (": " + "; ".join(extra) if extra else "")
            )
    if "platform" in plan:
        p = plan["platform"]
        lines.append(f"platform: {p['domain']} in {p['namespace']} ({', '.join(p['components'])})")
        lines += [f"  project {name}: {len(members)} member(s)" for name, members in p["projects"].items()]
    if "apps" in plan:
        lines.append("apps:")
        lines += [
            f"  {a['project']}/{a['name']} -> https://{a['host']}/ (ref {a['ref']})" for a in plan["apps"]
        ]
    return "\n".join(lines) + "\n"


__all__ = ["ConfigError", "describe", "load", "read_stack_file", "render_text"]
