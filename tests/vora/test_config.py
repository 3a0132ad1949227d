from __future__ import annotations

from pathlib import Path

import pytest

from vora.config import DEV_TOKEN_KEYS, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VORA_"):
            monkeypatch.delenv(name)


def test_defaults_point_at_loopback() -> None:
    settings = load_settings()
    assert settings.pg_host == "127.0.0.1"
    assert settings.s3_endpoint.startswith("http://127.0.0.1:")
    assert settings.temporal_address.startswith("127.0.0.1:")
    assert [rung.name for rung in settings.farm_ladder] == ["1080p", "720p", "360p"]
    assert settings.token_keys[-1].kid == DEV_TOKEN_KEYS.split(":")[0]


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VORA_PG_PORT", "6543")
    monkeypatch.setenv("VORA_TOKEN_KEYS", "old:0123456789abcdef0,new:fedcba98765432100")
    settings = load_settings()
    assert settings.pg_port == 6543
    assert [k.kid for k in settings.token_keys] == ["old", "new"]


def test_env_file_is_read_and_environment_wins(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "vora.env"
    env_file.write_text("VORA_EDGE_PORT=2080\nVORA_GATEWAY_PORT=2090\n")
    monkeypatch.setenv("VORA_ENV_FILE", str(env_file))
    monkeypatch.setenv("VORA_GATEWAY_PORT", "3090")
    settings = load_settings()
    assert (settings.edge_port, settings.gateway_port) == (2080, 3090)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("VORA_PG_PORT", "not-a-port", "VORA_PG_PORT: Input should be a valid integer"),
        ("VORA_EDGE_PORT", "70000", "VORA_EDGE_PORT: Input should be less than or equal to 65535"),
        ("VORA_S3_ENDPOINT", "ftp://x", "VORA_S3_ENDPOINT: String should match pattern"),
        ("VORA_TOKEN_KEYS", "nocolon", "expected kid:secret"),
        ("VORA_TOKEN_KEYS", "a:0123456789abcdef0,a:0123456789abcdef1", "each kid must appear once"),
        ("VORA_TOKEN_KEYS", "k:short", "VORA_TOKEN_KEYS (0.secret)"),
        ("VORA_FARM_PIPELINE", "quantum", "VORA_FARM_PIPELINE: Input should be 'auto'"),
        ("VORA_EDGE_PART_BYTES", "1024", "greater than or equal to 5242880"),
        ("VORA_JWT_SECRET", "too-short", "VORA_JWT_SECRET: String should have at least 32"),
        ("VORA_FARM_LADDER", '[{"name": "big", "height": 1}]', "VORA_FARM_LADDER (0.name)"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str,
                                          value: str, expected: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_production_refuses_development_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VORA_ENVIRONMENT", "production")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    for variable in ("VORA_TOKEN_KEYS", "VORA_JWT_SECRET", "VORA_SERVICE_TOKEN"):
        assert variable in message
    monkeypatch.setenv("VORA_TOKEN_KEYS", "prod1:a-real-production-secret")
    monkeypatch.setenv("VORA_JWT_SECRET", "a-real-jwt-secret-of-at-least-32-bytes")
    monkeypatch.setenv("VORA_SERVICE_TOKEN", "a-real-service-token")
    assert load_settings().environment == "production"


def test_service_exits_with_the_reason(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "VORA_GATEWAY_PORT": "0x"}
    result = subprocess.run([sys.executable, "-m", "gateway.main"], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "VORA_GATEWAY_PORT" in result.stderr
