"""Render varnish/vora.vcl.j2 for tests: the same template and variables as the stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from vora import devstack
from vora.config import Settings

TEMPLATE = devstack.REPO_ROOT / "varnish" / "vora.vcl.j2"


def render_vcl(settings: Settings, **overrides: Any) -> str:
    """The VCL for ``settings`` (backend = its gateway), with template variables overridden."""
    context = {**devstack.varnish_context(settings), **overrides}
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,  # noqa: S701 (VCL, not HTML)
    )
    return env.get_template(TEMPLATE.name).render(**context)


def write_vcl(path: Path, settings: Settings, **overrides: Any) -> Path:
    path.write_text(render_vcl(settings, **overrides))
    return path
