"""Render the settings as a table: `vora config` (effective values, secrets masked) and
docs/configuration.md (defaults), both from the one Settings model."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from vora.config import ENV_PREFIX, Settings

SECRET_WORDS = ("secret", "password", "token_keys", "service_token")


def _is_secret(name: str) -> bool:
    return any(word in name for word in SECRET_WORDS)


def _show(value: Any) -> str:
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"))
    if isinstance(value, list):
        return json.dumps([v.model_dump(mode="json") if isinstance(v, BaseModel) else str(v)
                           for v in value])
    return "" if value is None else str(value)


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    name = getattr(annotation, "__name__", None)
    return str(name) if name else str(annotation).replace("typing.", "")


def rows(settings: Settings | None, *, mask: bool) -> list[tuple[str, str, str]]:
    """(variable, type, value) per setting, in declaration order; the declared defaults
    when ``settings`` is None (the environment is not read then)."""
    result = []
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name) if settings is not None else info.get_default(
            call_default_factory=True, validated_data={})
        shown = "***" if mask and _is_secret(name) and value else _show(value)
        result.append((f"{ENV_PREFIX}{name.upper()}", _type_name(info.annotation), shown))
    return result


def markdown() -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from `vora/config.py` by `vora config --markdown`; a test keeps it in",
        "step. Every Vora process reads these `VORA_*` variables (and the optional env",
        "file named by `VORA_ENV_FILE`); real environment variables win over the file.",
        "An invalid value stops the process at start with a message naming the variable.",
        "With `VORA_ENVIRONMENT=production` the development secrets below are refused.",
        "",
        "| variable | type | default |",
        "|---|---|---|",
    ]
    for variable, kind, value in rows(None, mask=False):
        cells = [cell.replace("|", "\\|") for cell in (variable, kind, value)]
        lines.append("| `{}` | {} | `{}` |".format(*cells))
    return "\n".join(lines) + "\n"
