"""Typed settings for every Vora process, read from ``VORA_*`` environment variables.

Every default lives here and points at loopback, so a fresh checkout runs as is.
An optional env file (``VORA_ENV_FILE``, or ``.env`` beside the working directory)
is read first; real environment variables win over it. An invalid value stops the
process at start with a message naming the variable and what it expects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "VORA_"

# Development-only secrets. Production refuses them (see _refuse_dev_secrets).
DEV_TOKEN_KEYS = "dev1:vora-dev-token-key-change-me"  # noqa: S105
DEV_JWT_SECRET = "vora-dev-jwt-secret-change-me-0123456789"  # noqa: S105
DEV_SERVICE_TOKEN = "vora-dev-service-token-change-me"  # noqa: S105
DEV_S3_SECRET = "vora-dev-s3-secret"  # noqa: S105

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class SettingsError(Exception):
    """Raised when the environment holds a value Vora cannot use."""


class LadderRung(BaseModel):
    """One rung of the HLS ladder as configured (the farm measures the real bit rates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[0-9]{3,4}p$")
    height: PositiveInt
    video_bitrate: PositiveInt
    max_bitrate: PositiveInt
    audio_bitrate: PositiveInt = 128_000
    profile: Literal["baseline", "main", "high"] = "high"


DEFAULT_LADDER = [
    LadderRung(name="1080p", height=1080, video_bitrate=5_000_000, max_bitrate=5_350_000),
    LadderRung(name="720p", height=720, video_bitrate=2_800_000, max_bitrate=2_996_000),
    LadderRung(
        name="360p", height=360, video_bitrate=800_000, max_bitrate=856_000, audio_bitrate=96_000,
        profile="main",
    ),
]


class TokenKey(BaseModel):
    """One HMAC key, named by ``kid`` so keys can rotate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kid: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    secret: str = Field(min_length=16)


class Settings(BaseSettings):
    """Everything a Vora process can be told. Field ``foo_bar`` is ``VORA_FOO_BAR``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_default=True,
    )

    # --- process -------------------------------------------------------------------------
    environment: Literal["dev", "test", "production"] = "dev"
    home: Path = Path(".vora")  # the local stack's data, logs and configs
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    # --- PostgreSQL ----------------------------------------------------------------------
    pg_host: str = "127.0.0.1"
    pg_port: Port = 55432
    pg_user: str = "vora"
    pg_password: str = "vora"  # noqa: S105
    pg_database: str = "vora"
    pg_pool_min: Annotated[int, Field(ge=0)] = 1
    pg_pool_max: PositiveInt = 10
    pg_connect_timeout_seconds: PositiveFloat = 3.0

    # --- S3 object storage ---------------------------------------------------------------
    s3_endpoint: str = Field(default="http://127.0.0.1:8333", pattern=r"^https?://")
    s3_access_key: str = "vora"
    s3_secret_key: str = DEV_S3_SECRET
    s3_region: str = "us-east-1"
    bucket_raw: str = Field(default="bucket-raw", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")
    bucket_processed: str = Field(
        default="bucket-processed", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$"
    )
    # SeaweedFS internals, used only by the local stack.
    seaweed_master_port: Port = 9333
    seaweed_volume_port: Port = 9340
    seaweed_filer_port: Port = 8888

    # --- Temporal -------------------------------------------------------------------------
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: Port = 8233

    # --- ClickHouse ----------------------------------------------------------------------
    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: Port = 19000
    clickhouse_http_port: Port = 18123
    clickhouse_user: str = "default"
    clickhouse_password: str = ""
    clickhouse_database: str = Field(default="vora", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    # --- Varnish ---------------------------------------------------------------------------
    varnish_host: str = "127.0.0.1"
    varnish_port: Port = 6081
    varnish_admin_port: Port = 6082
    varnish_storage: str = "malloc,256m"
    varnish_purge_acl: list[str] = ["127.0.0.1", "::1"]

    # --- control (metadata service) ------------------------------------------------------
    control_host: str = "127.0.0.1"
    control_grpc_port: Port = 50051
    control_http_port: Port = 8000
    control_worker_metrics_port: Port = 9103  # the Temporal worker of the control task queue
    outbox_poll_seconds: PositiveFloat = 0.5
    node_lost_after_seconds: PositiveFloat = 30.0
    node_heartbeat_seconds: PositiveInt = 5
    # A LOST node is forgotten (its row deleted) this long after its last heartbeat, so
    # decommissioned nodes leave the dashboard; one that comes back registers again.
    node_forget_after_seconds: PositiveFloat = 7 * 24 * 3600.0
    # --- farm capacity (control/capacity.py) ---------------------------------------------
    capacity_sample_seconds: PositiveFloat = 15.0  # farm_samples rows; the dashboard's charts
    prometheus_port: Port = 9090  # the opt-in `vora dev up prometheus`

    # --- edge (TUS upload service) -------------------------------------------------------
    edge_host: str = "127.0.0.1"
    edge_port: Port = 1080
    edge_public_url: str = "http://127.0.0.1:1080/files/"
    edge_max_upload_bytes: PositiveInt = 20 * 1024**3
    edge_max_concurrent_uploads: PositiveInt = 64
    edge_idle_timeout_seconds: PositiveFloat = 60.0
    edge_upload_expiry_seconds: PositiveInt = 24 * 3600
    edge_part_bytes: Annotated[int, Field(ge=5 * 1024**2)] = 8 * 1024**2
    edge_cors_origins: list[str] = ["*"]
    edge_sweep_interval_seconds: PositiveFloat = 60.0  # expiry and callback re-delivery
    edge_parts_in_flight: PositiveInt = 2  # S3 part uploads overlapping the next part's receipt
    # How long the final PATCH waits for control to acknowledge UploadCompleted before
    # answering, so an app's CompleteUpload right after finds the upload known; past it
    # the callback keeps retrying in the background (0: never wait).
    edge_callback_wait_seconds: Annotated[float, Field(ge=0, le=60)] = 5.0

    # --- farm (transcoding worker) -------------------------------------------------------
    farm_host: str = "127.0.0.1"
    farm_metrics_port: Port = 9102
    farm_pipeline: Literal["auto", "nvenc", "nvdec", "cpu"] = "auto"
    farm_cpu_slots: Annotated[int, Field(ge=0)] = 1
    farm_nvenc_session_cap: Annotated[int, Field(ge=0)] = 0  # 0: from the driver's known cap
    farm_scratch_dir: Path | None = None  # default: <home>/scratch
    farm_segment_seconds: PositiveInt = 6
    farm_ladder: list[LadderRung] = DEFAULT_LADDER
    farm_ffmpeg: str = "ffmpeg"
    farm_ffprobe: str = "ffprobe"
    farm_ffmpeg_timeout_seconds: PositiveInt = 3 * 3600
    farm_ffmpeg_memory_bytes: PositiveInt = 4 * 1024**3
    farm_probe_timeout_seconds: PositiveInt = 30
    farm_max_width: PositiveInt = 7680
    farm_max_height: PositiveInt = 4320
    farm_max_duration_seconds: PositiveInt = 6 * 3600
    farm_heartbeat_timeout_seconds: PositiveInt = 30
    # An object-store failure while publishing is retried inside the transcode for this
    # long (heartbeating), so an S3 restart does not throw the finished encode away.
    farm_publish_retry_seconds: Annotated[float, Field(ge=0)] = 120.0
    # libx264/NVENC presets; tests lower farm_x264_preset to keep CI fast, production keeps these.
    farm_x264_preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
    ] = "medium"
    farm_nvenc_preset: Literal["p1", "p2", "p3", "p4", "p5", "p6", "p7"] = "p5"
    farm_gpu_slots: Annotated[int, Field(ge=0)] = 2  # concurrent jobs per GPU (session cap aside)
    farm_gpu_min_free_memory_bytes: PositiveInt = 1024**3  # a GPU with less free takes no job
    farm_nvml_poll_seconds: PositiveFloat = 10.0
    farm_progress_signal_seconds: PositiveFloat = 5.0
    farm_probe_max_bytes: PositiveInt = 50 * 1024**2  # ffprobe/ffmpeg -probesize
    farm_probe_max_analyze_seconds: PositiveInt = 30  # -analyzeduration

    # --- gateway (streaming) ---------------------------------------------------------------
    gateway_host: str = "127.0.0.1"
    gateway_port: Port = 8090
    gateway_lookup_cache_seconds: PositiveFloat = 5.0
    playback_public_url: str = "http://127.0.0.1:6081"  # through Varnish

    # --- analytics ---------------------------------------------------------------------------
    analytics_host: str = "127.0.0.1"
    analytics_port: Port = 8091
    analytics_public_url: str = "http://127.0.0.1:8091/v1/events"
    analytics_batch_size: PositiveInt = 5000
    analytics_flush_seconds: PositiveFloat = 1.0
    analytics_max_body_bytes: PositiveInt = 1024**2
    analytics_spool_dir: Path | None = None  # default: <home>/spool
    analytics_spool_max_bytes: PositiveInt = 512 * 1024**2
    analytics_cors_origins: list[str] = ["*"]
    analytics_insert_timeout_seconds: PositiveFloat = 5.0  # then the batch goes to the spool
    analytics_max_buffer_events: PositiveInt = 200_000  # beyond it ingest answers 503
    analytics_insert_connections: PositiveInt = 2  # batches inserted at once, in order
    # Ingest processes sharing the port (SO_REUSEPORT), each with its own writer and spool;
    # one Python process uses about one core, so a busy node runs one per core.
    analytics_processes: PositiveInt = 1

    # --- tokens and auth -------------------------------------------------------------------
    # Oldest first: "kid1:secret1,kid2:secret2". Sign with the last, accept the last two.
    token_keys: Annotated[list[TokenKey], NoDecode] = DEV_TOKEN_KEYS  # type: ignore[assignment]
    playback_token_ttl_seconds: PositiveInt = 6 * 3600
    upload_token_ttl_seconds: PositiveInt = 24 * 3600
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: str = Field(default=DEV_JWT_SECRET, min_length=32)  # RFC 7518 3.2
    jwt_public_key: str = ""
    jwt_audience: str = "vora"
    jwt_issuer: str = ""
    service_token: str = DEV_SERVICE_TOKEN

    @field_validator("token_keys", mode="before")
    @classmethod
    def _parse_token_keys(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        keys = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            kid, sep, secret = item.partition(":")
            if not sep:
                raise ValueError(f"expected kid:secret, got {kid!r} without a colon")
            keys.append({"kid": kid, "secret": secret})
        return keys

    @field_validator("token_keys")
    @classmethod
    def _unique_kids(cls, value: list[TokenKey]) -> list[TokenKey]:
        if not value:
            raise ValueError("at least one kid:secret is required")
        kids = [key.kid for key in value]
        if len(set(kids)) != len(kids):
            raise ValueError(f"each kid must appear once, got {kids}")
        return value

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> Settings:
        if self.environment != "production":
            return self
        dev = {
            "VORA_TOKEN_KEYS": any(k.secret in DEV_TOKEN_KEYS for k in self.token_keys),
            "VORA_JWT_SECRET": self.jwt_algorithm == "HS256" and self.jwt_secret == DEV_JWT_SECRET,
            "VORA_SERVICE_TOKEN": self.service_token == DEV_SERVICE_TOKEN,
        }
        named = [name for name, is_dev in dev.items() if is_dev]
        if named:
            raise ValueError(f"production must not use the development secrets in {named}")
        if self.jwt_algorithm == "RS256" and not self.jwt_public_key:
            raise ValueError("VORA_JWT_PUBLIC_KEY is required when VORA_JWT_ALGORITHM=RS256")
        return self

    # --- derived -----------------------------------------------------------------------------
    @property
    def pg_conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.pg_host, port=self.pg_port, user=self.pg_user,
            password=self.pg_password, dbname=self.pg_database,
            connect_timeout=max(1, round(self.pg_connect_timeout_seconds)),
        )

    @property
    def control_grpc_target(self) -> str:
        return f"{self.control_host}:{self.control_grpc_port}"

    @property
    def scratch_dir(self) -> Path:
        return self.farm_scratch_dir or self.home / "scratch"

    @property
    def spool_dir(self) -> Path:
        return self.analytics_spool_dir or self.home / "spool"


def load_settings(env_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the settings; raise SettingsError naming each bad variable and what it expects."""
    env_file = env_file or os.environ.get("VORA_ENV_FILE")
    try:
        return Settings(_env_file=os.fspath(env_file) if env_file else None, **overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = ["invalid Vora settings:"]
    for error in exc.errors(include_url=False):
        location = [str(part) for part in error["loc"]]
        field = location[0] if location else ""
        variable = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
        detail = ".".join(location[1:])
        where = f"{variable} ({detail})" if detail else variable
        given = error.get("input")
        shown = "" if isinstance(given, dict) else f"; got {given!r}"
        lines.append(f"  {where}: {error['msg']}{shown}")
    return "\n".join(lines)
