"""The local stack: real PostgreSQL, SeaweedFS S3, Temporal, ClickHouse, Varnish and
Vora's own services on loopback, run by supervisord with all data under ``settings.home``.

``vora dev up`` renders the configs, starts supervisord, starts the infrastructure,
waits until each part answers its health check, applies migrations and creates the
buckets, then starts Vora's services and Varnish in front of the gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import psycopg
from psycopg import sql

from vora import jobs, storage
from vora.config import Settings
from vora.migrate import clickhouse_client, migrate_clickhouse, migrate_postgres

REPO_ROOT = Path(__file__).resolve().parent.parent
# The environment's bin directory, spelled the same whichever interpreter name started us
# (python, python3.11): supervisord.conf must render identically, or `update` restarts
# every running program.
BINDIR = Path(sys.prefix) / "bin"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
INFRA = ("postgres", "s3", "temporal", "clickhouse")
SERVICES = ("control", "worker", "edge", "farm", "gateway", "analytics")
EDGE_OF_STACK = ("varnish",)
ALL = (*INFRA, *SERVICES, *EDGE_OF_STACK)
# Opt-in components: never started by a bare `vora dev up`; `vora dev up prometheus` starts
# Debian's Prometheus scraping this stack (docs/capacity.md). Listed by status only while
# running.
OPTIONAL = ("prometheus",)


class StackError(Exception):
    """The stack could not be brought to the state asked for; the message says where to look."""


@dataclass
class Component:
    name: str
    command: list[str]
    address: str
    check: Callable[[], None]
    user: str | None = None
    stopsignal: str = "TERM"
    environment: dict[str, str] = field(default_factory=dict)


# --- paths ---------------------------------------------------------------------------------


def home(settings: Settings) -> Path:
    return settings.home.resolve()


def _is_root() -> bool:
    return os.geteuid() == 0


def _user_can_reach(user: str, path: Path) -> bool:
    probe = ["runuser", "-u", user, "--", "test", "-x", str(path)]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def postgres_dir(settings: Settings) -> Path:
    """PostgreSQL's data directory. As root, postgres runs as the ``postgres`` user; when
    that user cannot reach the stack's home (a private temp dir, /root), the data lives in
    /var/lib/vora-dev/<hash> and ``<home>/postgres`` links to it."""
    link = home(settings) / "postgres"
    if not _is_root() or _user_can_reach("postgres", home(settings)):
        return link
    digest = hashlib.sha256(str(home(settings)).encode()).hexdigest()[:12]
    return Path("/var/lib/vora-dev") / digest / "postgres"


# --- health checks -------------------------------------------------------------------------


def check_postgres(settings: Settings) -> None:
    """The server answers (on its maintenance database: ours may not exist yet)."""
    admin = settings.model_copy(update={"pg_database": "postgres"})
    with psycopg.connect(admin.pg_conninfo, connect_timeout=2) as conn:
        conn.execute("SELECT 1")


def check_s3(settings: Settings) -> None:
    client = storage.s3_client(settings, connect_timeout=2, read_timeout=5, max_attempts=1)
    for bucket in (settings.bucket_raw, settings.bucket_processed):
        client.head_bucket(Bucket=bucket)


def check_temporal(settings: Settings) -> None:
    from temporalio.client import Client

    async def probe() -> None:
        client = await asyncio.wait_for(
            Client.connect(settings.temporal_address, namespace=settings.temporal_namespace),
            timeout=5,
        )
        await client.service_client.check_health()

    asyncio.run(probe())


def check_clickhouse(settings: Settings) -> None:
    client = clickhouse_client(settings, database="default")
    try:
        client.execute("SELECT 1")
    finally:
        client.disconnect()


def check_http(url: str) -> Callable[[], None]:
    def probe() -> None:
        if not url.startswith(("http://", "https://")):
            raise StackError(f"not an HTTP URL: {url}")
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (checked above)
            if response.status != 200:
                raise StackError(f"{url} answered {response.status}")

    return probe


# --- configuration files ---------------------------------------------------------------------


def _render(template_path: Path, target: Path, **context: object) -> Path:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_path.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 (config files, not HTML)
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(env.get_template(template_path.name).render(**context))
    return target


def render_configs(settings: Settings) -> None:
    root = home(settings)
    templates = REPO_ROOT / "vora" / "devstack_templates"
    context = {"s": settings, "home": root}
    _render(templates / "clickhouse-config.xml.j2", root / "clickhouse" / "config.xml", **context)
    _render(templates / "clickhouse-users.xml.j2", root / "clickhouse" / "users.xml", **context)
    _render(templates / "seaweedfs-s3.json.j2", root / "seaweedfs" / "s3.json", **context)
    _render(REPO_ROOT / "varnish" / "vora.vcl.j2", root / "varnish" / "vora.vcl",
            **varnish_context(settings))
    _render(templates / "prometheus.yml.j2", root / "prometheus" / "prometheus.yml",
            targets=prometheus_targets(settings))
    _render(templates / "supervisord.conf.j2", root / "supervisord.conf",
            components=components(settings).values(), sock=supervisor_socket(settings),
            run_as_root=_is_root(),
            **context)


def prometheus_targets(settings: Settings) -> list[tuple[str, str]]:
    """(job, host:port) of every service's /metrics in this stack."""
    s = settings
    return [("control", f"{s.control_host}:{s.control_http_port}"),
            ("control-worker", f"{s.control_host}:{s.control_worker_metrics_port}"),
            ("edge", f"{s.edge_host}:{s.edge_port}"),
            ("farm", f"{s.farm_host}:{s.farm_metrics_port}"),
            ("gateway", f"{s.gateway_host}:{s.gateway_port}"),
            ("analytics", f"{s.analytics_host}:{s.analytics_port}")]


def varnish_context(settings: Settings) -> dict[str, object]:
    """The variables the VCL template needs; Ansible renders the same template."""
    for key in settings.token_keys[-2:]:
        # The VCL holds each secret in a {"..."} string, which cannot contain "} or controls.
        if '"}' in key.secret or not key.secret.isprintable():
            raise StackError(f"token key {key.kid!r}: a secret for Varnish must be printable "
                             'and must not contain "}')
    return {
        "backend_host": settings.gateway_host,
        "backend_port": settings.gateway_port,
        "token_keys": [{"kid": k.kid, "secret": k.secret} for k in settings.token_keys[-2:]],
        "purge_acl": settings.varnish_purge_acl,
    }


def supervisor_socket(settings: Settings) -> Path:
    sock = home(settings) / "supervisor.sock"
    if len(str(sock)) < 100:
        return sock
    digest = hashlib.sha256(str(home(settings)).encode()).hexdigest()[:12]
    return Path("/tmp") / f"vora-supervisor-{digest}.sock"  # noqa: S108 (path length limit)


# --- components ------------------------------------------------------------------------------


def components(settings: Settings) -> dict[str, Component]:
    root = home(settings)
    python = str(BINDIR / "python")
    bindir = BINDIR
    s = settings
    weed = [
        str(bindir / "weed"), "mini", f"-dir={root / 'seaweedfs' / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={_port(s.s3_endpoint)}",
        f"-s3.config={root / 'seaweedfs' / 's3.json'}", f"-master.port={s.seaweed_master_port}",
        f"-volume.port={s.seaweed_volume_port}", f"-filer.port={s.seaweed_filer_port}",
        "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-bucket={s.bucket_raw},{s.bucket_processed}",
    ]
    temporal_host, _, temporal_port = s.temporal_address.rpartition(":")
    varnish = [
        "/usr/sbin/varnishd", "-F", "-a", f"{s.varnish_host}:{s.varnish_port}",
        "-T", f"127.0.0.1:{s.varnish_admin_port}", "-n", str(root / "varnish" / "work"),
        "-f", str(root / "varnish" / "vora.vcl"), "-s", s.varnish_storage,
        "-p", "default_grace=60",
    ]
    if _is_root():
        varnish[2:2] = ["-j", "none"]
    entries = [
        Component(
            "postgres",
            [str(PG_BIN / "postgres"), "-D", str(postgres_dir(s)), "-p", str(s.pg_port),
             "-c", f"listen_addresses={s.pg_host}", "-c", "unix_socket_directories=",
             "-c", "max_connections=200", "-c", "fsync=on"],
            f"postgresql://{s.pg_host}:{s.pg_port}/{s.pg_database}",
            lambda: check_postgres(s),
            user="postgres" if _is_root() else None, stopsignal="INT",
        ),
        Component("s3", weed, s.s3_endpoint, lambda: check_s3(s)),
        Component(
            "temporal",
            [str(bindir / "temporal"), "server", "start-dev", "--ip", temporal_host,
             "--port", temporal_port, "--ui-port", str(s.temporal_ui_port),
             "--db-filename", str(root / "temporal" / "temporal.db"),
             "--namespace", s.temporal_namespace, "--log-level", "warn"],
            f"{s.temporal_address} (UI http://{temporal_host}:{s.temporal_ui_port})",
            lambda: check_temporal(s),
        ),
        Component(
            "clickhouse",
            ["/usr/sbin/clickhouse-server", f"--config-file={root / 'clickhouse' / 'config.xml'}"],
            f"clickhouse://{s.clickhouse_host}:{s.clickhouse_port}/{s.clickhouse_database}",
            lambda: check_clickhouse(s),
        ),
        Component(
            "control", [python, "-m", "control.main"],
            f"grpc {s.control_grpc_target}, http://{s.control_host}:{s.control_http_port}",
            check_http(f"http://{s.control_host}:{s.control_http_port}/healthz"),
        ),
        Component(
            "worker", [python, "-m", "control.worker"],
            f"task queue {jobs.CONTROL_TASK_QUEUE}, http://{s.control_host}:"
            f"{s.control_worker_metrics_port}",
            check_http(f"http://{s.control_host}:{s.control_worker_metrics_port}/healthz"),
        ),
        Component(
            "edge", [python, "-m", "edge.main"], s.edge_public_url,
            check_http(f"http://{s.edge_host}:{s.edge_port}/healthz"),
        ),
        Component(
            "farm", [python, "-m", "farm.main"], f"http://{s.farm_host}:{s.farm_metrics_port}",
            check_http(f"http://{s.farm_host}:{s.farm_metrics_port}/healthz"),
        ),
        Component(
            "gateway", [python, "-m", "gateway.main"],
            f"http://{s.gateway_host}:{s.gateway_port}",
            check_http(f"http://{s.gateway_host}:{s.gateway_port}/healthz"),
        ),
        Component(
            "analytics", [python, "-m", "analytics.main"], s.analytics_public_url,
            check_http(f"http://{s.analytics_host}:{s.analytics_port}/healthz"),
        ),
        Component(
            "varnish", varnish, f"http://{s.varnish_host}:{s.varnish_port}",
            check_http(f"http://{s.varnish_host}:{s.varnish_port}/varnish/healthz"),
        ),
        Component(
            "prometheus",
            ["/usr/bin/prometheus", f"--config.file={root / 'prometheus' / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'prometheus' / 'data'}",
             "--storage.tsdb.retention.time=2d",
             f"--web.listen-address=127.0.0.1:{s.prometheus_port}"],
            f"http://127.0.0.1:{s.prometheus_port}",
            check_http(f"http://127.0.0.1:{s.prometheus_port}/-/ready"),
        ),
    ]
    return {c.name: c for c in entries}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


# --- supervisor --------------------------------------------------------------------------------


def _ctl(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(BINDIR / "supervisorctl"),
               "-c", str(home(settings) / "supervisord.conf"), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    # supervisorctl exits 3 when a program is not RUNNING, which status reports anyway.
    if check and result.returncode not in (0, 3):
        raise StackError(f"supervisorctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


def supervisor_running(settings: Settings) -> bool:
    conf = home(settings) / "supervisord.conf"
    return conf.exists() and _ctl(settings, "pid", check=False).returncode == 0


def pid(settings: Settings, name: str) -> int:
    """The process id of a running component, as supervisord knows it (for fault drills)."""
    out = _ctl(settings, "pid", name).stdout.strip()
    if not out.isdigit() or out == "0":
        raise StackError(f"{name} is not running: {out or 'no pid'}")
    return int(out)


def program_states(settings: Settings) -> dict[str, str]:
    if not supervisor_running(settings):
        return {}
    states = {}
    for line in _ctl(settings, "status").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def _start_supervisor(settings: Settings) -> None:
    if supervisor_running(settings):
        _ctl(settings, "reread")
        _ctl(settings, "update")
        return
    (home(settings) / "logs").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(BINDIR / "supervisord"), "-c",
         str(home(settings) / "supervisord.conf")],
        check=True, cwd=REPO_ROOT,
    )
    _wait(lambda: _ctl(settings, "pid", check=False).returncode == 0, 15, "supervisord")


# --- bootstrap -------------------------------------------------------------------------------


def _prepare_dirs(settings: Settings) -> None:
    root = home(settings)
    for sub in ("logs", "seaweedfs/data", "temporal", "clickhouse/data", "varnish",
                "scratch", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    pg = postgres_dir(settings)
    link = root / "postgres"
    if pg != link and not link.is_symlink():
        pg.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(pg)
    if not (pg / "PG_VERSION").exists():
        _initdb(settings, pg)


def _initdb(settings: Settings, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    pwfile = data.parent / ".pgpass-init"
    pwfile.write_text(settings.pg_password + "\n")
    command = [str(PG_BIN / "initdb"), "-D", str(data), "-U", settings.pg_user,
               f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8",
               "--locale=C.UTF-8"]
    if _is_root():
        user = pwd.getpwnam("postgres")
        for path in (data, pwfile):
            os.chown(path, user.pw_uid, user.pw_gid)
        data.chmod(0o700)
        command = ["runuser", "-u", "postgres", "--", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")


def _create_database(settings: Settings) -> None:
    admin = settings.model_copy(update={"pg_database": "postgres"})
    with psycopg.connect(admin.pg_conninfo, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (settings.pg_database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.pg_database)))


def bootstrap(settings: Settings, names: Iterable[str] = ("postgres", "clickhouse", "s3")) -> None:
    """Database, migrations and buckets of the named infrastructure components (those
    running); safe to run any number of times."""
    names = set(names)
    if "postgres" in names:
        _create_database(settings)
        migrate_postgres(settings)
    if "clickhouse" in names:
        migrate_clickhouse(settings)
    if "s3" not in names:
        return
    client = storage.s3_client(settings)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (settings.bucket_raw, settings.bucket_processed):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


# --- waiting ---------------------------------------------------------------------------------


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise StackError(f"{what} did not come up within {timeout:.0f}s")


def health(component: Component) -> str | None:
    """None when healthy, else the reason."""
    try:
        component.check()
    except Exception as exc:  # any failure is a reason to report, not to crash status
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def wait_healthy(settings: Settings, names: Iterable[str], timeout: float = 120) -> None:
    table = components(settings)
    deadline = time.monotonic() + timeout
    pending = list(names)
    reasons: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            reason = health(table[name])
            if reason is None:
                pending.remove(name)
            else:
                reasons[name] = reason
        if pending:
            _fail_if_exited(settings, pending)
            time.sleep(0.5)
    if pending:
        detail = "; ".join(f"{n}: {reasons.get(n, '?')}" for n in pending)
        raise StackError(f"not healthy after {timeout:.0f}s: {detail}. "
                         f"Logs: {home(settings) / 'logs'}")


def _fail_if_exited(settings: Settings, names: list[str]) -> None:
    states = program_states(settings)
    dead = [n for n in names if states.get(n) in ("FATAL", "EXITED", "BACKOFF")]
    if dead:
        logs = ", ".join(str(home(settings) / "logs" / f"{n}.log") for n in dead)
        raise StackError(f"{', '.join(dead)} exited at start; see {logs}")


# --- commands ----------------------------------------------------------------------------------


def up(settings: Settings, names: Iterable[str] | None = None, timeout: float = 180,
       progress: Callable[[str], None] = lambda _: None) -> None:
    """Start (or keep) the named components, infrastructure first, and wait until healthy."""
    wanted = list(names or ALL)
    unknown = set(wanted) - set(ALL) - set(OPTIONAL)
    if unknown:
        raise StackError(f"unknown components {sorted(unknown)}")
    render_configs(settings)
    _prepare_dirs(settings)
    _start_supervisor(settings)
    for stage in (INFRA, SERVICES, EDGE_OF_STACK, OPTIONAL):
        batch = [name for name in stage if name in wanted]
        if not batch:
            continue
        progress(f"starting {', '.join(batch)}")
        states = program_states(settings)
        for name in batch:
            if states.get(name) != "RUNNING":
                _ctl(settings, "start", name)
        wait_healthy(settings, batch, timeout)
        if stage is INFRA:
            progress("applying migrations and creating buckets")
            bootstrap(settings, batch)


def stop(settings: Settings, names: Iterable[str]) -> None:
    if supervisor_running(settings):
        _ctl(settings, "stop", *names)


def start(settings: Settings, names: Iterable[str]) -> None:
    if not supervisor_running(settings):
        raise StackError("the stack is not running; run `vora dev up`")
    _ctl(settings, "start", *names)


def down(settings: Settings) -> None:
    """Stop every component and supervisord; data stays."""
    if not supervisor_running(settings):
        return
    _ctl(settings, "stop", "all")
    _ctl(settings, "shutdown", check=False)
    _wait(lambda: not supervisor_running(settings), 30, "supervisord shutdown")


def reset(settings: Settings) -> None:
    """Stop everything and delete all local data."""
    down(settings)
    pg = postgres_dir(settings)
    if pg != home(settings) / "postgres":
        shutil.rmtree(pg.parent, ignore_errors=True)
    shutil.rmtree(home(settings), ignore_errors=True)


@dataclass
class ComponentStatus:
    name: str
    state: str
    healthy: bool
    detail: str
    address: str


def status(settings: Settings) -> list[ComponentStatus]:
    states = program_states(settings)
    rows = []
    for name, component in components(settings).items():
        if name in OPTIONAL and states.get(name) != "RUNNING":
            continue
        reason = health(component)
        rows.append(ComponentStatus(
            name=name, state=states.get(name, "STOPPED"), healthy=reason is None,
            detail=reason or "ok", address=component.address,
        ))
    return rows
