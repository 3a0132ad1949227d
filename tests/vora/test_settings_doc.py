"""docs/configuration.md is generated from the Settings model and kept in step."""

from __future__ import annotations

from pathlib import Path

from vora import settings_doc
from vora.config import Settings, load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_is_current() -> None:
    assert DOC.read_text() == settings_doc.markdown(), (
        "run `.venv/bin/vora config --markdown > docs/configuration.md`")


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [name for name in Settings.model_fields if f"`VORA_{name.upper()}`" not in text]
    assert missing == []


def test_effective_view_masks_secrets() -> None:
    rows = dict((variable, value) for variable, _, value in
                settings_doc.rows(load_settings(), mask=True))
    for secret in ("VORA_JWT_SECRET", "VORA_SERVICE_TOKEN", "VORA_TOKEN_KEYS",
                   "VORA_S3_SECRET_KEY", "VORA_PG_PASSWORD"):
        assert rows[secret] == "***"
    assert rows["VORA_PG_PORT"] == str(load_settings().pg_port)
