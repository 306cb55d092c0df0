"""Renders the configuration files that live as Jinja templates next to their component."""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path
from typing import Any

import jinja2


@cache
def _environment(folder: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
    )
    env.filters["shquote"] = shlex.quote
    return env


def render(package_file: str, template: str, **values: Any) -> str:
    """Render `templates/<template>` found beside the module whose `__file__` is given."""
    folder = str(Path(package_file).resolve().parent / "templates")
    return _environment(folder).get_template(template).render(**values)
